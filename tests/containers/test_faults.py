"""The fault suite, at native speed: each test is bounded and leaves the cluster healthy (every
node online, HAProxy on every node, the VIP on one) for the next.

    hard failovers   20 in a row (`labctl kill` of the VIP's node, from the second on also the
                     DC: the container's init and its link gone at once, then `labctl start`):
                     after each the VIP is on exactly one node and serves; the restarted node
                     rejoins without taking the VIP back (no fail-back), and a client polling
                     throughout its rejoin sees not one failed request
    HAProxy killed   SIGKILL to HAProxy on the VIP's node: Pacemaker's monitor sees it and
                     moves the VIP to the warm instance; the killed one is started again, and
                     the VIP stays where it went
    switchover       `crm node standby` of the VIP's node under load: the old node's open
                     connections handed back to it, not one failed request, no fail-back
    partition        the link between the nodes cut on the lab bridge, no fencing: both
                     nodes hold the VIP (asserted, as documented); healed, one node keeps it
    config change    a master added and a timeout changed, applied while a client polls the
                     VIP: not one failed request
    timer change     corosync's token changed (a rolling restart of corosync, one node at a
                     time) under load: not one failed request

Bounds here hold on a loaded host: they catch a failover that does not happen, not a slow
one (the benchmark, `make bench`, measures speed). HAPX_LAB_FAILOVERS=N shortens the first
test while debugging; the test command runs 20.

One switch runs the same suite on the VM lab: HAPX_LAB_BACKEND=vm (`make faults-vm`), with
bounds and a client patient enough for emulated VMs; changes then go through `pulumi up` of
the lab stack instead of the plan's steps.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import statistics
import time
from pathlib import Path

import yaml

from lab import vmlab
from lab.labclient import (
    CRM,
    LINGER_S,
    PROJECT,
    Lab,
    Poller,
    apply_under_poll,
    client_poller,
    labctl,
    render_with_secrets,
    wait_until,
)
from tests.containers.conftest import BACKEND
from tests.containers.test_cluster import vip_with_running_haproxy

FAILOVERS = int(os.environ.get("HAPX_LAB_FAILOVERS", "20"))
# What ocf:hapx:ipaddr logs (through Pacemaker's executor) in a planned move, and where.
PACEMAKER_LOG = "/var/log/pacemaker/pacemaker.log"
HANDOFF_LOG = "ocf:hapx:ipaddr: handing connections to"
DRAINED_LOG = "ocf:hapx:ipaddr: (drained in|drain_ms)"
POLL_S = 0.05             # the client's probe interval
# Bounds, native speed and emulated: an emulated VM boots in minutes and answers slowly on a busy host.
_VM = BACKEND == "vm"
FAILOVER_BOUND_S = 60 if _VM else 30    # the VIP serves again from the survivor within this
REJOIN_BOUND_S = 600 if _VM else 120    # a restarted node is online with HAProxy running within this
MOVE_BOUND_S = 30 if _VM else 15        # after HAProxy's failed monitor, the VIP serves from the other node within this
HEAL_BOUND_S = 120 if _VM else 60       # after the partition heals, the VIP is on one node within this
SPLIT_BOUND_S = 60 if _VM else 30       # the partition is seen (each node alone, each with the VIP) within this
HANDOFF_BOUND_S = 60                    # the new node's hand-off table is gone within this (drain_ms + 10 s)
CLIENT_TIMEOUT_S = 5.0 if _VM else 1.0  # how long the client waits for one request outside a failover
POLLER_MAX_S = FAILOVERS * (FAILOVER_BOUND_S + REJOIN_BOUND_S) + 600


def client(lab: Lab, max_seconds: float = 900) -> Poller:
    """A client polling the VIP every POLL_S, as patient as the backend needs."""
    return client_poller(lab, POLL_S, CLIENT_TIMEOUT_S, max_seconds=max_seconds)


def healthy(lab: Lab) -> str:
    """Wait (bounded) until the cluster is settled as every node sees it and every node has
    published the same, non-zero backend health; the VIP's node. A node just back publishes what
    its fresh HAProxy sees (no master checked UP yet: 0) and its real count only after
    backendHealthHoldSeconds: a test started in between measures placement by that count."""
    for node in lab.nodes:
        wait_until(f"cluster settled as {node} sees it", lambda node=node: lab.settled(node), timeout=REJOIN_BOUND_S, interval=1)
    ask = next(iter(lab.nodes))
    wait_until("every node's backend health published and equal", lambda: same_health(lab.health_counts(ask), lab),
               timeout=REJOIN_BOUND_S, interval=1)
    holder = vip_with_running_haproxy(lab.crm_status(next(iter(lab.nodes))))
    assert lab.vip_holders() == [holder]
    return holder


def same_health(counts: dict[str, int], lab: Lab) -> bool:
    """Every node's backend health published, equal and non-zero."""
    values = {counts.get(node, 0) for node in lab.nodes}
    return len(values) == 1 and min(values) > 0


def dc_of(lab: Lab, ask: str) -> str:
    """The DC as `ask` sees it."""
    st = lab.crm_status(ask)
    m = re.search(r'<current_dc [^>]*name="([^"]+)"', st["xml"])
    assert m, st["xml"]
    return m.group(1)


def monitor_interval_s(lab: Lab, node: str, resource: str) -> int:
    """The monitor interval of `resource` in the live CIB."""
    op = lab.exec(node, f"sudo cibadmin --query --xpath \"//primitive[@id='{resource}']//op[@name='monitor']\"").stdout
    m = re.search(r'interval="(\d+)s?"', op)
    assert m, op
    return int(m.group(1))


def test_twenty_hard_failovers_and_rejoins_without_fail_back(lab, figure):
    """Each run: kill the VIP's node (from the second run on it is also the DC: the survivor
    of a failover is the DC, and the VIP stays with it); the survivor serves the VIP alone;
    start the node again: it rejoins and HAProxy runs on it again, but the VIP stays where it is
    (sticky, no fail-back), so the client sees not one failed request during the rejoin."""
    healthy(lab)
    poller = client(lab, max_seconds=POLLER_MAX_S)
    outages, rejoins, dc_lost = [], [], 0
    victim = None
    try:
        poller.wait_for("ready", timeout=60)
        for run in range(1, FAILOVERS + 1):
            victim = lab.vip_node()
            assert victim, "the VIP runs nowhere"
            survivor = lab.other(victim)
            was_dc = dc_of(lab, survivor) == victim
            dc_lost += was_dc
            mark = poller.mark()
            t_kill = time.time()
            lab.kill(victim)
            poller.wait_for("down", timeout=10, after=mark)
            up = poller.wait_for("up", timeout=FAILOVER_BOUND_S, after=mark)
            assert vip_with_running_haproxy(lab.crm_status(survivor)) == survivor
            assert lab.holds_vip(survivor), f"run {run}: Pacemaker says {survivor}, the kernel disagrees"
            outages.append(up["outage_s"])

            mark = poller.mark()
            t_start = time.monotonic()
            lab.start(victim)
            wait_until(f"run {run}: {victim} online again with HAProxy", lambda survivor=survivor: lab.settled(survivor),
                       timeout=REJOIN_BOUND_S, interval=0.5)
            rejoins.append(time.monotonic() - t_start)
            time.sleep(LINGER_S)  # a move of the VIP just after the rejoin still counts
            assert lab.vip_node(ask=victim) == survivor and lab.vip_holders() == [survivor], \
                f"run {run}: the VIP failed back to {victim}"
            failed = poller.since(mark, "down")
            assert not failed, f"run {run}: requests failed while {victim} rejoined: {failed}"
            figure(f"{lab.backend}: hard failover {run:2d}: {victim} killed{' (the DC)' if was_dc else ''}, "
                   f"served from {survivor} after {up['t'] - t_kill:.2f} s (outage {up['outage_s']:.2f} s); "
                   f"rejoined in {rejoins[-1]:.1f} s, the VIP stayed")
            victim = None
    finally:
        summary = poller.stop()
        if victim:
            lab.start(victim)
    figure(f"{lab.backend}: hard failovers: {len(outages)} runs ({dc_lost} of them losing the DC), outage median "
           f"{statistics.median(outages):.2f} s, max {max(outages):.2f} s; rejoin median "
           f"{statistics.median(rejoins):.1f} s, no fail-back, 0 failed requests during rejoins")
    assert len(outages) == FAILOVERS
    assert not summary["still_down"], json.dumps(summary)


def test_haproxy_killed_on_the_vip_node_hands_the_vip_over(lab, figure):
    """SIGKILL to every HAProxy process on the VIP's node: its unit fails (Pacemaker's drop-in
    keeps systemd from restarting it); the next monitor sees it, Pacemaker restarts that HAProxy
    in place and moves the VIP to the other node's warm HAProxy (the failed node has lost its
    no-failure bonus, vip-on-unfailed-haproxy). Cleaning the failure up moves nothing back."""
    holder = healthy(lab)
    other = lab.other(holder)
    monitor_s = monitor_interval_s(lab, holder, CRM.haproxy)
    poller = client(lab)
    try:
        poller.wait_for("ready", timeout=60)
        mark = poller.mark()
        t_kill = time.time()
        lab.exec(holder, "sudo pkill -KILL -x haproxy")
        poller.wait_for("down", timeout=10, after=mark)
        up = poller.wait_for("up", timeout=monitor_s + MOVE_BOUND_S, after=mark)
    finally:
        summary = poller.stop()
    served_after = up["t"] - t_kill
    try:
        fails = lab.exec(other, f"sudo crm_failcount --query --resource {CRM.haproxy} --node {holder}").stdout
        figure(f"{lab.backend}: HAProxy killed on {holder}: the VIP served from {lab.vip_node()} after "
               f"{served_after:.2f} s (monitor every {monitor_s} s)")
        assert re.search(r"value=[1-9]", fails), f"Pacemaker recorded no failure: {fails}"
        assert lab.vip_node(ask=other) == other, "the VIP did not move to the warm HAProxy"
        assert lab.holds_vip(other) and not lab.holds_vip(holder)
        assert not summary["still_down"], json.dumps(summary)
    finally:
        # Clear the failure so HAProxy starts again on the first node now, not in minutes.
        lab.exec(other, f"sudo crm_resource --cleanup --resource {CRM.haproxy_clone}")
        assert healthy(lab) == other, "the VIP failed back once HAProxy ran again"


def agent_log_count(lab: Lab, node: str, pattern: str) -> int:
    """How many lines of `node`'s Pacemaker log (where the executor writes what agents say)
    match `pattern`."""
    out = lab.exec(node, f"sudo grep -cE {shlex.quote(pattern)} {PACEMAKER_LOG}", check=False).stdout
    return int(out.strip() or 0)


def test_planned_switchover_hands_open_connections_over_and_fails_no_request(lab, figure):
    """`crm node standby` of the VIP's node while a client polls: the VIP moves make-before-
    break, the new node forwards the packets of the old node's open connections back to it,
    and the old node lets the address go once they have closed, so not one request fails.
    Back online, the node takes nothing back (no fail-back)."""
    holder = healthy(lab)
    other = lab.other(holder)
    handoffs = agent_log_count(lab, other, HANDOFF_LOG)
    drains = agent_log_count(lab, holder, DRAINED_LOG)
    poller = client(lab)
    try:
        poller.wait_for("ready", timeout=60)
        t_move = time.monotonic()
        lab.exec(other, f"sudo crm node standby {holder}", timeout=60)
        wait_until("the VIP on the other node alone", lambda: lab.vip_holders() == [other],
                   timeout=MOVE_BOUND_S, interval=0.2)
        moved_s = time.monotonic() - t_move
        time.sleep(LINGER_S)
    finally:
        summary = poller.stop()
        lab.exec(other, f"sudo crm node online {holder}", timeout=60)
    figure(f"{lab.backend}: planned switchover {holder} -> {other} in {moved_s:.1f} s: "
           f"{summary['probes']} requests, {summary['failed']} failed")
    assert summary["failed"] == 0 and not summary["outages"], json.dumps(summary)
    assert agent_log_count(lab, other, HANDOFF_LOG) > handoffs, f"{other} set up no connection hand-off"
    assert agent_log_count(lab, holder, DRAINED_LOG) > drains, f"{holder} did not drain before letting go"
    # The forwarding is for the move alone: after a later hard failure of the old node, the
    # new one must reset that node's connections, not send them to it.
    wait_until(f"the hand-off table gone from {other}",
               lambda: "hapx_handoff" not in lab.exec(other, "sudo nft list tables").stdout,
               timeout=HANDOFF_BOUND_S, interval=1)
    assert healthy(lab) == other, "the VIP failed back once the node was online again"


def test_partition_without_fencing_both_claim_then_one_keeps_the_vip(lab, figure):
    """Without fencing a two-node partition leaves each side quorate (two_node) and each
    starts the VIP: both hold it. After the link heals Pacemaker finds the VIP active twice,
    stops it on both and starts it on one, within HEAL_BOUND_S."""
    healthy(lab)
    nodes = sorted(lab.nodes)
    try:
        labctl(lab.backend, "partition", "on", timeout=60)
        t_cut = time.monotonic()
        for node in nodes:
            other = lab.other(node)
            wait_until(f"{node} sees {other} offline",
                       lambda node=node, other=other: lab.crm_status(node)["online"].get(other) is False, timeout=SPLIT_BOUND_S, interval=0.5)
        wait_until("the VIP on both sides of the partition", lambda: lab.vip_holders() == nodes,
                   timeout=SPLIT_BOUND_S, interval=0.5)
        figure(f"{lab.backend}: partition: both nodes hold the VIP {time.monotonic() - t_cut:.1f} s after the cut")
    finally:
        labctl(lab.backend, "partition", "off", timeout=60)
    t_heal = time.monotonic()
    wait_until("the VIP on exactly one node after the heal", lambda: len(lab.vip_holders()) == 1
               and lab.settled(nodes[0]) and lab.settled(nodes[1]), timeout=HEAL_BOUND_S, interval=0.5)
    figure(f"{lab.backend}: partition healed: the VIP on one node ({lab.vip_holders()[0]}) "
           f"{time.monotonic() - t_heal:.1f} s after")
    healthy(lab)
    assert lab.https("/healthz").returncode == 0


def apply_under_load(lab: Lab, tmp_path: Path, change) -> dict:
    """`change(config)` applied to the running lab while a client polls the VIP; the poller's
    summary. Containers: the containers stack changed, rendered with the running lab's secrets
    and applied with the plan's steps. VM: the lab stack's own stack file changed, then `pulumi up`."""
    if lab.backend == "vm":
        stack_file = vmlab.stack_file()
        config = yaml.safe_load(stack_file.read_text())
        change(config["config"])
        stack_file.write_text(yaml.safe_dump(config))
        render = None
    else:
        config = yaml.safe_load((PROJECT / "Pulumi.containers.yaml").read_text())
        change(config["config"])
        stack_file = tmp_path / "Pulumi.containers-change.yaml"
        stack_file.write_text(yaml.safe_dump(config))
        render = render_with_secrets(lab, "containers", stack_file, tmp_path / "render")
    res, summary = apply_under_poll(lab, render, POLL_S, client_timeout=CLIENT_TIMEOUT_S)
    assert res.returncode == 0, res.stdout + res.stderr
    return summary


def test_config_change_under_load_fails_no_request(lab, tmp_path, figure):
    """A master added and HAProxy's connect timeout changed, applied with the plan's steps
    while a client polls the VIP: every request succeeds, and HAProxy then balances over the
    new master."""
    healthy(lab)
    # The new master answers before it is named, as in production (the lab's stand-in answers on
    # every address of its namespace's loopback).
    lab.client("ip", "addr", "replace", "10.99.5.104/32", "dev", "lo", check=True)

    def change(conf: dict) -> None:
        conf["hapx:masters"].append({"name": "kube-mast04", "address": "10.99.5.104", "port": 6443})
        conf.setdefault("hapx:haproxy", {})["timeoutConnectMs"] = 4000

    summary = apply_under_load(lab, tmp_path, change)
    figure(f"{lab.backend}: config change under load: {summary['probes']} requests, {summary['failed']} failed")
    assert summary["failed"] == 0 and not summary["outages"], json.dumps(summary)
    changed = Lab(lab.backend)
    for node in changed.nodes:
        cfg = changed.exec(node, "sudo grep -E 'timeout connect|kube-mast04' /etc/haproxy/haproxy.cfg").stdout
        assert "timeout connect 4000ms" in cfg and "10.99.5.104:6443" in cfg, cfg
    wait_until("kube-mast04 UP in HAProxy's stats",
               lambda: any(line.startswith("kubernetes-masters,kube-mast04,") and ",UP," in line
                           for line in changed.stats_csv().splitlines()), timeout=60, interval=1)
    healthy(changed)


def test_timer_change_restarts_corosync_one_node_at_a_time_and_fails_no_request(lab, tmp_path, figure):
    """A new token cannot be reloaded into a running corosync (that partitions the cluster):
    the join steps restart corosync one node at a time, each node handing the VIP (and its
    open connections) over first, so a client polling the VIP throughout sees not one failed
    request, and no node ever finds itself alone."""
    healthy(lab)
    lab = Lab(lab.backend)
    first = next(iter(lab.nodes))
    token = int(lab.exec(first, "sudo corosync-cmapctl -g runtime.config.totem.token").stdout.split("=")[-1])
    new_token = token + 200
    before = lab.membership_changes()

    def change(conf: dict) -> None:
        conf["hapx:corosync"] = {"tokenMs": new_token, "consensusMs": int(new_token * 1.2)}

    summary = apply_under_load(lab, tmp_path, change)
    changes = {n: c - before[n] for n, c in lab.membership_changes().items()}
    figure(f"{lab.backend}: token {token} -> {new_token} ms under load: {summary['probes']} requests, "
           f"{summary['refused']} refused, {summary['broken']} broken in flight as the VIP moved; "
           f"memberships formed {changes}")
    assert summary["failed"] == 0 and not summary["outages"], json.dumps(summary)
    for node in lab.nodes:
        runtime = lab.exec(node, "sudo corosync-cmapctl -g runtime.config.totem.token").stdout
        assert runtime.strip().endswith(f"= {new_token}"), (node, runtime)
    healthy(lab)
