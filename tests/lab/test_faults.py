"""The fault suite, on the lab's real VMs (issue #5): each test is bounded and leaves the
cluster healthy (every node online, HAProxy on every node, the VIP on one) for the next.

    hard failovers   20 in a row, alternating nodes (`virsh destroy`, then `virsh start`):
                     after each the VIP is on exactly one node and serves; the restarted node
                     rejoins without taking the VIP back and without a second outage
    HAProxy killed   SIGKILL to HAProxy on the VIP's node: Pacemaker's monitor sees it and
                     moves the VIP to the warm instance; the killed one is started again
    partition        the link between the nodes cut on the lab bridge, no fencing: both
                     nodes hold the VIP (asserted, as documented); healed, one node keeps it
    config change    a master added and a timeout changed, applied with the plan's steps
                     while a client polls the VIP: not one failed request

HAPX_LAB_FAILOVERS=N shortens the first test while debugging; the test command runs 20.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import time

import yaml

import labclient
from labclient import Lab, Poller, wait_until
from tests.lab.test_lab import vip_with_running_haproxy

FAILOVERS = int(os.environ.get("HAPX_LAB_FAILOVERS", "20"))
FAILOVER_BOUND_S = 60     # the VIP serves again from the survivor within this
REJOIN_BOUND_S = 300      # a restarted node is online with HAProxy running within this (TCG boot)
MOVE_BOUND_S = 10         # after HAProxy's failed monitor, the VIP serves from the other node within this
HEAL_BOUND_S = 90         # after the partition heals, the VIP is on one node within this
SPLIT_BOUND_S = 60        # the partition is seen (each node alone, each with the VIP) within this
POLLER_MAX_S = FAILOVERS * (FAILOVER_BOUND_S + REJOIN_BOUND_S) + 600


def vip_holders(lab: Lab) -> list[str]:
    """The nodes whose interface carries the VIP address (the kernel's view, asked of each node)."""
    return sorted(n for n in lab.nodes if lab.holds_vip(n))


def healthy(lab: Lab) -> str:
    """Wait (bounded) until the cluster is settled as every node sees it; the VIP's node."""
    for node in lab.nodes:
        wait_until(f"cluster settled as {node} sees it", lambda: lab.settled(node), timeout=REJOIN_BOUND_S, interval=3)
    holder = vip_with_running_haproxy(lab.crm_status(next(iter(lab.nodes))))
    assert vip_holders(lab) == [holder]
    return holder


def monitor_interval_s(lab: Lab, resource: str) -> int:
    """The monitor interval of `resource` in the cluster.crm the lab applied."""
    crm = (lab.render / "cluster.crm").read_text()
    m = re.search(rf"^primitive {resource} .*?op monitor interval=(\d+)s", crm, re.M | re.S)
    assert m, f"no monitor for {resource} in {lab.render / 'cluster.crm'}"
    return int(m.group(1))


def test_twenty_alternating_hard_failovers(lab, figure):
    """Each run: destroy the VIP's VM; the survivor serves the VIP alone; start the VM again;
    it rejoins, HAProxy runs on it again, the VIP stays on the survivor and never drops."""
    healthy(lab)
    poller = Poller(lab, max_seconds=POLLER_MAX_S)
    outages, rejoins, previous = [], [], None
    victim = None
    try:
        poller.wait_for("ready", timeout=60)
        for run in range(1, FAILOVERS + 1):
            victim = lab.vip_node()
            assert victim, "the VIP runs nowhere"
            assert victim != previous, f"run {run}: the VIP is back on {victim}, the node destroyed last"
            survivor = lab.other(victim)
            mark = poller.mark()
            t_kill = time.time()
            lab.virsh("destroy", victim)
            poller.wait_for("down", timeout=30, after=mark)
            up = poller.wait_for("up", timeout=FAILOVER_BOUND_S, after=mark)
            status = lab.crm_status(survivor)
            assert vip_with_running_haproxy(status) == survivor
            assert lab.holds_vip(survivor), f"run {run}: Pacemaker says {survivor}, the kernel disagrees"
            outages.append(up["outage_s"])

            mark = poller.mark()
            t_start = time.monotonic()
            lab.virsh("start", victim)
            wait_until(f"run {run}: {victim} online again with HAProxy", lambda: lab.settled(survivor),
                       timeout=REJOIN_BOUND_S, interval=2)
            rejoins.append(time.monotonic() - t_start)
            assert lab.vip_node(ask=victim) == survivor, f"run {run}: the VIP failed back to {victim}"
            assert vip_holders(lab) == [survivor]
            dropped = [ev for ev in poller.events[mark:] if ev["event"] in ("down", "up")]
            assert not dropped, f"run {run}: the VIP dropped while {victim} rejoined: {dropped}"
            figure(f"hard failover {run:2d}: {victim} destroyed, served from {survivor} after "
                   f"{up['t'] - t_kill:.2f} s (outage {up['outage_s']:.2f} s); rejoined in {rejoins[-1]:.0f} s")
            previous, victim = victim, None
    finally:
        summary = poller.stop()
        if victim and "shut off" in lab.virsh("domstate", victim).stdout:
            lab.virsh("start", victim)
    figure(f"hard failovers: {len(outages)} runs, outage median {statistics.median(outages):.2f} s, "
           f"max {max(outages):.2f} s; rejoin median {statistics.median(rejoins):.0f} s")
    assert len(outages) == FAILOVERS
    assert not summary["still_down"], summary


def test_haproxy_killed_on_the_vip_node_hands_the_vip_over(lab, figure):
    """SIGKILL to every HAProxy process on the VIP's node: its unit fails (Pacemaker's drop-in
    keeps systemd from restarting it); the next monitor sees it and, with migration-threshold=1,
    Pacemaker moves the VIP to the other node's warm HAProxy. Cleaning the failure up starts
    HAProxy again on the first node; the VIP stays where it is."""
    holder = healthy(lab)
    other = lab.other(holder)
    monitor_s = monitor_interval_s(lab, "haproxy")
    poller = Poller(lab)
    try:
        poller.wait_for("ready", timeout=60)
        mark = poller.mark()
        t_kill = time.time()
        lab.exec(holder, "sudo pkill -KILL -x haproxy")
        poller.wait_for("down", timeout=30, after=mark)
        up = poller.wait_for("up", timeout=monitor_s + MOVE_BOUND_S, after=mark)
    finally:
        summary = poller.stop()
    served_after = up["t"] - t_kill
    try:
        fails = lab.exec(other, f"sudo crm_failcount --query --resource haproxy --node {holder}").stdout
        figure(f"HAProxy killed on {holder}: the VIP served from {lab.vip_node()} after {served_after:.2f} s "
               f"(monitor every {monitor_s} s); {fails.strip()}")
        assert re.search(r"value=[1-9]", fails), f"Pacemaker recorded no failure: {fails}"
        assert lab.vip_node(ask=other) == other, "the VIP did not move to the warm HAProxy"
        assert lab.holds_vip(other) and not lab.holds_vip(holder)
        assert served_after <= monitor_s + MOVE_BOUND_S
        assert not summary["still_down"], summary
    finally:
        # Clear the failure so HAProxy starts again on the first node now, not in minutes.
        lab.exec(other, "sudo crm_resource --cleanup --resource haproxy-clone")
        assert healthy(lab) == other


def test_partition_without_fencing_both_claim_then_one_keeps_the_vip(lab, figure):
    """Without fencing a two-node partition leaves each side quorate (two_node) and each
    starts the VIP: both hold it (clients reach whichever answered ARP last; both run HAProxy
    with the same backends). After the link heals Pacemaker finds the VIP active twice,
    stops it on both and starts it on one, within HEAL_BOUND_S."""
    healthy(lab)
    nodes = sorted(lab.nodes)
    try:
        labclient.labctl("partition", "on", timeout=60)
        t_cut = time.monotonic()
        for node in nodes:
            other = lab.other(node)
            wait_until(f"{node} sees {other} offline",
                       lambda: lab.crm_status(node)["online"].get(other) is False, timeout=SPLIT_BOUND_S, interval=1)
        wait_until("the VIP on both sides of the partition", lambda: vip_holders(lab) == nodes,
                   timeout=SPLIT_BOUND_S, interval=1)
        figure(f"partition: both nodes hold the VIP {time.monotonic() - t_cut:.1f} s after the cut")
    finally:
        labclient.labctl("partition", "off", timeout=60)
    t_heal = time.monotonic()
    wait_until("the VIP on exactly one node after the heal", lambda: len(vip_holders(lab)) == 1
               and lab.settled(nodes[0]) and lab.settled(nodes[1]), timeout=HEAL_BOUND_S, interval=1)
    figure(f"partition healed: the VIP on one node ({vip_holders(lab)[0]}) {time.monotonic() - t_heal:.1f} s after")
    healthy(lab)
    assert lab.https("/healthz").returncode == 0


def test_config_change_under_load_fails_no_request(lab, tmp_path, figure):
    """A master added and HAProxy's connect timeout changed, rendered with the lab's secrets
    and applied with the plan's steps (`labctl steps --render`) while a client polls the VIP
    every 100 ms: every request succeeds, and HAProxy then balances over the new master."""
    healthy(lab)
    config = yaml.safe_load((labclient.PROJECT / "Pulumi.lab.yaml").read_text())
    conf = config["config"]
    conf["hapx:masters"].append({"name": "kube-mast04", "address": "10.99.4.104", "port": 6443})
    conf.setdefault("hapx:haproxy", {})["timeoutConnectMs"] = 4000
    stack_file = tmp_path / "Pulumi.lab-change.yaml"
    stack_file.write_text(yaml.safe_dump(config))
    render = labclient.BUILD / "render-change"
    subprocess.run([sys.executable, "-m", "hapx.render", "--stack", "lab", "--config", str(stack_file),
                    "--out", str(render), "--secrets-from", str(lab.render)],
                   cwd=labclient.PROJECT, check=True, timeout=120)
    poller = Poller(lab)
    try:
        poller.wait_for("ready", timeout=60)
        res = labclient.labctl("steps", "--render", str(render), timeout=900)
    finally:
        summary = poller.stop()
    assert res.returncode == 0, res.stdout + res.stderr
    figure(f"config change under load: {summary['probes']} requests, {summary['failed']} failed")
    assert summary["failed"] == 0 and not summary["outages"], summary

    changed = Lab()
    assert changed.render == render.resolve()
    password = (render / "secrets" / "stats-password").read_text().strip()
    for node in changed.nodes:
        cfg = changed.exec(node, "sudo grep -E 'timeout connect|kube-mast04' /etc/haproxy/haproxy.cfg").stdout
        assert "timeout connect 4000ms" in cfg and "10.99.4.104:6443" in cfg, cfg
    csv_url = f"http://{changed.vip}:{changed.stats_port}/;csv"

    def mast04_up() -> bool:
        page = changed.client("curl", "-s", "--max-time", "10", "-u", f"{changed.stats_user}:{password}", csv_url).stdout
        return any(line.startswith("kubernetes-masters,kube-mast04,") and ",UP," in line for line in page.splitlines())

    wait_until("kube-mast04 UP in HAProxy's stats", mast04_up, timeout=60, interval=2)
    healthy(changed)
