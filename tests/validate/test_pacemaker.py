"""The crm configuration: crmsh 4.4 loads it into an empty offline CIB (idempotently), Pacemaker
2.1's crm_verify accepts the result, and crm_simulate shows the design at work: HAProxy runs
warm on every node (a clone), the VIP runs on one node whose HAProxy runs and starts only after
that HAProxy; a failover only moves the VIP (no HAProxy starts or stops on the survivor); a
returning node gets its HAProxy back but not the VIP; a HAProxy that keeps failing takes the
VIP away from its node.

Offline, two things differ from a node, and the tests say where they step in:
- `systemd:` agents: Pacemaker describes them through systemd's D-Bus, which this host does
  not run. crmsh asks `crm_resource --show-metadata systemd:haproxy`; a small shim answers
  with the exact text libcrmservice generates on a node, only for units installed here
  (haproxy.service is), so a misspelt unit is still an error (see tools/crmsh.py, make_crm_env).
  For crm_simulate the CIB copy maps `systemd:haproxy` to `ocf:heartbeat:Dummy`
  (tools/pacemaker.py, simulation_copy): placement does not depend on the agent class.
- Quorum: corosync's `two_node: 1` keeps the survivor of two quorate, but crm_simulate
  cannot see corosync; the simulations pass `-q 1` (what votequorum reports: two_node for
  two nodes, a majority of two out of three otherwise). The empty CIB the configuration is
  loaded into is marked quorate, as the live CIB is when the configure step runs (after
  wait-members saw quorum); without that, crmsh reports Pacemaker's "resource management
  disabled due to lack of quorum" as an ERROR line.

Clone instances: crm_simulate names the instances it creates `haproxy:0`, `haproxy:1`, ...;
once they have a history (an anonymous clone's status entries are plain `haproxy`) later
transitions name them `haproxy`. The harness maps both to `haproxy` (tools/pacemaker.py, instance_of), and
a placement maps `haproxy` and `haproxy-clone` to every node an instance runs on.
"""

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from hapx import rendering, scores
from tests.validate.tools.crmsh import check_reload_is_noop, crm_errors, crm_load, make_crm_env
from tests.validate.tools.pacemaker import (
    check_start_waits,
    check_untouched,
    cib_root,
    cib_state,
    crm_verify,
    elect_dc,
    empty_cib,
    forget_node_history,
    parse_xml,
    placed_with,
    restore_agents,
    running_on,
    set_dc,
    set_standby,
    simulate,
    simulation_copy,
)
from tests.validate.tools.procs import CheckFailed, ToolResult, private_mounts, run, run_ok, write_broken
from tests.validate.tools.shell import heredoc, run_step_offline

CRM_HEREDOC = "HAPX_CLUSTER_CRM"
VIP, HAPROXY, CLONE = rendering.CRM.vip, rendering.CRM.haproxy, rendering.CRM.haproxy_clone
HEALTH, HEALTH_CLONE = rendering.CRM.backend_health, rendering.CRM.backend_health_clone
MASTERS_UP = rendering.CRM.masters_up_attribute


def step_file(stack, kind):
    (path,) = [stack.root / s["script"] for s in stack.plan["steps"] if s["kind"] == kind]
    return path


def node_names(stack):
    return [n.name for n in stack.settings.nodes]


def load_fresh(stack, work, crm_env, crm_file=None, name="cib.xml"):
    cib = empty_cib(work / name, cluster_name=stack.settings.corosync.cluster_name)
    crm_load(cib, crm_file or stack.root / "cluster.crm", crm_env)
    return cib


def edited_crm(stack, work, edit):
    """The stack's cluster.crm changed by `edit` (which must change it), written to work/."""
    text = (stack.root / "cluster.crm").read_text()
    changed = edit(text)
    assert changed != text, "the edit changed nothing: the test no longer breaks what it says"
    crm_file = work / "cluster.crm"
    crm_file.write_text(changed)
    return crm_file


def without_lines(prefix):
    return lambda text: "".join(line for line in text.splitlines(True) if not line.startswith(prefix))


def without_location(constraint_id):
    """An edit that drops the location constraint `constraint_id` (its line and its rule's)."""
    def edit(text):
        lines = text.splitlines(True)
        i = next(n for n, line in enumerate(lines) if line.startswith(f"location {constraint_id} "))
        return "".join(lines[:i] + lines[i + 2:])
    return edit


def with_node_attributes(cib, out, values):
    """A copy of `cib` with transient node attributes set as the health agent sets them
    (`crm_attribute -N NODE -n NAME -v VALUE -l reboot`, against the copy)."""
    shutil.copy(cib, out)
    for (node, name), value in values.items():
        run_ok(["crm_attribute", "-N", node, "-n", name, "-v", str(value), "-l", "reboot"],
               env={**os.environ, "CIB_file": str(out)})
    return out


def simulate_up(stack, cib, work):
    """All nodes of `stack` come up in a simulation of `cib` (systemd: mapped to Dummy)."""
    return simulate(simulation_copy(cib, work / "sim.xml"), work / "up.xml", up=node_names(stack))


def monitor_failure(stack, node):
    """crm_simulate's --op-inject spec of a failed HAProxy monitor (7: not running) on `node`."""
    return f"{HAPROXY}_monitor_{stack.settings.pacemaker.haproxy_monitor_s * 1000}@{node}=7"


def migration_threshold(cib, resource: str = "haproxy"):
    """The resource's own migration-threshold, else the rsc_defaults one."""
    root = cib_root(cib)
    for prim in root.iter("primitive"):
        if prim.get("id") == resource:
            for meta in prim.iter("meta_attributes"):
                for nv in meta.iter("nvpair"):
                    if nv.get("name") == "migration-threshold":
                        return int(nv.get("value"))
    defaults = {nv.get("name"): nv.get("value") for nv in root.find("configuration/rsc_defaults").iter("nvpair")}
    return int(defaults["migration-threshold"])


@dataclass(frozen=True)
class Loaded:
    cib: Path
    first: ToolResult


@pytest.fixture(scope="session")
def loaded(stack, tmp_path_factory):
    """The stack's cluster.crm loaded once into an empty CIB (shared by the tests below)."""
    base = tmp_path_factory.mktemp(f"cib-{stack.name}")
    cib = empty_cib(base / "cib.xml", cluster_name=stack.settings.corosync.cluster_name)
    first = crm_load(cib, stack.root / "cluster.crm", make_crm_env(base))
    yield Loaded(cib, first)
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def dev_loaded(dev_stack, tmp_path_factory):
    """The dev stack's cluster.crm loaded once, for the tests that break the result."""
    base = tmp_path_factory.mktemp("cib-dev-negative")
    cib = empty_cib(base / "cib.xml", cluster_name=dev_stack.settings.corosync.cluster_name)
    first = crm_load(cib, dev_stack.root / "cluster.crm", make_crm_env(base))
    yield Loaded(cib, first)
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def loaded_cib(loaded):
    return loaded.cib


@pytest.fixture(scope="session")
def cluster_up(stack, loaded_cib, tmp_path_factory):
    """All nodes up in the simulation; returns (simulation, the node holding the VIP). Shared:
    tests only read its CIB (every later simulation writes a CIB of its own)."""
    base = tmp_path_factory.mktemp(f"up-{stack.name}")
    sim = simulate_up(stack, loaded_cib, base)
    yield sim, placed_with(sim.placement, VIP, CLONE)
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def failed_over(cluster_up, tmp_path_factory):
    """The VIP holder of `cluster_up` fails; returns (simulation, the failed node). Shared, read only."""
    up, holder = cluster_up
    base = tmp_path_factory.mktemp("failed")
    yield simulate(up.cib_out, base / "failed.xml", fail=[holder]), holder
    shutil.rmtree(base, ignore_errors=True)


def test_crm_configuration_loads_into_an_empty_cib(stack, loaded, work, crm_env):
    """`crm configure load update cluster.crm` into an empty CIB exits 0 without an ERROR line
    (crm_load checks both); loading it again changes nothing (same epoch, same
    configuration); `crm_verify -x` accepts the result; the DC's own properties survive."""
    assert cib_state(loaded.cib)[0][1] != "1", f"the load changed nothing:\n{loaded.first.describe()}"
    cib = Path(shutil.copy(loaded.cib, work / "cib.xml"))
    check_reload_is_noop(cib, stack.root / "cluster.crm", crm_env)
    crm_verify(cib)
    props = {nv.get("name"): nv.get("value") for nv in cib_root(cib).find("configuration/crm_config").iter("nvpair")}
    assert props["cluster-name"] == stack.settings.corosync.cluster_name
    assert props["cluster-infrastructure"] == "corosync"


def test_loaded_cib_carries_the_settings(stack, loaded_cib):
    """What crmsh wrote: the VIP's address, mask and interface, the monitors, stickiness, no
    fencing, HAProxy as systemd:haproxy cloned (interleave=true) and nothing else cloned, the
    VIP colocated with the clone (it follows a running instance) and ordered after it."""
    s = stack.settings
    root = cib_root(loaded_cib)

    def nvpairs(el):
        return {nv.get("name"): nv.get("value") for nv in el.iter("nvpair")}

    resources = root.find("configuration/resources")
    assert sorted((el.tag, el.get("id")) for el in resources) == sorted(
        [("clone", CLONE), ("clone", HEALTH_CLONE), ("primitive", VIP)])
    prims = {p.get("id"): p for p in resources.iter("primitive")}
    assert sorted(prims) == sorted([HAPROXY, HEALTH, VIP])
    vip, haproxy = prims[VIP], prims[HAPROXY]
    assert (vip.get("class"), vip.get("provider"), vip.get("type")) == ("ocf", "hapx", "ipaddr")
    assert nvpairs(vip.find("instance_attributes")) == {
        "ip": str(s.vip), "cidr_netmask": str(s.prefix_len), "nic": s.interface,
        "arp_count": "5", "arp_interval_ms": "200", "drain_ms": str(s.pacemaker.vip_drain_ms),
        "ports": f"{s.haproxy.frontend_port},{s.haproxy.stats_port}"}
    assert nvpairs(vip.find("meta_attributes")) == {"allow-migrate": "true"}
    assert (haproxy.get("class"), haproxy.get("type")) == ("systemd", "haproxy")

    (clone,) = [c for c in resources.iter("clone") if c.get("id") == CLONE]
    assert [child.get("id") for child in clone if child.tag == "primitive"] == [HAPROXY]
    clone_meta = [m for m in clone if m.tag == "meta_attributes"]
    assert len(clone_meta) == 1 and nvpairs(clone_meta[0]) == {"interleave": "true"}, \
        "the clone must be interleaved and keep Pacemaker's defaults otherwise (one instance per node)"

    def monitor(p, role=None):
        (op,) = [o for o in p.iter("op") if o.get("name") == "monitor" and o.get("role") == role]
        return op.get("interval")

    assert monitor(vip) == f"{s.pacemaker.vip_monitor_s}s"
    assert monitor(vip, "Stopped") == f"{s.pacemaker.vip_monitor_s + 1}s"
    assert monitor(haproxy) == f"{s.pacemaker.haproxy_monitor_s}s"
    props = nvpairs(root.find("configuration/crm_config"))
    assert props["stonith-enabled"] == "false"
    defaults = nvpairs(root.find("configuration/rsc_defaults"))
    assert defaults["resource-stickiness"] == str(s.pacemaker.stickiness)
    assert defaults["migration-threshold"] == "3"
    health = scores.backend_health(s)
    assert (prims[HEALTH].get("provider"), prims[HEALTH].get("type")) == ("hapx", "haproxy-health")
    assert nvpairs(prims[HEALTH].find("instance_attributes")) == {
        "name": MASTERS_UP, "backend": rendering.BACKEND, "socket": rendering.ADMIN_SOCKET,
        "multiplier": str(health.multiplier), "hold_s": str(s.pacemaker.backend_health_hold_s),
        "dampen_s": str(health.dampen_s)}
    (coloc,) = root.iter("rsc_colocation")
    assert (coloc.get("rsc"), coloc.get("with-rsc"), coloc.get("score")) == (VIP, CLONE, "INFINITY")
    assert coloc.get("rsc-role") in (None, "Started") and coloc.get("with-rsc-role") in (None, "Started")
    (order,) = root.iter("rsc_order")
    assert (order.get("first"), order.get("then"), order.get("kind")) == (CLONE, VIP, "Mandatory")
    assert order.get("first-action") in (None, "start") and order.get("then-action") in (None, "start")
    assert order.get("symmetrical") in (None, "true")


def test_configure_step_loads_the_validated_file(stack):
    """The configure step writes exactly cluster.crm, the file validated here."""
    (step,) = [s for s in stack.steps if s.kind == "configure"]
    assert heredoc(step.script, CRM_HEREDOC) == (stack.root / "cluster.crm").read_text()


def test_haproxy_starts_everywhere_and_the_vip_after_it(stack, cluster_up):
    """All nodes up: an HAProxy instance starts on every node, the VIP on one of them whose
    HAProxy runs, and the VIP's start waits for the start of the HAProxy on its node."""
    sim, holder = cluster_up
    nodes = node_names(stack)
    running_on(sim.placement, CLONE, nodes)
    assert sim.started(HAPROXY) == sorted(nodes) and sim.stopped(HAPROXY) == []
    assert sim.ops(VIP) == [("start", holder)]
    check_start_waits(sim, VIP, HAPROXY, holder)


def test_failover_moves_only_the_vip(stack, failed_over):
    """The VIP holder fails: the VIP starts on a survivor whose HAProxy runs, and no HAProxy
    starts or stops anywhere (no cold start in the failover path)."""
    sim, holder = failed_over
    survivors = [n for n in node_names(stack) if n != holder]
    survivor = placed_with(sim.placement, VIP, CLONE)
    assert survivor in survivors
    running_on(sim.placement, CLONE, survivors)
    assert sim.ops(VIP) == [("start", survivor)]
    for node in survivors:
        check_untouched(sim, HAPROXY, node)
    assert sim.ops(HAPROXY) == []


def off_dc(stack) -> bool:
    """Whether the stack places the VIP off the DC (pacemaker.vipPlacement off-dc)."""
    return stack.settings.pacemaker.vip_placement == "off-dc"


def test_returning_node_gets_haproxy_back_and_the_vip_by_placement(stack, failed_over, work):
    """The failed node comes back (rebooted, with no resource history) while the survivor that
    runs the VIP is the DC (it is: it outlived its peer): HAProxy starts on the returning node and
    no other HAProxy stops or starts. sticky: the VIP stays on the survivor (no fail-back).
    off-dc: the VIP then migrates to the returning node (off the DC, make-before-break:
    migrate_to, migrate_from, and only then the stop on the DC). Without a DC recorded,
    stickiness keeps the VIP where it is either way."""
    failed, holder = failed_over
    nodes = node_names(stack)
    survivor = placed_with(failed.placement, VIP, CLONE)
    shutil.copy(failed.cib_out, work / "rebooted.xml")
    forget_node_history(work / "rebooted.xml", holder)
    no_dc = simulate(work / "rebooted.xml", work / "back-no-dc.xml", up=[holder])
    assert placed_with(no_dc.placement, VIP, CLONE) == survivor
    assert no_dc.ops(VIP) == [], f"the returning node moved the VIP: {no_dc.actions}"
    back = simulate(set_dc(work / "rebooted.xml", work / "rebooted-dc.xml", survivor),
                    work / "back.xml", up=[holder])
    running_on(back.placement, CLONE, nodes)
    assert back.ops(HAPROXY) == [("start", holder)]
    for node in nodes:
        if node != holder:
            check_untouched(back, HAPROXY, node)
    if not off_dc(stack):
        assert back.ops(VIP) == [], f"the VIP failed back: {back.actions}"
        assert placed_with(back.placement, VIP, CLONE) == survivor
        return
    if len(nodes) == 2:
        assert placed_with(back.placement, VIP, CLONE) == holder
    target = placed_with(back.placement, VIP, CLONE)
    assert target != survivor
    assert back.ops(VIP) == [("migrate_to", survivor), ("migrate_from", target), ("stop", survivor)], back.actions
    migrate_from = back.graph.key(VIP, "migrate_from", target)
    assert back.graph.waits_for(migrate_from, back.graph.key(HAPROXY, "start", holder)) or target != holder
    assert back.graph.waits_for(back.graph.key(VIP, "stop", survivor), migrate_from)


def test_a_vip_on_the_dc_moves_only_off_dc(stack, cluster_up, work):
    """All nodes up and the VIP's node is the DC. sticky: nothing moves. off-dc: the VIP
    migrates to another node (the location rule on #is_dc outscores stickiness),
    make-before-break. HAProxy is left alone everywhere."""
    up, holder = cluster_up
    sim = simulate(set_dc(up.cib_out, work / "dc-in.xml", holder), work / "on-dc.xml")
    assert sim.ops(HAPROXY) == [], sim.actions
    if not off_dc(stack):
        assert sim.ops(VIP) == [], sim.actions
        return
    target = placed_with(sim.placement, VIP, CLONE)
    assert target != holder
    assert sim.ops(VIP) == [("migrate_to", holder), ("migrate_from", target), ("stop", holder)], sim.actions
    assert sim.graph.waits_for(sim.graph.key(VIP, "stop", holder), sim.graph.key(VIP, "migrate_from", target))


def test_a_dc_left_alone_still_runs_the_vip(stack, cluster_up, work):
    """The VIP's node fails and the survivor is the DC: the DC starts the VIP (off-dc's rule
    only adds a bonus elsewhere, it never bans the DC)."""
    up, holder = cluster_up
    survivors = [n for n in node_names(stack) if n != holder]
    dc = survivors[0]
    sim = simulate(set_dc(up.cib_out, work / "dc-in.xml", dc), work / "dc-failed.xml", fail=[holder])
    where = placed_with(sim.placement, VIP, CLONE)
    assert where in survivors
    if len(survivors) == 1:
        assert where == dc and sim.ops(VIP) == [("start", dc)], sim.actions
    assert sim.ops(HAPROXY) == []


def test_transition_delay_and_the_placement_rule(stack, loaded_cib):
    """The loaded CIB carries the DC's transition-delay (100 ms) and, only with off-dc, the VIP's
    preference for a node that is not the DC (a rule on #is_dc, scored above stickiness)."""
    root = cib_root(loaded_cib)
    props = {nv.get("name"): nv.get("value") for nv in root.find("configuration/crm_config").iter("nvpair")}
    assert props["transition-delay"] == "100ms"
    locations = [c for c in root.iter("rsc_location") if c.get("id") == rendering.CRM.vip_location]
    if not off_dc(stack):
        assert not locations, "a sticky VIP has no off-DC rule"
        return
    (loc,) = locations
    assert loc.get("rsc") == VIP
    (rule,) = loc.iter("rule")
    score = rule.get("score")
    assert score == "INFINITY" or int(score) > stack.settings.pacemaker.stickiness
    (expr,) = rule.iter("expression")
    assert (expr.get("attribute"), expr.get("operation"), expr.get("value")) == ("#is_dc", "eq", "false")


def test_standby_moves_only_the_vip_make_before_break(stack, cluster_up, work):
    """`crm node standby` on the VIP holder (planned maintenance): the VIP migrates
    (allow-migrate) to a node whose HAProxy keeps running: migrate_to on the holder (which
    keeps the address), migrate_from on the target (which adds it), and only after that the
    stop on the holder; HAProxy then stops on the node in standby only."""
    up, holder = cluster_up
    others = [n for n in node_names(stack) if n != holder]
    sim = simulate(set_standby(up.cib_out, work / "standby-in.xml", holder), work / "standby.xml")
    target = placed_with(sim.placement, VIP, CLONE)
    assert target in others
    running_on(sim.placement, CLONE, others)
    assert sim.ops(VIP) == [("migrate_to", holder), ("migrate_from", target), ("stop", holder)], sim.actions
    assert sim.ops(HAPROXY) == [("stop", holder)], sim.actions
    for node in others:
        check_untouched(sim, HAPROXY, node)
    migrate_from = sim.graph.key(VIP, "migrate_from", target)
    stop = sim.graph.key(VIP, "stop", holder)
    assert sim.graph.waits_for(migrate_from, sim.graph.key(VIP, "migrate_to", holder))
    assert sim.graph.waits_for(stop, migrate_from), "the old node drops the VIP before the new one has it"
    assert sim.graph.waits_for(sim.graph.key(HAPROXY, "stop", holder), stop)


def test_without_allow_migrate_a_move_is_break_before_make(dev_stack, work, crm_env):
    """The check above sees the difference: without allow-migrate the move is a stop, then a start."""
    cib = load_fresh(dev_stack, work, crm_env, edited_crm(dev_stack, work, lambda t: t.replace("meta allow-migrate=true ", "meta ")))
    up = simulate_up(dev_stack, cib, work)
    holder = placed_with(up.placement, VIP, CLONE)
    sim = simulate(set_standby(up.cib_out, work / "standby-in.xml", holder), work / "standby.xml")
    target = placed_with(sim.placement, VIP, CLONE)
    assert sim.ops(VIP) == [("stop", holder), ("start", target)], sim.actions


def test_haproxy_failing_takes_the_vip_away(stack, cluster_up, loaded_cib, work):
    """HAProxy's monitor fails on the VIP's node. Pacemaker restarts that HAProxy in place
    (migration-threshold is rsc_defaults' 3, not 1: the node is not banned), and the VIP goes to
    another node, whose HAProxy keeps running: the failed node loses its no-failure bonus."""
    assert migration_threshold(loaded_cib) > 1, "a failed HAProxy must be restarted in place, not banned"
    up, holder = cluster_up
    others = [n for n in node_names(stack) if n != holder]
    sim = simulate(up.cib_out, work / "failure.xml", inject=[monitor_failure(stack, holder)])
    where = placed_with(sim.placement, VIP, CLONE)
    assert where != holder, f"still on {holder} after HAProxy failed there"
    running_on(sim.placement, CLONE, node_names(stack))
    for node in others:
        check_untouched(sim, HAPROXY, node)
    assert sim.ops(HAPROXY) == [("stop", holder), ("start", holder)], sim.actions
    # The VIP leaves before its HAProxy stops (the order); its HAProxy serves nothing anyway.
    assert sim.ops(VIP) == [("stop", holder), ("start", where)], sim.actions


def test_haproxy_failing_on_every_node_leaves_the_vip_running(stack, cluster_up, work):
    """HAProxy fails on the VIP's node, then on the node the VIP went to, then on every other
    node, each failure remembered (failure-timeout): each HAProxy is restarted in place, and the
    VIP runs on a node whose HAProxy runs after every failure. With migration-threshold=1 the
    last failure banned the last HAProxy and left the VIP nowhere until a failure expired."""
    up, holder = cluster_up
    sim, victim = up, holder
    failed = []
    for step in range(len(node_names(stack))):
        sim = simulate(sim.cib_out, work / f"failure-{step}.xml", inject=[monitor_failure(stack, victim)])
        failed.append(victim)
        running_on(sim.placement, CLONE, node_names(stack))
        where = placed_with(sim.placement, VIP, CLONE)
        assert sim.ops(HAPROXY) == [("stop", victim), ("start", victim)], sim.actions
        # Next: the VIP's node if its HAProxy has not failed yet, else any node that has not.
        victim = where if where not in failed else next((n for n in node_names(stack) if n not in failed), None)
        if victim is None:
            break
    assert sorted(failed) == sorted(node_names(stack))


def test_a_stray_vip_found_by_a_probe_is_stopped_everywhere_and_started_once(stack, cluster_up, work):
    """A probe finds the VIP's address on a node that does not run it (added by hand, left
    behind, a partition healed; the agent's Stopped-role monitor removes a stray itself, a probe
    may come first): Pacemaker stops it everywhere and starts it on one node, whose start
    announces it again, so no neighbour is left pointing at a node that let it go."""
    up, holder = cluster_up
    other = next(n for n in node_names(stack) if n != holder)
    sim = simulate(up.cib_out, work / "stray.xml", inject=[f"{VIP}_monitor_0@{other}=0"])
    kept = placed_with(sim.placement, VIP, CLONE)
    assert sorted(sim.ops(VIP)) == sorted([("stop", holder), ("stop", other), ("start", kept)]), sim.actions
    check_untouched(sim, HAPROXY, holder)


def test_haproxy_failing_elsewhere_leaves_the_vip_alone(stack, cluster_up, work):
    """HAProxy's monitor fails on a node without the VIP: that instance is restarted in place
    and the VIP is not touched."""
    up, holder = cluster_up
    other = next(n for n in node_names(stack) if n != holder)
    sim = simulate(up.cib_out, work / "elsewhere.xml", inject=[monitor_failure(stack, other)])
    assert placed_with(sim.placement, VIP, CLONE) == holder
    running_on(sim.placement, CLONE, node_names(stack))
    assert sim.ops(VIP) == [], sim.actions
    assert sim.ops(HAPROXY) == [("stop", other), ("start", other)], sim.actions


def test_the_vip_follows_the_node_that_sees_more_masters(stack, cluster_up, work):
    """The health agents' attribute (masters UP x multiplier) on every node: equal counts move
    nothing (stickiness); the VIP's node seeing one master fewer than another node gives the VIP
    up, make-before-break (migrate_to, migrate_from, then the stop), with HAProxy untouched;
    equal again, it stays where it went. Also when the VIP's node is the DC under off-dc."""
    up, holder = cluster_up
    nodes = node_names(stack)
    m = scores.backend_health(stack.settings).multiplier
    masters = len(stack.settings.masters)
    for dc in (None, holder):
        tag = f"dc-{dc}" if dc else "no-dc"
        base = set_dc(up.cib_out, work / f"{tag}-in.xml", dc) if dc else up.cib_out
        equal = simulate(with_node_attributes(base, work / f"{tag}-eq.xml",
                                              {(n, MASTERS_UP): masters * m for n in nodes}),
                         work / f"{tag}-equal.xml")
        start = placed_with(equal.placement, VIP, CLONE)
        if not (dc and off_dc(stack)):
            assert start == holder and equal.ops(VIP) == [], equal.actions
        fewer = {(n, MASTERS_UP): masters * m for n in nodes} | {(start, MASTERS_UP): (masters - 1) * m}
        sim = simulate(with_node_attributes(equal.cib_out, work / f"{tag}-few.xml", fewer),
                       work / f"{tag}-fewer.xml")
        target = placed_with(sim.placement, VIP, CLONE)
        assert target != start, f"{start} sees fewer masters and keeps the VIP ({tag}): {sim.actions}"
        assert sim.ops(VIP) == [("migrate_to", start), ("migrate_from", target), ("stop", start)], sim.actions
        assert sim.ops(HAPROXY) == [], sim.actions
        back = simulate(with_node_attributes(sim.cib_out, work / f"{tag}-back-in.xml",
                                             {(start, MASTERS_UP): masters * m}), work / f"{tag}-back.xml")
        assert back.ops(VIP) == [] or (dc and off_dc(stack)), f"the VIP went back ({tag}): {back.actions}"


def test_without_quorum_nothing_runs(stack, cluster_up, work):
    """A partition without quorum publishes no VIP and runs no HAProxy (no-quorum-policy=stop)."""
    up, _holder = cluster_up
    sim = simulate(up.cib_out, work / "noquorum.xml", quorum=False)
    assert sim.placement == {VIP: (), HAPROXY: (), CLONE: (), HEALTH: (), HEALTH_CLONE: ()}


def test_configure_step_runs_against_the_cluster(stack, loaded_cib, cluster_up, work, crm_env):
    """The configure step itself, run here against an offline CIB of the running cluster:
    its load is a no-op, and it finds HAProxy on every node and the VIP on one of them."""
    up, holder = cluster_up
    cib = restore_agents(loaded_cib, up.cib_out, work / "live.xml")
    before = cib_state(cib)
    result = run_step_offline(step_file(stack, "configure"), cib, crm_env)
    assert result.returncode == 0, result.describe()
    everywhere = " ".join(sorted(node_names(stack)))
    assert f"hapx: VIP {stack.settings.vip} runs on {holder}; HAProxy runs on {everywhere}" in result.output
    assert cib_state(cib) == before


def test_configure_step_retires_what_it_no_longer_renders(dev_stack, dev_loaded, work, crm_env):
    """An object hapx owns but no longer renders (here the off-DC rule of an earlier
    vipPlacement) is deleted by the configure step; an operator's own resource and constraint
    and a `crm resource move` constraint stay."""
    up = simulate_up(dev_stack, dev_loaded.cib, work)
    holder = placed_with(up.placement, VIP, CLONE)
    cib = restore_agents(dev_loaded.cib, up.cib_out, work / "live.xml")
    retired = rendering.CRM.vip_location
    assert retired in rendering.CRM.owned and retired not in rendering.owned_crm_ids(dev_stack.settings)
    old = work / "old.crm"
    old.write_text(f"location {retired} {VIP} rule 200: #is_dc eq false\n"
                   "primitive ops-marker ocf:heartbeat:Dummy\n"
                   f"location ops-pin ops-marker 10: {holder}\n"
                   f"location cli-prefer-{VIP} {VIP} role=Started inf: {holder}\n")
    crm_load(cib, old, crm_env)
    def ids() -> set[str | None]:
        return {e.get("id") for s in ("resources", "constraints")
                for e in cib_root(cib).find(f"configuration/{s}")}
    operators = {"ops-marker", "ops-pin", f"cli-prefer-{VIP}"}
    assert {retired} | operators <= ids()
    result = run_step_offline(step_file(dev_stack, "configure"), cib, crm_env)
    assert result.returncode == 0, result.describe()
    assert f"hapx: retired from the cluster configuration: {retired}\n" in result.output, result.describe()
    assert ids() == set(rendering.owned_crm_ids(dev_stack.settings)) | operators


def test_configure_step_waits_for_haproxy_on_every_node(dev_stack, dev_loaded, work, crm_env):
    """With a node down (the VIP on the survivor, HAProxy on the survivor only) the configure
    step keeps waiting and, at its deadline (shortened here to 2 s in a copy of the step),
    fails saying where it found them: it wants HAProxy on every node, not only a VIP."""
    nodes = node_names(dev_stack)
    up = simulate_up(dev_stack, dev_loaded.cib, work)
    holder = placed_with(up.placement, VIP, CLONE)
    failed = simulate(up.cib_out, work / "failed.xml", fail=[holder])
    survivor = placed_with(failed.placement, VIP, CLONE)
    cib = restore_agents(dev_loaded.cib, failed.cib_out, work / "live.xml")
    script = step_file(dev_stack, "configure").read_text()
    timeout_s = int(re.search(r"deadline=\$\(\(SECONDS \+ (\d+)\)\)", script).group(1))
    short = work / "configure.sh"
    short.write_text(script.replace(f"SECONDS + {timeout_s}))", "SECONDS + 2))").replace(
        f"after {timeout_s}s", "after 2s"))
    assert short.read_text().count("SECONDS + 2))") == 1 and "after 2s" in short.read_text()
    result = run_step_offline(short, cib, crm_env)
    assert result.returncode == 1, result.describe()
    assert f"hapx: after 2s the VIP runs on '{survivor}' and HAProxy on '{survivor}'" in result.output, \
        result.describe()
    assert len(nodes) == 2 and "hapx: crm " not in result.output


def test_wait_members_step_sees_every_node_online(stack, loaded_cib, cluster_up, work, crm_env):
    """The wait-members step itself, run against an offline CIB of the formed cluster (every
    node online, a DC, quorum): it reads crm_mon's XML right and finishes at once."""
    up, holder = cluster_up
    cib = restore_agents(loaded_cib, up.cib_out, work / "live.xml")
    elect_dc(cib, holder)
    result = run_step_offline(step_file(stack, "wait-members"), cib, crm_env)
    assert result.returncode == 0, result.describe()
    assert f"hapx: all {len(stack.settings.nodes)} nodes are online with quorum" in result.output


def test_wait_members_step_waits_for_a_missing_node(dev_stack, dev_loaded, work, crm_env):
    """With a node down the wait-members step keeps waiting (cut short here after 5 s)."""
    nodes = [n.name for n in dev_stack.settings.nodes]
    sim = simulate(simulation_copy(dev_loaded.cib, work / "sim.xml"), work / "up.xml", up=nodes)
    down = simulate(sim.cib_out, work / "down.xml", fail=[nodes[-1]])
    elect_dc(down.cib_out, nodes[0])
    result = run_step_offline(step_file(dev_stack, "wait-members"), down.cib_out, crm_env, timeout=5)
    assert result.returncode == 124, result.describe()  # killed by timeout(1) while waiting
    assert "online with quorum" not in result.output


def test_configure_step_fails_when_crmsh_reports_an_error(dev_stack, dev_loaded, work, crm_env):
    """The configure step promises to fail when crmsh prints an ERROR line even with exit
    status 0 ("check its words too"). crmsh 4.4.1 does that when the CIB has no quorum
    (ERROR: (cluster_status) warning: ... lack of quorum) and it colours the word ERROR even
    when its output is not a terminal, so the step's `grep -q '^ERROR'` must still see it.
    The step must fail right there, not later in its wait for the resources."""
    base_cib = dev_loaded.cib
    sim = simulate_up(dev_stack, base_cib, work)
    cib = restore_agents(base_cib, sim.cib_out, work / "noquorum.xml")
    tree = parse_xml(cib)
    root = tree.getroot()
    root.set("have-quorum", "0")
    for section in ("crm_config", "resources", "constraints", "rsc_defaults"):
        el = root.find(f"configuration/{section}")
        for child in list(el if el is not None else []):
            el.remove(child)
    tree.write(cib, encoding="unicode")

    # crmsh's own words on that CIB: exit status 0 and an ERROR line (coloured).
    probe = work / "probe.xml"
    shutil.copy(cib, probe)
    crmsh = run(private_mounts(["crm", "configure", "load", "update", str(dev_stack.root / "cluster.crm")],
                               tmpfs=["/var/log/crmsh"]), env=crm_env.env(probe))
    assert crmsh.returncode == 0 and crm_errors(crmsh), crmsh.describe()
    assert "\x1b[31mERROR" in crmsh.stdout + crmsh.stderr

    result = run_step_offline(step_file(dev_stack, "configure"), cib, crm_env)
    assert result.returncode == 1, (
        "the configure step did not fail on crmsh's ERROR line:\n" + result.describe()
        + "\ncrmsh said:\n" + crmsh.output)
    assert "hapx: crm configure load update" in result.output and " failed:" in result.output, result.describe()


# --- the checks can fail ------------------------------------------------------------------

@pytest.mark.parametrize("breakage, words", [
    # The seed's stickiness property: Pacemaker 2.1's CIB schema rejects it.
    (lambda t: t.replace("    stonith-enabled=false \\\n",
                         "    stonith-enabled=false \\\n    default-resource-stickiness=100 \\\n", 1),
     "CIB did not pass schema validation"),
    (lambda t: "property default-resource-stickiness=100\n", "Update does not conform to the configured schema"),
    # The seed's plain `property x=y` lines: each one claims cib-bootstrap-options.
    (lambda t: t.replace("property cib-bootstrap-options: \\\n    stonith-enabled=false \\\n",
                         "property stonith-enabled=false\nproperty \\\n", 1),
     "Duplicate resource: cib-bootstrap-options"),
    (lambda t: t + "primitive extra ocf:heartbeat:NoSuchAgent op monitor interval=10s\n",
     "ocf:heartbeat:NoSuchAgent: got no meta-data"),
    (lambda t: t.replace("systemd:haproxy", "systemd:haproxxy"), "systemd:haproxxy: got no meta-data"),
    (lambda t: t + "colocation stray inf: vip no-such-resource\n", "references a resource no-such-resource"),
], ids=["seed-stickiness-property", "seed-property-line", "seed-plain-properties", "unknown-ocf-agent", "misspelt-systemd-unit",
        "dangling-constraint"])
def test_crm_load_rejects_a_broken_configuration(dev_stack, work, crm_env, breakage, words):
    crm_file = write_broken(work, "cluster.crm", (dev_stack.root / "cluster.crm").read_text(), breakage)
    cib = empty_cib(work / "cib.xml", cluster_name=dev_stack.settings.corosync.cluster_name)
    with pytest.raises(CheckFailed) as err:
        crm_load(cib, crm_file, crm_env)
    assert words in str(err.value)


def test_second_load_check_catches_a_change(dev_stack, dev_loaded, work, crm_env):
    """The no-op check sees a load that changes the CIB (here: another stickiness)."""
    cib = Path(shutil.copy(dev_loaded.cib, work / "cib.xml"))
    changed = work / "changed.crm"
    changed.write_text((dev_stack.root / "cluster.crm").read_text().replace(
        "resource-stickiness=100", "resource-stickiness=200"))
    with pytest.raises(CheckFailed, match="changed the CIB"):
        check_reload_is_noop(cib, changed, crm_env)


def test_crm_verify_rejects_fencing_without_devices(dev_loaded, work):
    cib = Path(shutil.copy(dev_loaded.cib, work / "cib.xml"))
    crm_verify(cib)
    tree = parse_xml(cib)
    (nv,) = [nv for nv in tree.getroot().iter("nvpair") if nv.get("name") == "stonith-enabled"]
    nv.set("value", "true")
    tree.write(cib, encoding="unicode")
    with pytest.raises(CheckFailed, match="no STONITH resources have been defined"):
        crm_verify(cib)


def test_colocation_check_catches_a_vip_without_haproxy(dev_stack, work, crm_env):
    """Without the colocation (and the no-failure bonus, which moves the VIP on its own), Pacemaker
    leaves the VIP on a node whose HAProxy has failed for good (migration-threshold reached): the
    check sees the VIP where HAProxy does not run."""
    def edit(text):
        return without_location(rendering.CRM.vip_haproxy_failed)(without_lines("colocation ")(text))
    cib = load_fresh(dev_stack, work, crm_env, edited_crm(dev_stack, work, edit))
    up = simulate_up(dev_stack, cib, work)
    holder = placed_with(up.placement, VIP, CLONE)  # all up: HAProxy runs everywhere
    sim = up
    for failure in range(1, migration_threshold(cib) + 1):
        sim = simulate(sim.cib_out, work / f"failure-{failure}.xml", inject=[monitor_failure(dev_stack, holder)])
    with pytest.raises(CheckFailed, match=f"{VIP} runs on {holder}, where {CLONE} does not run"):
        placed_with(sim.placement, VIP, CLONE)


def test_order_check_catches_a_missing_order(dev_stack, work, crm_env):
    """Without the order, the VIP starts without waiting for HAProxy: the graph check sees it."""
    cib = load_fresh(dev_stack, work, crm_env, edited_crm(dev_stack, work, without_lines("order ")))
    sim = simulate_up(dev_stack, cib, work)
    holder = placed_with(sim.placement, VIP, CLONE)
    with pytest.raises(CheckFailed, match="does not wait for"):
        check_start_waits(sim, VIP, HAPROXY, holder)


def test_everywhere_check_catches_haproxy_on_one_node(dev_stack, work, crm_env):
    """A clone limited to one instance (clone-max=1) is HAProxy on one node only: the
    placement check sees it, and the failover check sees the cold start on the survivor."""
    cib = load_fresh(dev_stack, work, crm_env, edited_crm(
        dev_stack, work, lambda t: t.replace("meta interleave=true", "meta interleave=true clone-max=1")))
    up = simulate_up(dev_stack, cib, work)
    with pytest.raises(CheckFailed, match=f"{CLONE} runs on"):
        running_on(up.placement, CLONE, node_names(dev_stack))
    holder = placed_with(up.placement, VIP, CLONE)
    failed = simulate(up.cib_out, work / "failed.xml", fail=[holder])
    survivor = placed_with(failed.placement, VIP, CLONE)
    with pytest.raises(CheckFailed, match=f"does not leave {HAPROXY} running on {survivor}"):
        check_untouched(failed, HAPROXY, survivor)


def test_warm_check_catches_the_old_cold_start(dev_stack, work, crm_env):
    """The previous design (one HAProxy primitive, no clone): a failover starts HAProxy on the
    survivor, which the failover check reports."""
    cib = load_fresh(dev_stack, work, crm_env, edited_crm(dev_stack, work, lambda t: t.replace(
        "clone haproxy-clone haproxy \\\n    meta interleave=true\n", "").replace(
        "inf: vip haproxy-clone", "inf: vip haproxy").replace("Mandatory: haproxy-clone vip", "Mandatory: haproxy vip")))
    assert [c.get("id") for c in cib_root(cib).iter("clone")] == [HEALTH_CLONE]
    up = simulate_up(dev_stack, cib, work)
    holder = placed_with(up.placement, VIP, HAPROXY)
    failed = simulate(up.cib_out, work / "failed.xml", fail=[holder])
    survivor = placed_with(failed.placement, VIP, HAPROXY)
    with pytest.raises(CheckFailed, match=r"\('start', '" + survivor):
        check_untouched(failed, HAPROXY, survivor)


def test_switching_to_sticky_retires_the_off_dc_rule(dev_stack, work, crm_env):
    """A pair configured with vipPlacement off-dc, then given the default (sticky): the configure
    step retires the rule on #is_dc, so stickiness alone decides from then on."""
    from hapx.settings import settings_from_dict
    from tests.validate.variants import dev

    assert dev_stack.settings.pacemaker.vip_placement == "sticky"
    cfg = dev()
    cfg["pacemaker"] = {"vipPlacement": "off-dc"}
    crm_file = work / "off-dc.crm"
    crm_file.write_text(rendering.cluster_crm(settings_from_dict(cfg)))
    cib = load_fresh(dev_stack, work, crm_env, crm_file, name="off-dc-cib.xml")
    up = simulate_up(dev_stack, cib, work)
    live = restore_agents(cib, up.cib_out, work / "live.xml")
    health_rules = [rendering.CRM.vip_backends, rendering.CRM.vip_haproxy_failed]
    locations = [c.get("id") for c in cib_root(live).iter("rsc_location")]
    assert sorted(locations) == sorted([rendering.CRM.vip_location] + health_rules)
    result = run_step_offline(step_file(dev_stack, "configure"), live, crm_env)
    assert result.returncode == 0, result.describe()
    assert f"hapx: retired from the cluster configuration: {rendering.CRM.vip_location}" in result.output, \
        result.describe()
    assert sorted(c.get("id") for c in cib_root(live).iter("rsc_location")) == sorted(health_rules)
