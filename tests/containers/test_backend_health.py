"""The VIP follows the backends, at native speed: each test is bounded and leaves the cluster
healthy (every node online, HAProxy on every node, the VIP on one, every master reachable from
every node, no failure recorded) for the next.

    cut off          the VIP's node loses the masters' network (nftables in that node drops
                     its traffic to them) while its peer sees them UP: once its HAProxy has
                     marked them DOWN and the count held for the hysteresis, the VIP moves to
                     the peer, make-before-break; from then on no request fails
    flapping         one master goes DOWN and UP again and again in the VIP's node's HAProxy
                     (each DOWN shorter than the hysteresis): the VIP does not move
    lost by all      one master stops for every node: both counts drop together (attrd's
                     dampening), the VIP does not move
    HAProxy twice    HAProxy killed on the VIP's node, then on the other node once the VIP has
                     moved: some node serves the VIP again within a bound each time (with
                     migration-threshold=1 the second left it nowhere until a failure expired)

The per-node cut is an nftables table inside the node's container (output hook, the masters'
addresses), so the other node and the lab keep reaching them; it is deleted in `finally`.
"""

from __future__ import annotations

import json
import re
import shlex
import time

from hapx.rendering import ADMIN_SOCKET, BACKEND as HAPROXY_BACKEND
from lab import labnet
from lab.labclient import CRM, LINGER_S, Lab, wait_until
from tests.containers.test_faults import (
    CLIENT_TIMEOUT_S,
    HANDOFF_LOG,
    agent_log_count,
    client,
    healthy,
    monitor_interval_s,
)

CUT_TABLE = "hapx_test_cut"
# HAProxy marks a master DOWN after checkFall failed checks (3 x 2 s, each up to timeoutCheck 2 s).
DOWN_BOUND_S = 40
# After HAProxy on the cut node marked the last master DOWN: the count holds for the hysteresis
# (pacemaker.backendHealthHoldSeconds, 10 s), the monitor sees it (2 s), attrd's dampening (6 s)
# and the migration. Generous: a loaded 2-core host.
FOLLOW_BOUND_S = 60
# One master flapping: DOWN/UP cycles on the VIP's node for at least this long.
FLAP_S = 60
FLAP_MIN_CYCLES = 3
SETTLE_S = 20  # after the last cycle: longer than the hysteresis, a monitor and the dampening
# HAProxy killed: Pacemaker's monitor sees it, the VIP serves again (moved or restarted in place).
SERVED_AGAIN_BOUND_S = 30


def master_addresses(lab: Lab) -> dict[str, str]:
    """Each master's name and the address its stand-in answers on (what the nodes connect to)."""
    dns = lab.state["lab"].get("dns_hosts", {})
    return {m["name"]: labnet.standin_address(m, dns) for m in lab.masters}


def cut(lab: Lab, node: str, addresses: list[str]) -> None:
    """`node` drops its own traffic to `addresses` (nothing else is touched); uncut() undoes it."""
    rules = (f"add table inet {CUT_TABLE}\n"
             f"add chain inet {CUT_TABLE} out {{ type filter hook output priority 0; }}\n"
             f"flush chain inet {CUT_TABLE} out\n"
             f"add rule inet {CUT_TABLE} out ip daddr {{ {', '.join(addresses)} }} drop\n")
    lab.exec(node, f"printf %s {shlex.quote(rules)} | sudo nft -f -")


def uncut(lab: Lab, node: str) -> None:
    lab.exec(node, f"sudo nft delete table inet {CUT_TABLE}", check=False)


def haproxy_view(lab: Lab, node: str) -> dict[str, str]:
    """Each master's status as `node`'s HAProxy sees it (its admin socket): UP, DOWN, `UP 1/3`..."""
    out = lab.exec(node, f"printf 'show stat {HAPROXY_BACKEND} 4 -1\\n' | sudo curl -s --max-time 5 "
                         f"--unix-socket {ADMIN_SOCKET} telnet://localhost", check=False).stdout
    view = {}
    for line in out.splitlines():
        fields = line.split(",")
        if len(fields) > 17 and fields[0] == HAPROXY_BACKEND:
            view[fields[1]] = fields[17]
    return view


def masters_up(lab: Lab, node: str) -> int:
    return sum(status.startswith("UP") for status in haproxy_view(lab, node).values())


def all_masters_up_everywhere(lab: Lab) -> None:
    for node in lab.nodes:
        wait_until(f"every master UP in {node}'s HAProxy", lambda node=node: masters_up(lab, node) == len(lab.masters),
                   timeout=DOWN_BOUND_S, interval=1)


def clean_failures(lab: Lab) -> None:
    """Forget HAProxy's failures so the next test starts without a penalty or a ban."""
    lab.exec(next(iter(lab.nodes)), f"sudo crm_resource --cleanup --resource {CRM.haproxy_clone}", check=False)


def test_a_node_cut_off_from_the_masters_gives_the_vip_up(lab, figure):
    """The VIP's node can no longer reach any master; its peer reaches them all. The VIP moves
    to the peer once the cut node's HAProxy has marked them DOWN and the count has held for the
    hysteresis, make-before-break (a migration: the peer forwards the old node's connections to
    it). Requests fail from the cut until the move (the node's HAProxy has no master to send them
    to: that is the outage this design bounds, not one it avoids); none fails after it."""
    holder = healthy(lab)
    other = lab.other(holder)
    addresses = list(master_addresses(lab).values())
    handoffs = agent_log_count(lab, other, HANDOFF_LOG)
    all_masters_up_everywhere(lab)
    poller = client(lab)
    try:
        poller.wait_for("ready", timeout=60)
        t_cut = time.monotonic()
        cut(lab, holder, addresses)
        wait_until(f"every master DOWN in {holder}'s HAProxy", lambda: masters_up(lab, holder) == 0,
                   timeout=DOWN_BOUND_S, interval=0.5)
        t_down = time.monotonic()
        assert masters_up(lab, other) == len(addresses), f"{other} lost masters too: {haproxy_view(lab, other)}"
        wait_until(f"the VIP on {other} alone", lambda: lab.vip_holders() == [other],
                   timeout=FOLLOW_BOUND_S, interval=0.5)
        t_moved = time.monotonic()
        mark = poller.mark()
        time.sleep(LINGER_S + CLIENT_TIMEOUT_S)
        failed_after = poller.since(mark, "down")
    finally:
        summary = poller.stop()
        uncut(lab, holder)
    figure(f"{lab.backend}: {holder} cut off from the masters: all DOWN in its HAProxy after "
           f"{t_down - t_cut:.1f} s, the VIP on {other} {t_moved - t_down:.1f} s later "
           f"({t_moved - t_cut:.1f} s after the cut); {summary['failed']} of {summary['probes']} requests failed")
    try:
        assert not failed_after, f"requests failed after the VIP moved to {other}: {failed_after}"
        assert agent_log_count(lab, other, HANDOFF_LOG) > handoffs, \
            f"the VIP did not migrate to {other} (make-before-break): no hand-off logged"
        assert not summary["still_down"], json.dumps(summary)
    finally:
        all_masters_up_everywhere(lab)
        assert healthy(lab) == other, "the VIP went back once the cut node saw the masters again"


def test_one_master_flapping_moves_nothing(lab, figure):
    """One master goes DOWN in the VIP's node's HAProxy and UP again, over and over (the cut
    lifted as soon as HAProxy marks it DOWN), while the other node sees it UP throughout: the
    hysteresis holds every DOWN shorter than it, so the VIP stays where it is."""
    holder = healthy(lab)
    other = lab.other(holder)
    name, address = next(iter(master_addresses(lab).items()))
    all_masters_up_everywhere(lab)
    cycles, moved = 0, []
    t_end = time.monotonic() + FLAP_S
    try:
        while time.monotonic() < t_end or cycles < FLAP_MIN_CYCLES:
            cut(lab, holder, [address])
            wait_until(f"{name} DOWN in {holder}'s HAProxy", lambda: haproxy_view(lab, holder).get(name) == "DOWN",
                       timeout=DOWN_BOUND_S, interval=0.3)
            uncut(lab, holder)
            wait_until(f"{name} UP in {holder}'s HAProxy",
                       lambda: haproxy_view(lab, holder).get(name, "").startswith("UP"),
                       timeout=DOWN_BOUND_S, interval=0.3)
            cycles += 1
            if lab.vip_holders() != [holder]:
                moved.append((cycles, lab.vip_holders()))
        # The last DOWN's effect, if any, would land within the hysteresis and the dampening.
        time.sleep(SETTLE_S)
        if lab.vip_holders() != [holder]:
            moved.append(("after", lab.vip_holders()))
    finally:
        uncut(lab, holder)
    figure(f"{lab.backend}: {name} flapped {cycles} times in {holder}'s HAProxy: the VIP "
           f"{'moved ' + str(moved) if moved else 'stayed on ' + holder}")
    try:
        assert not moved, f"one master flapping on {holder} moved the VIP: {moved}"
        assert masters_up(lab, other) == len(lab.masters)
    finally:
        all_masters_up_everywhere(lab)
        healthy(lab)


def test_a_master_lost_by_every_node_moves_nothing(lab, figure):
    """One stand-in master stops for the whole lab: every node's HAProxy marks it DOWN, a
    second or two apart. attrd's dampening publishes the lower counts of both nodes together,
    so at no moment does one node outscore the other: the VIP stays."""
    holder = healthy(lab)
    name = lab.masters[0]["name"]
    all_masters_up_everywhere(lab)
    try:
        lab.master_power(name, False)
        for node in lab.nodes:
            wait_until(f"{name} DOWN in {node}'s HAProxy", lambda node=node: haproxy_view(lab, node).get(name) == "DOWN",
                       timeout=DOWN_BOUND_S, interval=0.5)
        t_end = time.monotonic() + SETTLE_S
        moved = []
        while time.monotonic() < t_end:
            if lab.vip_holders() != [holder]:
                moved.append(lab.vip_holders())
            time.sleep(0.5)
    finally:
        lab.master_power(name, True)
    figure(f"{lab.backend}: {name} stopped for every node: the VIP "
           f"{'moved ' + str(moved) if moved else 'stayed on ' + holder}")
    try:
        assert not moved, f"a master lost by every node moved the VIP: {moved}"
    finally:
        all_masters_up_everywhere(lab)
        healthy(lab)


def test_haproxy_failing_on_both_nodes_never_leaves_the_vip_nowhere(lab, figure):
    """HAProxy killed (SIGKILL) on the VIP's node; once some node serves the VIP again, HAProxy
    killed on the node that serves it. Each time a node serves the VIP again within
    SERVED_AGAIN_BOUND_S: a failed HAProxy is started again in place, and the VIP goes to (or
    stays with) a node whose HAProxy runs. Then no failure is left to clean up but the record."""
    holder = healthy(lab)
    monitor_s = monitor_interval_s(lab, holder, CRM.haproxy)
    poller = client(lab)
    served = []
    try:
        poller.wait_for("ready", timeout=60)
        victim = holder
        for round_ in (1, 2):
            mark = poller.mark()
            t_kill = time.time()
            lab.exec(victim, "sudo pkill -KILL -x haproxy")
            poller.wait_for("down", timeout=10, after=mark)
            up = poller.wait_for("up", timeout=monitor_s + SERVED_AGAIN_BOUND_S, after=mark)
            where = lab.vip_node()
            served.append((victim, where, up["t"] - t_kill))
            assert where and lab.vip_holders() == [where], f"round {round_}: the VIP on {lab.vip_holders()}"
            victim = where
    finally:
        summary = poller.stop()
        figure(f"{lab.backend}: HAProxy killed twice: " + "; ".join(
            f"killed on {v}, served from {w} after {s:.1f} s" for v, w, s in served))
    try:
        assert len(served) == 2, served
        assert not summary["still_down"], json.dumps(summary)
        for node in lab.nodes:
            fails = lab.exec(node, f"sudo crm_failcount --query --resource {CRM.haproxy} --node {node}").stdout
            assert re.search(r"value=[1-9]", fails), f"no failure recorded on {node}: {fails}"
    finally:
        clean_failures(lab)
        healthy(lab)
