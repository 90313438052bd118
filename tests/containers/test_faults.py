"""The fault suite, at native speed: each test is bounded and leaves the cluster healthy (every
node online, HAProxy on every node, the VIP on one) for the next.

    hard failovers   20 in a row (`labctl kill` of the VIP's node, never the DC: the container's
                     init and its link gone at once, then `labctl start`): after each the VIP is
                     on exactly one node and serves; the restarted node rejoins and takes the
                     VIP back off the DC, make-before-break, without a failed request
    HAProxy killed   SIGKILL to HAProxy on the VIP's node: Pacemaker's monitor sees it and
                     moves the VIP to the warm instance; the killed one is started again
    partition        the link between the nodes cut on the lab bridge, no fencing: both
                     nodes hold the VIP (asserted, as documented); healed, one node keeps it
    config change    a master added and a timeout changed, applied with the plan's steps
                     while a client polls the VIP: not one failed request
    timer change     corosync's token changed, applied with the plan's steps (a rolling
                     restart of corosync, one node at a time) under load: not one failed request

Bounds here hold on a loaded host: they catch a failover that does not happen, not a slow
one (the benchmark, `make bench`, measures speed). HAPX_LAB_FAILOVERS=N shortens the first
test while debugging; the test command runs 20.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import time
from pathlib import Path

import yaml

from labclient import (CRM, PROJECT, Lab, Poller, apply_under_poll, labctl, render_with_secrets,
                       served_throughout, wait_until)
from tests.containers.test_cluster import vip_with_running_haproxy

FAILOVERS = int(os.environ.get("HAPX_LAB_FAILOVERS", "20"))
POLL_S = 0.05             # the client's probe interval
FAILOVER_BOUND_S = 30     # the VIP serves again from the survivor within this
REJOIN_BOUND_S = 120      # a restarted node is online with HAProxy running within this
MOVE_BOUND_S = 15         # after HAProxy's failed monitor, the VIP serves from the other node within this
HEAL_BOUND_S = 60         # after the partition heals, the VIP is on one node within this
SPLIT_BOUND_S = 30        # the partition is seen (each node alone, each with the VIP) within this
MOVE_BLIP_S = 1.0         # the longest run of requests a planned move of the VIP may break in flight
POLLER_MAX_S = FAILOVERS * (FAILOVER_BOUND_S + REJOIN_BOUND_S) + 600


def healthy(lab: Lab) -> str:
    """Wait (bounded) until the cluster is settled as every node sees it; the VIP's node."""
    for node in lab.nodes:
        wait_until(f"cluster settled as {node} sees it", lambda: lab.settled(node), timeout=REJOIN_BOUND_S, interval=1)
    holder = vip_with_running_haproxy(lab.crm_status(next(iter(lab.nodes))))
    assert lab.vip_holders() == [holder]
    return holder


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


def test_twenty_hard_failovers_and_rejoins(lab, figure):
    """Each run: kill the VIP's node (the VIP runs off the DC, so the DC survives); the survivor
    serves the VIP alone; start the node again: it rejoins, HAProxy runs on it again, and the VIP
    moves back to it (off the DC) make-before-break: the client never sees a failed request."""
    healthy(lab)
    poller = Poller(lab, interval=POLL_S, max_seconds=POLLER_MAX_S)
    outages, rejoins = [], []
    victim = None
    try:
        poller.wait_for("ready", timeout=60)
        for run in range(1, FAILOVERS + 1):
            victim = lab.vip_node()
            assert victim, "the VIP runs nowhere"
            survivor = lab.other(victim)
            assert dc_of(lab, survivor) == survivor, f"run {run}: the VIP runs on the DC {victim}"
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
            wait_until(f"run {run}: {victim} online again with HAProxy and the VIP",
                       lambda: lab.settled(survivor) and lab.vip_node(ask=survivor) == victim,
                       timeout=REJOIN_BOUND_S, interval=0.5)
            rejoins.append(time.monotonic() - t_start)
            wait_until(f"run {run}: the VIP's address only on {victim}", lambda: lab.vip_holders() == [victim],
                       timeout=30, interval=0.5)
            # The VIP moves back, make-before-break: a request in flight at that instant may
            # break, but none is refused.
            dropped = poller.since(mark, "refused")
            assert not dropped, f"run {run}: the VIP dropped while {victim} rejoined: {dropped}"
            figure(f"containers: hard failover {run:2d}: {victim} killed, served from {survivor} after "
                   f"{up['t'] - t_kill:.2f} s (outage {up['outage_s']:.2f} s); rejoined and took the VIP "
                   f"back in {rejoins[-1]:.1f} s")
            victim = None
    finally:
        summary = poller.stop()
        if victim:
            lab.start(victim)
    figure(f"containers: hard failovers: {len(outages)} runs, outage median {statistics.median(outages):.2f} s, "
           f"max {max(outages):.2f} s; rejoin median {statistics.median(rejoins):.1f} s")
    assert len(outages) == FAILOVERS
    assert not summary["still_down"], json.dumps(summary)


def test_haproxy_killed_on_the_vip_node_hands_the_vip_over(lab, figure):
    """SIGKILL to every HAProxy process on the VIP's node: its unit fails (Pacemaker's drop-in
    keeps systemd from restarting it); the next monitor sees it and, with migration-threshold=1,
    Pacemaker moves the VIP to the other node's warm HAProxy. Cleaning the failure up starts
    HAProxy again on the first node, and the VIP goes back to it: it runs off the DC (the
    other node), make-before-break."""
    holder = healthy(lab)
    other = lab.other(holder)
    monitor_s = monitor_interval_s(lab, holder, CRM.haproxy)
    poller = Poller(lab, interval=POLL_S)
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
        figure(f"containers: HAProxy killed on {holder}: the VIP served from {lab.vip_node()} after "
               f"{served_after:.2f} s (monitor every {monitor_s} s)")
        assert re.search(r"value=[1-9]", fails), f"Pacemaker recorded no failure: {fails}"
        assert lab.vip_node(ask=other) == other, "the VIP did not move to the warm HAProxy"
        assert lab.holds_vip(other) and not lab.holds_vip(holder)
        assert not summary["still_down"], json.dumps(summary)
    finally:
        # Clear the failure so HAProxy starts again on the first node now, not in minutes.
        lab.exec(other, f"sudo crm_resource --cleanup --resource {CRM.haproxy_clone}")
        assert dc_of(lab, other) == other
        wait_until(f"the VIP back on {holder}, off the DC",
                   lambda: lab.vip_node(ask=other) == holder and lab.vip_holders() == [holder],
                   timeout=REJOIN_BOUND_S, interval=0.5)
        assert healthy(lab) == holder


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
                       lambda: lab.crm_status(node)["online"].get(other) is False, timeout=SPLIT_BOUND_S, interval=0.5)
        wait_until("the VIP on both sides of the partition", lambda: lab.vip_holders() == nodes,
                   timeout=SPLIT_BOUND_S, interval=0.5)
        figure(f"containers: partition: both nodes hold the VIP {time.monotonic() - t_cut:.1f} s after the cut")
    finally:
        labctl(lab.backend, "partition", "off", timeout=60)
    t_heal = time.monotonic()
    wait_until("the VIP on exactly one node after the heal", lambda: len(lab.vip_holders()) == 1
               and lab.settled(nodes[0]) and lab.settled(nodes[1]), timeout=HEAL_BOUND_S, interval=0.5)
    figure(f"containers: partition healed: the VIP on one node ({lab.vip_holders()[0]}) "
           f"{time.monotonic() - t_heal:.1f} s after")
    healthy(lab)
    assert lab.https("/healthz").returncode == 0


def render_change(lab: Lab, tmp_path: Path, change) -> Path:
    """The lab's stack with `change(config)` applied, rendered with the running lab's secrets."""
    config = yaml.safe_load((PROJECT / "Pulumi.containers.yaml").read_text())
    change(config["config"])
    stack_file = tmp_path / "Pulumi.containers-change.yaml"
    stack_file.write_text(yaml.safe_dump(config))
    return render_with_secrets(lab, "containers", stack_file, tmp_path / "render")


def apply_under_load(lab: Lab, render: Path) -> dict:
    """Apply a render with the plan's steps while a client polls the VIP; the poller's summary."""
    res, summary = apply_under_poll(lab, render, POLL_S)
    assert res.returncode == 0, res.stdout + res.stderr
    return summary


def test_config_change_under_load_fails_no_request(lab, tmp_path, figure):
    """A master added and HAProxy's connect timeout changed, applied with the plan's steps
    while a client polls the VIP: every request succeeds, and HAProxy then balances over the
    new master."""
    healthy(lab)

    def change(conf: dict) -> None:
        conf["hapx:masters"].append({"name": "kube-mast04", "address": "10.99.5.104", "port": 6443})
        conf.setdefault("hapx:haproxy", {})["timeoutConnectMs"] = 4000

    summary = apply_under_load(lab, render_change(lab, tmp_path, change))
    figure(f"containers: config change under load: {summary['probes']} requests, {summary['failed']} failed")
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
    the join steps restart corosync one node at a time, each node handing the VIP over first,
    so a client polling the VIP throughout sees no failed request, and no node ever finds
    itself alone."""
    healthy(lab)
    lab = Lab(lab.backend)
    first = next(iter(lab.nodes))
    token = int(lab.exec(first, "sudo corosync-cmapctl -g runtime.config.totem.token").stdout.split("=")[-1])
    new_token = token + 200
    before = lab.membership_changes()

    def change(conf: dict) -> None:
        conf["hapx:corosync"] = {"tokenMs": new_token, "consensusMs": int(new_token * 1.2)}

    summary = apply_under_load(lab, render_change(lab, tmp_path, change))
    changes = {n: c - before[n] for n, c in lab.membership_changes().items()}
    figure(f"containers: token {token} -> {new_token} ms under load: {summary['probes']} requests, "
           f"{summary['refused']} refused, {summary['broken']} broken in flight as the VIP moved; "
           f"memberships formed {changes}")
    assert served_throughout(summary, MOVE_BLIP_S), json.dumps(summary)
    for node in lab.nodes:
        runtime = lab.exec(node, "sudo corosync-cmapctl -g runtime.config.totem.token").stdout
        assert runtime.strip().endswith(f"= {new_token}"), (node, runtime)
    healthy(lab)
