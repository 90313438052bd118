"""The VIP's agent (ocf:hapx:ipaddr) on its failure paths, under the real Pacemaker, each test
bounded and leaving the cluster healthy (every node online, HAProxy on every node, the VIP on one):

    stale hand-off    the new node's hand-off table after a planned switchover, with nothing but
                      the agent's monitor left to remove it: gone within a bound, 0 failed requests
    stale migrating   a migrate_to whose migration never finished, long ago: a later stop that
                      is not a migration lets the address go at once (no drain, no reset)
    stray VIP         the VIP added by hand on the node that should not hold it: the VIP's
                      monitor of the Stopped role finds it and removes it there within a bound,
                      the VIP's own node keeps serving: 0 failed requests
    announcements     after a start by Pacemaker, every gratuitous ARP the agent promises
                      (arp_count, arp_interval_ms apart) reaches the lab bridge: the background
                      send_arp outlives the operation that started it
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time

from lab.labclient import CRM, LABCTL, LINGER_S, Lab, wait_until
from tests.containers.test_faults import DRAINED_LOG, HANDOFF_BOUND_S, MOVE_BOUND_S, agent_log_count, client, healthy

AGENT_PATH = "/usr/lib/ocf/resource.d/hapx/ipaddr"
RUN_DIR = "/run/resource-agents"  # the agent's HA_RSCTMP under Pacemaker
STRAY_BOUND_S = 60  # a VIP added by hand on the wrong node is gone within this (its Stopped-role monitor: 11 s)
STRAY_LOG = "ocf:hapx:ipaddr: removed .* where the VIP is stopped"
CAPTURE_S = 8       # how long the ARP capture listens after a planned move starts


def vip_param(lab: Lab, node: str, name: str) -> str:
    """One parameter of the VIP's primitive in the live CIB."""
    return lab.exec(node, f"sudo crm_resource --resource {CRM.vip} --get-parameter {name}").stdout.strip()


def handoff_tables(lab: Lab, node: str) -> str:
    """The hand-off tables nftables holds on `node` (empty: none)."""
    return "\n".join(line for line in lab.exec(node, "sudo nft list tables").stdout.splitlines()
                     if "hapx_handoff" in line)


def switchover(lab: Lab, holder: str) -> str:
    """A planned move of the VIP off `holder` (standby, then online again); the node it went to."""
    other = lab.other(holder)
    try:
        lab.exec(other, f"sudo crm node standby {holder}", timeout=60)
        wait_until("the VIP on the other node alone", lambda: lab.vip_holders() == [other],
                   timeout=MOVE_BOUND_S, interval=0.2)
        # Online again only once the standby has run its course (HAProxy stopped there too):
        # Pacemaker 2.1.5 was seen to record the HAProxy stop as pending for good otherwise.
        wait_until(f"HAProxy stopped on {holder}",
                   lambda: lab.crm_status(other)["resources"][CRM.haproxy]["nodes"] == [other],
                   timeout=MOVE_BOUND_S, interval=0.5)
    finally:
        lab.exec(other, f"sudo crm node online {holder}", timeout=60)
    return other


def test_a_stale_handoff_table_is_removed_by_the_monitor(lab, figure):
    """After a planned switchover the new node holds a hand-off table that forwards packets to the
    old node. Nothing but the agent itself removes it: the table's own timer is gone (killed here,
    as a crash or a restart of the node's processes would), and no later start or stop comes.
    The VIP's monitor must remove it once its lifetime (drain_ms plus a grace) is over, while a
    client polling every 50 ms sees not one failed request."""
    holder = healthy(lab)
    poller = client(lab)
    try:
        poller.wait_for("ready", timeout=60)
        other = switchover(lab, holder)
        wait_until(f"a hand-off table on {other}", lambda: handoff_tables(lab, other), timeout=30, interval=0.5)
        # What removed the table before: a timer process of the agent's; a process lost is a table forever.
        timers = lab.exec(other, "pgrep -f 'hapx-handoff-time[r]' || true").stdout.split()
        if timers:
            lab.exec(other, f"sudo kill {' '.join(timers)}", check=False)
        t0 = time.monotonic()
        wait_until(f"the stale hand-off table removed on {other}", lambda: not handoff_tables(lab, other),
                   timeout=HANDOFF_BOUND_S, interval=1)
        removed_s = time.monotonic() - t0
        time.sleep(LINGER_S)
    finally:
        summary = poller.stop()
    figure(f"{lab.backend}: stale hand-off table on {other} ({len(timers)} timer process(es) killed) removed "
           f"{removed_s:.1f} s later; {summary['probes']} requests, {summary['failed']} failed")
    assert summary["failed"] == 0 and not summary["outages"], summary
    assert healthy(lab) == other


def test_a_stale_migrating_flag_makes_no_later_stop_drain(lab, figure):
    """A migrate_to whose migration never completed (the target died, the transition was
    aborted) leaves its flag on the VIP's node. Long after, the VIP leaves that node by a stop
    that is no migration's end (here a move with allow-migrate off): that stop must let the address
    go at once, not drain (which holds the address, then resets every connection to it)."""
    holder = healthy(lab)
    other = lab.other(holder)
    params = {name: vip_param(lab, holder, name) for name in ("ip", "cidr_netmask", "nic", "drain_ms")}
    env = " ".join(f"OCF_RESKEY_{k}={shlex.quote(v)}" for k, v in params.items())
    flag = f"{RUN_DIR}/hapx-ipaddr-{params['ip']}.migrating"
    drains = agent_log_count(lab, holder, DRAINED_LOG)
    # What Pacemaker's migrate_to leaves on the old node, five minutes ago.
    lab.exec(holder, f"sudo env OCF_ROOT=/usr/lib/ocf HA_RSCTMP={RUN_DIR} {env} "
                     f"OCF_RESKEY_CRM_meta_migrate_target={other} {AGENT_PATH} migrate_to")
    lab.exec(holder, f"sudo touch -d '-5 minutes' {flag}")
    poller = client(lab)
    try:
        poller.wait_for("ready", timeout=60)
        lab.exec(holder, f"sudo crm_resource --resource {CRM.vip} --meta --set-parameter allow-migrate "
                         f"--parameter-value false")
        t_move = time.monotonic()
        lab.exec(holder, f"sudo crm_resource --resource {CRM.vip} --move --node {other}", timeout=60)
        wait_until("the VIP on the other node alone", lambda: lab.vip_holders() == [other],
                   timeout=MOVE_BOUND_S, interval=0.2)
        moved_s = time.monotonic() - t_move
        time.sleep(LINGER_S)
    finally:
        summary = poller.stop()
        lab.exec(holder, f"sudo crm_resource --resource {CRM.vip} --clear", timeout=60)
        lab.exec(holder, f"sudo crm_resource --resource {CRM.vip} --meta --set-parameter allow-migrate "
                         f"--parameter-value true")
        lab.exec(holder, f"sudo rm -f {flag}")
    drained = agent_log_count(lab, holder, DRAINED_LOG) - drains
    figure(f"{lab.backend}: a stop {holder} -> {other} 5 min after an unfinished migrate_to: moved in "
           f"{moved_s:.1f} s, {drained} drain(s) logged; {summary['probes']} requests, {summary['failed']} failed "
           f"(longest outage {max([o['outage_s'] for o in summary['outages']] or [0]):.2f} s)")
    assert drained == 0, f"{holder}'s stop drained after a stale migrate_to"
    # A move that is no migration (stop, then start) may break the requests in flight: a blip, no outage.
    assert not summary["still_down"] and all(o["outage_s"] <= 2.0 for o in summary["outages"]), summary
    assert healthy(lab) == other


def test_a_vip_added_by_hand_on_the_other_node_is_removed(lab, figure):
    """The VIP's address added by hand on the node that does not run the VIP (or left there):
    the VIP's monitor of the Stopped role finds it and removes it there within STRAY_BOUND_S,
    the VIP stays where it runs, and a client polling every 50 ms sees not one failed request.
    (Left to Pacemaker as a failed monitor, the VIP was stopped on both nodes and started on
    either: an outage on the node that served it.)"""
    holder = healthy(lab)
    other = lab.other(holder)
    strays = agent_log_count(lab, other, STRAY_LOG)
    prefix, nic = vip_param(lab, holder, "cidr_netmask"), vip_param(lab, holder, "nic")
    poller = client(lab)
    try:
        poller.wait_for("ready", timeout=60)
        lab.exec(other, f"sudo ip -4 addr add {lab.vip}/{prefix} dev {nic}")
        t0 = time.monotonic()
        assert lab.holds_vip(other)
        wait_until(f"the stray VIP removed from {other}", lambda: not lab.holds_vip(other),
                   timeout=STRAY_BOUND_S, interval=0.5)
        removed_s = time.monotonic() - t0
        time.sleep(LINGER_S)
        assert lab.vip_holders() == [holder] and lab.vip_node(ask=other) == holder
    finally:
        summary = poller.stop()
        lab.exec(other, f"sudo ip -4 addr del {lab.vip}/{prefix} dev {nic}", check=False)
        lab.exec(holder, f"sudo crm_resource --cleanup --resource {CRM.vip}", timeout=60)
    figure(f"{lab.backend}: VIP added by hand on {other}: removed by its Stopped-role monitor {removed_s:.1f} s later, "
           f"the VIP stayed on {holder}; {summary['probes']} requests, {summary['failed']} failed")
    assert summary["failed"] == 0 and not summary["outages"], summary
    assert agent_log_count(lab, other, STRAY_LOG) > strays, f"{other}'s agent did not say it removed the stray"
    assert healthy(lab) == holder


# Counts the gratuitous ARPs for the VIP that arrive on one bridge port: (time, op, sender MAC)
# per packet, one JSON line each, after "ready".
CAPTURE = r"""
import json, socket, struct, sys, time
port, vip, seconds = sys.argv[1], socket.inet_aton(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))  # ETH_P_ALL
s.bind((port, 0)); s.settimeout(0.2)
print("ready", flush=True)
end = time.monotonic() + seconds
while time.monotonic() < end:
    try:
        frame, addr = s.recvfrom(2048)
    except socket.timeout:
        continue
    if frame[12:14] != b"\x08\x06" or addr[2] == socket.PACKET_OUTGOING:  # ARP, from the node
        continue
    op, sha, spa, tha, tpa = struct.unpack("!6xH6s4s6s4s", frame[14:42])
    if spa == vip and tpa == vip:  # gratuitous: sender and target are the VIP
        print(json.dumps([time.monotonic(), op, sha.hex(":")]), flush=True)
"""


def test_the_background_announcements_complete_under_pacemaker(lab, figure):
    """The agent announces the VIP once before start returns and arp_count - 1 more times in the
    background. Under Pacemaker (not run by hand) the executor ends the operation when the agent
    returns: every announcement must still reach the lab bridge, arp_interval_ms apart."""
    holder = healthy(lab)
    other = lab.other(holder)
    arp_count = int(vip_param(lab, holder, "arp_count"))
    interval_ms = int(vip_param(lab, holder, "arp_interval_ms"))
    mac = lab.state["nodes"][other]["mac"]
    port = lab.state["nodes"][other]["port"]
    cap = subprocess.Popen([sys.executable, str(LABCTL), "--backend", lab.backend, "client", "--", sys.executable,
                            "-c", CAPTURE, port, lab.vip, str(CAPTURE_S)], stdout=subprocess.PIPE, text=True)
    try:
        assert cap.stdout.readline().strip() == "ready"
        switchover(lab, holder)
        out, _ = cap.communicate(timeout=CAPTURE_S + 30)
    finally:
        if cap.poll() is None:
            cap.kill()
            cap.wait(timeout=10)
    arps = [json.loads(line) for line in out.splitlines() if line.startswith("[")]
    from_other = [a for a in arps if a[2] == mac.lower()]
    span_ms = (from_other[-1][0] - from_other[0][0]) * 1000 if from_other else 0
    figure(f"{lab.backend}: start of the VIP on {other} by Pacemaker: {len(from_other)} gratuitous ARPs "
           f"(requests and replies) over {span_ms:.0f} ms (arp_count {arp_count}, {interval_ms} ms apart)")
    # send_arp sends a request and a reply for each announcement.
    assert len(from_other) >= 2 * arp_count, arps
    assert span_ms >= (arp_count - 1) * interval_ms * 0.8, arps
    assert healthy(lab) == other
