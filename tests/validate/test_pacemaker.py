"""The crm configuration: crmsh 4.4 loads it into an empty offline CIB (idempotently), Pacemaker
2.1's crm_verify accepts the result, and crm_simulate shows the VIP and HAProxy starting
together, failing over together, and staying put when the failed node returns.

Offline, two things differ from a node, and the tests say where they step in:
- `systemd:` agents: Pacemaker describes them through systemd's D-Bus, which this host does
  not run. crmsh asks `crm_resource --show-metadata systemd:haproxy`; a small shim answers
  with the exact text libcrmservice generates on a node, only for units installed here
  (haproxy.service is), so a misspelt unit is still an error (see harness.make_crm_env).
  For crm_simulate the CIB copy maps `systemd:haproxy` to `ocf:heartbeat:Dummy`
  (harness.simulation_copy): placement does not depend on the agent class.
- Quorum: corosync's `two_node: 1` keeps the survivor of two quorate, but crm_simulate
  cannot see corosync; the simulations pass `-q 1` (what votequorum reports: two_node for
  two nodes, a majority of two out of three otherwise). The empty CIB the configuration is
  loaded into is marked quorate, as the live CIB is when the configure step runs (after
  wait-members saw quorum); without that, crmsh reports Pacemaker's "resource management
  disabled due to lack of quorum" as an ERROR line.
"""

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.validate import harness
from tests.validate.harness import CheckFailed

CRM_HEREDOC = "HAPX_CLUSTER_CRM"


def step_file(stack, kind):
    (path,) = [stack.root / s["script"] for s in stack.plan["steps"] if s["kind"] == kind]
    return path


def load_fresh(stack, work, crm_env, crm_file=None, name="cib.xml"):
    cib = harness.empty_cib(work / name, cluster_name=stack.settings.corosync.cluster_name)
    harness.crm_load(cib, crm_file or stack.root / "cluster.crm", crm_env)
    return cib


@dataclass(frozen=True)
class Loaded:
    cib: Path
    first: harness.ToolResult


@pytest.fixture(scope="session")
def loaded(stack, tmp_path_factory):
    """The stack's cluster.crm loaded once into an empty CIB (shared by the tests below)."""
    base = tmp_path_factory.mktemp(f"cib-{stack.name}")
    cib = harness.empty_cib(base / "cib.xml", cluster_name=stack.settings.corosync.cluster_name)
    first = harness.crm_load(cib, stack.root / "cluster.crm", harness.make_crm_env(base))
    yield Loaded(cib, first)
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def dev_loaded(dev_stack, tmp_path_factory):
    """The dev stack's cluster.crm loaded once, for the tests that break the result."""
    base = tmp_path_factory.mktemp("cib-dev-negative")
    cib = harness.empty_cib(base / "cib.xml", cluster_name=dev_stack.settings.corosync.cluster_name)
    first = harness.crm_load(cib, dev_stack.root / "cluster.crm", harness.make_crm_env(base))
    yield Loaded(cib, first)
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def loaded_cib(loaded):
    return loaded.cib


@pytest.fixture
def cluster_up(stack, loaded_cib, work):
    """All nodes up in the simulation; returns (simulation, the node holding the VIP)."""
    sim_cib = harness.simulation_copy(loaded_cib, work / "sim.xml")
    sim = harness.simulate(sim_cib, work / "up.xml", up=[n.name for n in stack.settings.nodes])
    return sim, harness.together_on(sim.placement, "vip", "haproxy")


def test_crm_configuration_loads_into_an_empty_cib(stack, loaded, work, crm_env):
    """`crm configure load update cluster.crm` into an empty CIB exits 0 without an ERROR line
    (crm_load checks both); loading it again changes nothing (same epoch, same
    configuration); `crm_verify -x` accepts the result; the DC's own properties survive."""
    assert harness.cib_state(loaded.cib)[0][1] != "1", f"the load changed nothing:\n{loaded.first.describe()}"
    cib = Path(shutil.copy(loaded.cib, work / "cib.xml"))
    harness.check_reload_is_noop(cib, stack.root / "cluster.crm", crm_env)
    harness.crm_verify(cib)
    props = {nv.get("name"): nv.get("value") for nv in harness.cib_root(cib).find("configuration/crm_config").iter("nvpair")}
    assert props["cluster-name"] == stack.settings.corosync.cluster_name
    assert props["cluster-infrastructure"] == "corosync"


def test_loaded_cib_carries_the_settings(stack, loaded_cib):
    """What crmsh wrote: the VIP's address, mask and interface, the monitors, stickiness, no
    fencing, HAProxy as systemd:haproxy, the VIP colocated with and ordered before HAProxy."""
    s = stack.settings
    root = harness.cib_root(loaded_cib)

    def nvpairs(el):
        return {nv.get("name"): nv.get("value") for nv in el.iter("nvpair")}

    prims = {p.get("id"): p for p in root.iter("primitive")}
    assert sorted(prims) == ["haproxy", "vip"]
    vip, haproxy = prims["vip"], prims["haproxy"]
    assert (vip.get("class"), vip.get("provider"), vip.get("type")) == ("ocf", "heartbeat", "IPaddr2")
    assert nvpairs(vip.find("instance_attributes")) == {
        "ip": str(s.vip), "cidr_netmask": str(s.prefix_len), "nic": s.interface}
    assert (haproxy.get("class"), haproxy.get("type")) == ("systemd", "haproxy")

    def monitor(p):
        (op,) = [o for o in p.iter("op") if o.get("name") == "monitor"]
        return op.get("interval")

    assert monitor(vip) == f"{s.pacemaker.vip_monitor_s}s"
    assert monitor(haproxy) == f"{s.pacemaker.haproxy_monitor_s}s"
    props = nvpairs(root.find("configuration/crm_config"))
    assert props["stonith-enabled"] == "false"
    defaults = nvpairs(root.find("configuration/rsc_defaults"))
    assert defaults["resource-stickiness"] == str(s.pacemaker.stickiness)
    (coloc,) = root.iter("rsc_colocation")
    assert (coloc.get("rsc"), coloc.get("with-rsc"), coloc.get("score")) == ("vip", "haproxy", "INFINITY")
    (order,) = root.iter("rsc_order")
    assert (order.get("first"), order.get("then"), order.get("kind")) == ("vip", "haproxy", "Mandatory")


def test_configure_step_loads_the_validated_file(stack):
    """The configure step writes exactly cluster.crm, the file validated here."""
    (step,) = [s for s in stack.steps if s.kind == "configure"]
    assert harness.heredoc(step.script, CRM_HEREDOC) == (stack.root / "cluster.crm").read_text()


def test_vip_and_haproxy_start_together(stack, cluster_up):
    """All nodes up: the VIP and HAProxy start on one node, the VIP first."""
    sim, holder = cluster_up
    assert sim.started("vip") == [holder] and sim.started("haproxy") == [holder]
    assert sim.graph.waits_for(f"haproxy_start_0@{holder}", f"vip_start_0@{holder}"), \
        "HAProxy's start does not wait for the VIP's"


def test_failover_moves_both_to_a_survivor(stack, cluster_up, work):
    """The node holding them fails: both start together on a survivor, the VIP first."""
    up, holder = cluster_up
    sim = harness.simulate(up.cib_out, work / "failed.xml", fail=[holder])
    survivor = harness.together_on(sim.placement, "vip", "haproxy")
    assert survivor != holder and survivor in {n.name for n in stack.settings.nodes}
    assert sim.started("vip") == [survivor] and sim.started("haproxy") == [survivor]
    assert sim.graph.waits_for(f"haproxy_start_0@{survivor}", f"vip_start_0@{survivor}")


def test_returning_node_does_not_take_them_back(stack, cluster_up, work):
    """The failed node comes back (rebooted, with no resource history): stickiness keeps the
    VIP and HAProxy where they are; the cluster only probes the returning node."""
    up, holder = cluster_up
    failed = harness.simulate(up.cib_out, work / "failed.xml", fail=[holder])
    survivor = harness.together_on(failed.placement, "vip", "haproxy")
    shutil.copy(failed.cib_out, work / "rebooted.xml")
    harness.forget_node_history(work / "rebooted.xml", holder)
    back = harness.simulate(work / "rebooted.xml", work / "back.xml", up=[holder])
    assert harness.together_on(back.placement, "vip", "haproxy") == survivor
    moves = [a for a in back.actions if a[0] in ("vip", "haproxy") and a[1] != "monitor"]
    assert not moves, f"the returning node caused {moves}"


def test_haproxy_failing_repeatedly_takes_the_vip_away(stack, cluster_up, loaded_cib, work):
    """HAProxy's monitor fails on the holder: it is recovered in place until the
    migration-threshold is reached, then HAProxy and the VIP move together to another node."""
    up, holder = cluster_up
    defaults = {nv.get("name"): nv.get("value") for nv in harness.cib_root(loaded_cib).iter("nvpair")}
    threshold = int(defaults["migration-threshold"])
    spec = f"haproxy_monitor_{stack.settings.pacemaker.haproxy_monitor_s * 1000}@{holder}=7"
    cib = up.cib_out
    for failure in range(1, threshold + 1):
        sim = harness.simulate(cib, work / f"failure-{failure}.xml", inject=[spec])
        where = harness.together_on(sim.placement, "vip", "haproxy")
        if failure < threshold:
            assert where == holder, f"moved after {failure} failure(s) of {threshold}"
        else:
            assert where != holder, f"still on {holder} after {failure} failures"
        cib = sim.cib_out


def test_without_quorum_nothing_runs(stack, cluster_up, work):
    """A partition without quorum publishes no VIP (no-quorum-policy=stop)."""
    up, holder = cluster_up
    sim = harness.simulate(up.cib_out, work / "noquorum.xml", quorum=False)
    assert sim.placement == {"vip": (), "haproxy": ()}


def test_configure_step_runs_against_the_cluster(stack, loaded_cib, cluster_up, work, crm_env):
    """The configure step itself, run here against an offline CIB of the running cluster:
    its load is a no-op, and it finds the VIP and HAProxy on the same node."""
    up, holder = cluster_up
    cib = harness.restore_agents(loaded_cib, up.cib_out, work / "live.xml")
    before = harness.cib_state(cib)
    result = harness.run_step_offline(step_file(stack, "configure"), cib, crm_env)
    assert result.returncode == 0, result.describe()
    assert f"hapx: VIP {stack.settings.vip} and HAProxy run on {holder}" in result.output
    assert harness.cib_state(cib) == before


def test_wait_members_step_sees_every_node_online(stack, loaded_cib, cluster_up, work, crm_env):
    """The wait-members step itself, run against an offline CIB of the formed cluster (every
    node online, a DC, quorum): it reads crm_mon's XML right and finishes at once."""
    up, holder = cluster_up
    cib = harness.restore_agents(loaded_cib, up.cib_out, work / "live.xml")
    harness.elect_dc(cib, holder)
    result = harness.run_step_offline(step_file(stack, "wait-members"), cib, crm_env)
    assert result.returncode == 0, result.describe()
    assert f"hapx: all {len(stack.settings.nodes)} nodes are online with quorum" in result.output


def test_wait_members_step_waits_for_a_missing_node(dev_stack, dev_loaded, work, crm_env):
    """With a node down the wait-members step keeps waiting (cut short here after 5 s)."""
    nodes = [n.name for n in dev_stack.settings.nodes]
    sim = harness.simulate(harness.simulation_copy(dev_loaded.cib, work / "sim.xml"), work / "up.xml", up=nodes)
    down = harness.simulate(sim.cib_out, work / "down.xml", fail=[nodes[-1]])
    harness.elect_dc(down.cib_out, nodes[0])
    result = harness.run_step_offline(step_file(dev_stack, "wait-members"), down.cib_out, crm_env, timeout=5)
    assert result.returncode == 124, result.describe()  # killed by timeout(1) while waiting
    assert "online with quorum" not in result.output


def test_configure_step_fails_when_crmsh_reports_an_error(dev_stack, dev_loaded, work, crm_env):
    """The configure step promises to fail when crmsh prints an ERROR line even with exit
    status 0 ("check its words too"). crmsh 4.4.1 does that when the CIB has no quorum
    (ERROR: (cluster_status) warning: ... lack of quorum) and it colours the word ERROR even
    when its output is not a terminal, so the step's `grep -q '^ERROR'` must still see it."""
    base_cib = dev_loaded.cib
    sim = harness.simulate(harness.simulation_copy(base_cib, work / "sim.xml"), work / "up.xml",
                           up=[n.name for n in dev_stack.settings.nodes])
    cib = harness.restore_agents(base_cib, sim.cib_out, work / "noquorum.xml")
    tree = harness.parse_xml(cib)
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
    crmsh = harness.run(harness.private_mounts(["crm", "configure", "load", "update", str(dev_stack.root / "cluster.crm")],
                                               tmpfs=["/var/log/crmsh"]), env=crm_env.env(probe))
    assert crmsh.returncode == 0 and harness.crm_errors(crmsh), crmsh.describe()
    assert "\x1b[31mERROR" in crmsh.stdout + crmsh.stderr

    result = harness.run_step_offline(step_file(dev_stack, "configure"), cib, crm_env)
    assert result.returncode != 0, (
        "the configure step succeeded although crmsh printed an ERROR line:\n" + result.describe()
        + "\ncrmsh said:\n" + crmsh.output)


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
    text = (dev_stack.root / "cluster.crm").read_text()
    broken = breakage(text)
    assert broken != text
    crm_file = work / "cluster.crm"
    crm_file.write_text(broken)
    cib = harness.empty_cib(work / "cib.xml", cluster_name=dev_stack.settings.corosync.cluster_name)
    with pytest.raises(CheckFailed) as err:
        harness.crm_load(cib, crm_file, crm_env)
    assert words in str(err.value)


def test_second_load_check_catches_a_change(dev_stack, dev_loaded, work, crm_env):
    """The no-op check sees a load that changes the CIB (here: another stickiness)."""
    cib = Path(shutil.copy(dev_loaded.cib, work / "cib.xml"))
    changed = work / "changed.crm"
    changed.write_text((dev_stack.root / "cluster.crm").read_text().replace(
        "resource-stickiness=100", "resource-stickiness=200"))
    with pytest.raises(CheckFailed, match="changed the CIB"):
        harness.check_reload_is_noop(cib, changed, crm_env)


def test_crm_verify_rejects_fencing_without_devices(dev_loaded, work):
    cib = Path(shutil.copy(dev_loaded.cib, work / "cib.xml"))
    harness.crm_verify(cib)
    tree = harness.parse_xml(cib)
    (nv,) = [nv for nv in tree.getroot().iter("nvpair") if nv.get("name") == "stonith-enabled"]
    nv.set("value", "true")
    tree.write(cib, encoding="unicode")
    with pytest.raises(CheckFailed, match="no STONITH resources have been defined"):
        harness.crm_verify(cib)


def test_simulation_check_catches_resources_apart(dev_stack, work, crm_env):
    """Without the colocation, Pacemaker spreads the two resources: the check sees it."""
    crm_file = work / "cluster.crm"
    crm_file.write_text("".join(line for line in (dev_stack.root / "cluster.crm").read_text().splitlines(True)
                                if not line.startswith("colocation ")))
    cib = load_fresh(dev_stack, work, crm_env, crm_file)
    sim = harness.simulate(harness.simulation_copy(cib, work / "sim.xml"), work / "up.xml",
                           up=[n.name for n in dev_stack.settings.nodes])
    with pytest.raises(CheckFailed, match="not placed together"):
        harness.together_on(sim.placement, "vip", "haproxy")


def test_order_check_catches_a_missing_order(dev_stack, work, crm_env):
    crm_file = work / "cluster.crm"
    crm_file.write_text("".join(line for line in (dev_stack.root / "cluster.crm").read_text().splitlines(True)
                                if not line.startswith("order ")))
    cib = load_fresh(dev_stack, work, crm_env, crm_file)
    sim = harness.simulate(harness.simulation_copy(cib, work / "sim.xml"), work / "up.xml",
                           up=[n.name for n in dev_stack.settings.nodes])
    holder = harness.together_on(sim.placement, "vip", "haproxy")
    assert not sim.graph.waits_for(f"haproxy_start_0@{holder}", f"vip_start_0@{holder}")
