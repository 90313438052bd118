"""The program through the real engine, on real (emulated) VMs: `pulumi up` from nothing, a
second `up` that changes nothing, day-2 changes, a hard failover, `pulumi destroy`; and the
verdict of the container pair's soak beside them (conftest.py).

The session's lab (conftest.py) ran `pulumi up --stack lab` from nothing; these tests run in
file order on it, each through `lab/labctl --backend vm pulumi`, and the last one destroys the
stack. Client traffic runs inside the lab's network namespace.
"""

from __future__ import annotations

import json
import time

from lab.labclient import Lab, Poller, wait_until
from lab.pulumirun import INTERRUPT_GRACE_S
from tests.conftest import PROJECT, load_stack_file
from tests.labtier import check_vip_serves_through_haproxy

UP_TIMEOUT_S = 2400       # `pulumi up` of a change that rebuilds emulated VMs, one after the other
# How long the polling client waits for one request. Under emulation a seamless HAProxy reload
# still keeps new connections waiting in the listen queue for up to about a second (the new
# worker starts slowly), so the VM tier's client waits longer than the container tier's (1 s,
# at native speed); a connection refused or reset fails at once either way.
CLIENT_TIMEOUT_S = 5      # a patient client: an emulated node on a busy host answers slowly
FAILOVER_BOUND_S = 60     # the VIP serves again from the survivor within this
REJOIN_BOUND_S = 600      # a restarted emulated VM is back in the cluster with HAProxy within this (busy host)
# beyond pulumi's own bound: its interrupt and kill (lab/pulumirun.py), labctl reading the outputs afterwards
LABCTL_MARGIN_S = INTERRUPT_GRACE_S + 180


def pulumi(lab: Lab, *args: str, timeout: float = 600, check: bool = True):
    """`pulumi ARGS --stack lab` against the lab (labctl re-reads the outputs after an up).
    labctl bounds pulumi itself, so that on timeout the stack's lock is released; this bound
    only catches labctl hanging."""
    res = lab.ctl("pulumi", "--timeout", str(timeout), "--", *args, timeout=timeout + LABCTL_MARGIN_S, check=False)
    if check:
        assert res.returncode == 0, f"pulumi {' '.join(args)} exited {res.returncode}:\n{res.stdout}{res.stderr}"
    return res


def planned_changes(lab: Lab) -> dict[str, set[str]]:
    """What the next `up` would do: resource name -> its operations (`pulumi preview --json`)."""
    res = pulumi(lab, "preview", "--json", timeout=300)
    doc = json.loads(res.stdout[res.stdout.index("{"):])
    changes: dict[str, set[str]] = {}
    for step in doc.get("steps", []):
        if step["op"] != "same":
            changes.setdefault(step["urn"].rsplit("::", 1)[1], set()).add(step["op"])
    return changes


def up_under_load(lab: Lab, *flags: str) -> tuple[float, dict]:
    """`pulumi up FLAGS` while a client polls the VIP; the seconds it took and the poller's summary."""
    poller = Poller(lab, connect_timeout=CLIENT_TIMEOUT_S, timeout=CLIENT_TIMEOUT_S, max_seconds=UP_TIMEOUT_S)
    try:
        poller.wait_for("ready", timeout=60)
        t0 = time.monotonic()
        pulumi(lab, "up", "--yes", "--skip-preview", *flags, timeout=UP_TIMEOUT_S)
        took = time.monotonic() - t0
    finally:
        summary = poller.stop()
    return took, summary


def node_index_and_mac(node: str) -> tuple[int, str]:
    """Where the lab's stack file lists a node, and its MAC there."""
    nodes = load_stack_file(str(PROJECT / "Pulumi.lab.yaml"))["nodes"]
    index = next(i for i, n in enumerate(nodes) if n["name"] == node)
    return index, nodes[index]["mac"]


def node_identity(lab: Lab, node: str) -> dict[str, str]:
    """What a rebuild changes on a node: its NIC's MAC, cloud-init's instance-id; and its boot id."""
    out = lab.exec(node, "cat /sys/class/net/eth0/address /var/lib/cloud/data/instance-id "
                         "/proc/sys/kernel/random/boot_id").stdout.split()
    return dict(zip(("mac", "instance", "boot"), out, strict=False))


def settled_everywhere(lab: Lab) -> str:
    """Bounded wait until every node sees the cluster settled; the VIP's node."""
    for node in lab.nodes:
        wait_until(f"cluster settled as {node} sees it", lambda node=node: lab.settled(node), timeout=REJOIN_BOUND_S, interval=3)
    holder = lab.vip_node()
    assert lab.vip_holders() == [holder]
    return holder


def test_up_from_nothing_serves_the_vip(lab, figure):
    """The outputs describe the VMs the engine made, and the VIP serves through HAProxy."""
    timings = lab.state["timings"]
    figure(f"VM lab: `pulumi up` from nothing {timings['pulumi up']:.0f} s, the VIP serving "
           f"{timings['VIP serves after pulumi up']:.0f} s later (image {timings['image (lab/build-image)']:.0f} s, "
           f"engine {timings['engine (scripts/build-engine)']:.0f} s)")
    domains = lab.ctl("virsh", "list", "--name").stdout.split()
    for node, ip in lab.nodes.items():
        assert any(d.endswith(f"-{node}") for d in domains), domains
        assert lab.exec(node, "hostname").stdout.strip() == node
        assert f"inet {ip}/" in lab.exec(node, "ip -4 -o addr show dev eth0").stdout
    check_vip_serves_through_haproxy(lab)


def test_nodes_resolve_the_created_networks_dns_hosts(lab):
    """cloud-init gave the VMs the stack's DNS server and search domain, and the libvirt network
    the stack created serves its network.dnsHosts, by bare name through the search domain."""
    from hapx.settings import settings_from_dict
    from hapx.stackfile import load_stack_file
    from tests.conftest import PROJECT

    network = settings_from_dict(load_stack_file(str(PROJECT / "Pulumi.lab.yaml"))).network
    assert network.dns_hosts, "Pulumi.lab.yaml lists no network.dnsHosts"
    for node in lab.nodes:
        resolv = lab.exec(node, "grep -E '^(nameserver|search) ' /etc/resolv.conf").stdout.split("\n")
        assert resolv[:2] == [f"nameserver {network.dns_servers[0]}", f"search {network.domain}"], resolv
        for host in network.dns_hosts:
            out = lab.exec(node, f"getent hosts {host.name}", check=False).stdout.split()
            assert out[:2] == [str(host.address), f"{host.name}.{network.domain}"], (node, host, out)


def test_stats_page_wants_its_password(lab):
    url = f"http://{lab.vip}:{lab.stats_port}/"

    def code(*auth: str) -> str:
        return lab.client("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
                          *auth, url).stdout.strip()

    assert code() == "401"
    assert code("-u", f"{lab.stats_user}:wrong-{lab.stats_password}") == "401"
    assert code("-u", f"{lab.stats_user}:{lab.stats_password}") == "200"
    assert "kubernetes-masters" in lab.stats_csv()


def test_a_second_up_changes_nothing_and_refresh_finds_no_drift(lab):
    assert planned_changes(lab) == {}
    # --skip-preview: `refresh --yes` would otherwise read every resource twice (a preview of
    # the refresh, then the refresh), and the provider's read of a cloud-init disk is a libvirt
    # stream download (see CHANGELOG.md, 2026-11-28, on a refresh that hung).
    pulumi(lab, "refresh", "--yes", "--skip-preview", "--expect-no-changes", timeout=300)
    pulumi(lab, "preview", "--expect-no-changes", timeout=300)


def test_changing_a_master_runs_only_the_haproxy_steps_and_drops_nothing(lab, figure):
    # The new master is up before it is named, as in production (the lab's stand-in answers
    # on every address of its namespace's loopback).
    lab.client("ip", "addr", "replace", "10.99.5.104/32", "dev", "lo", check=True)
    pulumi(lab, "config", "set", "--path", "hapx:masters[2].address", "10.99.5.104")
    changed = planned_changes(lab)
    assert set(changed) == {f"hapx-install-haproxy-{n}" for n in lab.nodes}, changed
    took, summary = up_under_load(lab)
    figure(f"VM lab: one master changed through `pulumi up` in {took:.0f} s: {summary['probes']} requests, "
           f"{summary['failed']} failed")
    assert summary["failed"] == 0 and not summary["outages"], json.dumps(summary)
    changed_lab = Lab("vm")
    assert {"name": "kube-mast03", "address": "10.99.5.104", "port": 6443} in changed_lab.masters
    wait_until("kube-mast03 UP at its new address in HAProxy's stats",
               lambda: any(line.startswith("kubernetes-masters,kube-mast03,") and ",UP," in line
                           for line in changed_lab.stats_csv().splitlines()), timeout=60, interval=2)
    for node in lab.nodes:
        assert "10.99.5.104:6443" in lab.exec(node, "sudo grep kube-mast03 /etc/haproxy/haproxy.cfg").stdout
    pulumi(lab, "preview", "--expect-no-changes", timeout=300)


def test_one_up_rebuilds_one_vm_and_redefines_the_other_with_the_vip_served(lab, figure):
    """One `pulumi up`, both day-2 kinds of replacement, one node after the other, each drained
    first. A new MAC for the node that holds the VIP is applied by cloud-init (the network is
    matched by MAC), so that node is rebuilt on a fresh disk; a smaller vm.memoryMiB redefines
    every domain, so the other node is redefined on its own disk (vm.vcpus does the same, at more
    cost to an emulated host). Every join lifts its drain rule, fresh disk or not, so the second
    node's drain can move the VIP back and no rule outlives the `up`. A client polling throughout
    sees at most requests broken in flight as the VIP moved, never a refused one."""
    holder = settled_everywhere(lab)
    other = lab.other(holder)
    before = {n: node_identity(lab, n) for n in lab.nodes}
    index, mac = node_index_and_mac(holder)
    new_mac = mac[:-2] + f"{int(mac[-2:], 16) ^ 0x80:02x}"
    memory = load_stack_file(str(PROJECT / "Pulumi.lab.yaml")).get("vm", {}).get("memoryMiB", 1024)
    pulumi(lab, "config", "set", "--path", f"hapx:nodes[{index}].mac", new_mac)
    pulumi(lab, "config", "set", "--path", "hapx:vm.memoryMiB", str(memory - 64))
    changed = planned_changes(lab)
    replaced = ("replace", "create-replacement")
    for part in ("domain", "disk", "cloudinit"):
        assert any(op in changed.get(f"{holder}-{part}", set()) for op in replaced), (holder, part, changed)
    assert any(op in changed.get(f"{other}-domain", set()) for op in replaced), (other, changed)
    assert f"{other}-disk" not in changed and f"{other}-cloudinit" not in changed, (other, changed)
    took, summary = up_under_load(lab)
    refused = [o for o in summary["outages"] if o["refused"]]
    figure(f"VM lab: {holder} (holding the VIP) rebuilt with a new MAC and {other} redefined on its disk "
           f"(vm.memoryMiB) by one `pulumi up` in {took:.0f} s: {summary['probes']} requests, "
           f"{summary['refused']} refused, {summary['broken']} broken in flight")
    assert not refused and not summary["still_down"], json.dumps(summary)
    lab = Lab("vm")  # the rebuilt node's new MAC, as the outputs now give it
    after = {n: node_identity(lab, n) for n in lab.nodes}
    assert after[holder]["mac"] == new_mac and after[holder]["instance"] != before[holder]["instance"], after
    assert after[other]["instance"] == before[other]["instance"] and after[other]["boot"] != before[other]["boot"]
    holder = settled_everywhere(lab)
    rules = lab.exec(holder, "sudo cibadmin --query --scope constraints").stdout
    assert "hapx-drain-" not in rules and "cli-ban-" not in rules, rules
    pulumi(lab, "preview", "--expect-no-changes", timeout=300)


def domain_urn(lab: Lab, node: str) -> str:
    """The URN of a node's libvirt domain in the lab stack's state."""
    export = json.loads(pulumi(lab, "stack", "export", timeout=120).stdout)
    return next(r["urn"] for r in export["deployment"]["resources"] if r["urn"].endswith(f"::{node}-domain"))


def test_hard_failover_then_the_dead_vm_replaced_by_a_plain_up_replace(lab, figure):
    """The VM that holds the VIP is powered off: the survivor serves it within a failover. The VM
    an operator then replaces is dead: its drain runs on the survivor (which holds the VIP:
    nothing to move), so `pulumi up --replace` of its domain just works: defined again on its
    disk, it boots and rejoins, the VIP stays where it went (no fail-back), and a client polling
    throughout the replacement sees not one failed request."""
    lab = Lab("vm")
    victim = settled_everywhere(lab)
    survivor = lab.other(victim)
    urn = domain_urn(lab, victim)
    boot = node_identity(lab, victim)["boot"]
    # The outage is measured as the container tier measures it (1 s per request).
    poller = Poller(lab, max_seconds=FAILOVER_BOUND_S + 120)
    try:
        poller.wait_for("ready", timeout=60)
        mark = poller.mark()
        t_kill = time.time()
        lab.kill(victim)
        poller.wait_for("down", timeout=30, after=mark)
        up = poller.wait_for("up", timeout=FAILOVER_BOUND_S, after=mark)
    finally:
        summary = poller.stop()
    assert not summary["still_down"], json.dumps(summary)
    assert lab.vip_node(ask=survivor) == survivor and lab.holds_vip(survivor)
    wait_until(f"{survivor} sees {victim} gone", lambda: lab.crm_status(survivor)["online"].get(victim) is False,
               timeout=FAILOVER_BOUND_S, interval=2)
    # The replacement with the VM tier's patient client: a booting VM takes CPU from the
    # emulated survivor, which may answer slowly but must not drop a request.
    took, summary = up_under_load(lab, "--replace", urn)
    figure(f"VM lab: {victim} powered off, served from {survivor} after {up['t'] - t_kill:.2f} s "
           f"(outage {up['outage_s']:.2f} s); then replaced by `pulumi up --replace` in {took:.0f} s: "
           f"{summary['probes']} requests, {summary['failed']} failed, the VIP stayed on {survivor}")
    assert summary["failed"] == 0 and not summary["outages"], json.dumps(summary)
    assert settled_everywhere(lab) == survivor, f"the VIP failed back to {victim}"
    assert node_identity(lab, victim)["boot"] != boot
    pulumi(lab, "preview", "--expect-no-changes", timeout=300)


def test_default_timers_rode_out_the_loaded_host(lab, soak_on_a_loaded_host, figure):
    """The container pair at hapx's default timers soaked, no fault injected, while this tier
    booted, rebuilt and killed emulated VMs beside it (each boot takes a core of the host): not
    one membership change on either node, the VIP never moved, not one failed request."""
    rc, out = soak_on_a_loaded_host.wait()
    verdict = out.strip().splitlines()[-1] if out.strip() else "(no output)"
    figure(f"containers at the default timers, soaking while the VM tier ran: {verdict}")
    assert rc == 0, out


def test_destroy_removes_everything_the_stack_made(lab, figure):
    t0 = time.monotonic()
    pulumi(lab, "destroy", "--yes", "--skip-preview", timeout=900)
    figure(f"VM lab: `pulumi destroy` took {time.monotonic() - t0:.1f} s")
    assert lab.ctl("virsh", "list", "--all", "--name").stdout.split() == []
    volumes = lab.ctl("virsh", "vol-list", "default").stdout.splitlines()[2:]  # after the header
    assert not [line for line in volumes if line.strip()], volumes
    assert lab.ctl("virsh", "net-list", "--all", "--name").stdout.split() == []
    export = json.loads(pulumi(lab, "stack", "export", timeout=120).stdout)
    assert not export["deployment"].get("resources"), export["deployment"].get("resources")
