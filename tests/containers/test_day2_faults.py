"""Day-2 work on its failure paths, at native speed: the drain that runs before a VM is rebuilt,
the joins that follow, corosync restarts and key rotations, and the configure step, each met
with what production brings (a peer dead or in standby, a run cut off half-way, an operator's
own objects in the CIB). Each test runs the plan's own steps (from a render of the running lab,
`hapx.cli.render --secrets-from`) on the nodes as Pulumi would, injects the fault, and asserts what
a client polling the VIP every 50 ms sees, and that the cluster is whole afterwards.

    drain, nothing can take the VIP   the other node in standby: the drain refuses (non-zero,
                                      naming the node and what is missing), the VIP stays
    drain, the peer killed mid-way    the VIP is served again (the drain's rule only avoids the
                                      node), and the drain fails, so Pulumi destroys nothing
    redefine, then the next drain     a VM rebooted on its old disk rejoins and lifts its drain
                                      rule, so the next node's drain can move the VIP to it
    timer change, peer down           the join refuses to restart corosync; the VIP stays
    key rotation, peer down / up      the key changes with no restart and no new membership
    restart cut off                   a join killed between moving the files and restarting
                                      corosync is completed by the next run
    operator's objects                a resource and a constraint hapx does not own survive
                                      the configure step
    both down, one lost for good      the survivor boots without quorum (wait_for_all); the
                                      documented command lets it serve alone
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
import time
from pathlib import Path

import yaml

from lab.labclient import PROJECT, Lab, labctl, render_with_secrets, wait_until
from tests.containers.test_faults import FAILOVER_BOUND_S, REJOIN_BOUND_S, client, healthy

STEP_TIMEOUT_S = 600
# The documented way out when both nodes went down and one will not come back (docs/day2.md).
UNBLOCK = "sudo corosync-cmapctl -s quorum.cancel_wait_for_all u8 1"
DIAL_S = 120  # how long a step dials a node that does not answer SSH yet
DRAIN_RULE = "hapx-drain-"  # the id prefix of a drain's location rule (hapx.crm)


def render_change(lab: Lab, tmp_path: Path, change=None, name: str = "render") -> Path:
    """The containers stack, changed by `change(config)`, rendered with the running lab's secrets."""
    config = yaml.safe_load((PROJECT / "Pulumi.containers.yaml").read_text())
    if change:
        change(config["config"])
    stack_file = tmp_path / f"Pulumi.containers-{name}.yaml"
    stack_file.write_text(yaml.safe_dump(config))
    return render_with_secrets(lab, "containers", stack_file, tmp_path / name)


def new_token(token_ms: int):
    """A change to the stack's config: corosync's token (and a consensus 1.2 times it)."""
    return lambda c: c.update({"hapx:corosync": {"tokenMs": token_ms, "consensusMs": int(token_ms * 1.2)}})


def plan_of(render: Path) -> dict:
    return json.loads((render / "plan.json").read_text())


def drain_of(render: Path, node: str) -> dict:
    """The drain that runs before `node`'s VM is rebuilt, as the plan gives it (where it runs, what)."""
    return next(d for d in plan_of(render)["drains"] if d["target"] == node)


def run_on(lab: Lab, node: str, command: str, stdin: str | None = None,
           timeout: float = STEP_TIMEOUT_S):
    """A step's command line run on a node over SSH, as pulumi-command runs it: dialling again
    while the node's sshd does not answer yet (a node just started)."""
    deadline = time.monotonic() + DIAL_S
    while True:
        res = labctl(lab.backend, "exec", node, "--", command, input=stdin, timeout=timeout, check=False)
        # 255 is also what ssh returns for a command killed on the node: dial again only when
        # ssh says it could not connect.
        if (res.returncode != 255 or not re.search(r"connect to host .*: (Connection refused|"
                                                   r"Connection timed out|No route to host)", res.stderr)
                or time.monotonic() > deadline):
            return res
        time.sleep(1)


def run_step(lab: Lab, render: Path, step_id: str, timeout: float = STEP_TIMEOUT_S):
    """One bootstrap step of a render, on its node, with its stdin."""
    step = next(s for s in plan_of(render)["steps"] if s["id"] == step_id)
    stdin = (render / step["stdin"]).read_text() if step.get("stdin") else None
    return run_on(lab, step["node"], step["command"], stdin, timeout)


def run_drain(lab: Lab, render: Path, node: str, timeout: float = STEP_TIMEOUT_S):
    drain = drain_of(render, node)
    return run_on(lab, drain["node"], drain["command"], timeout=timeout)


def power_off(lab: Lab, node: str, ask: str) -> None:
    """Kill a node and wait until `ask` sees it gone."""
    lab.kill(node)
    wait_until(f"{ask} sees {node} gone", lambda: lab.crm_status(ask)["online"].get(node) is False,
               timeout=FAILOVER_BOUND_S, interval=0.5)


def restore(lab: Lab, tmp_path: Path) -> None:
    """The lab's own configuration applied again (the timers a test changed), the cluster healthy."""
    res = labctl(lab.backend, "steps", "--render", str(render_change(lab, tmp_path, name="restore")),
                 timeout=STEP_TIMEOUT_S, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    healthy(lab)


def drain_rules(lab: Lab, ask: str) -> list[str]:
    """The ids of drain rules (and crm_resource bans) in the CIB, as `ask` sees it."""
    xml = lab.exec(ask, "sudo cibadmin --query --scope constraints").stdout
    return [i for i in re.findall(r'<rsc_location id="([^"]+)"', xml) if i.startswith((DRAIN_RULE, "cli-ban-"))]


def clear_drain_rules(lab: Lab, ask: str) -> None:
    for rule in drain_rules(lab, ask):
        lab.exec(ask, f"sudo cibadmin --delete --xpath \"//rsc_location[@id='{rule}']\"", check=False)


def runtime_token(lab: Lab, node: str) -> int:
    out = lab.exec(node, "sudo corosync-cmapctl -g runtime.config.totem.token").stdout
    return int(out.split("=")[-1])


def with_authkey(render: Path, key_b64: str) -> None:
    """Give a render another corosync key (as a rotated Pulumi secret would): every step that reads it."""
    for step in plan_of(render)["steps"]:
        if step.get("stdin") and step["kind"] in ("join", "rekey"):
            (render / step["stdin"]).write_text(key_b64 + "\n")
    (render / "secrets" / "corosync-authkey.b64").write_text(key_b64 + "\n")


def new_authkey() -> str:
    return base64.b64encode(os.urandom(256)).decode()


def test_drain_refuses_when_no_other_node_can_take_the_vip(lab, tmp_path, figure):
    """The other node in standby (its HAProxy stopped): a drain of the VIP's node must refuse,
    non-zero, naming the node and what is missing, so Pulumi does not destroy the one node that
    serves; the VIP stays where it is and no drain rule is left behind."""
    holder = healthy(lab)
    other = lab.other(holder)
    render = render_change(lab, tmp_path)
    poller = client(lab)
    try:
        poller.wait_for("ready", timeout=60)
        lab.exec(holder, f"sudo crm node standby {other}", timeout=60)
        wait_until(f"HAProxy stopped on {other}",
                   lambda: other not in lab.crm_status(holder)["resources"].get("haproxy", {}).get("nodes", [other]),
                   timeout=REJOIN_BOUND_S, interval=0.5)
        t0 = time.monotonic()
        res = run_drain(lab, render, holder)
        took = time.monotonic() - t0
        out = res.stdout + res.stderr
    finally:
        lab.exec(holder, f"sudo crm node online {other}", timeout=60)
        summary = poller.stop()
    figure(f"{lab.backend}: drain of {holder} with {other} in standby: exit {res.returncode} after {took:.1f} s: "
           f"{out.strip().splitlines()[-1] if out.strip() else ''}; {summary['failed']} failed requests")
    assert res.returncode != 0, f"the drain let Pulumi rebuild the last serving node:\n{out}"
    assert holder in out and "HAProxy" in out, out
    assert lab.vip_holders() == [holder]
    assert summary["failed"] == 0 and not summary["outages"], json.dumps(summary)
    assert drain_rules(lab, holder) == []
    healthy(lab)


def test_drain_with_the_peer_killed_mid_way_keeps_the_vip_served(lab, tmp_path, figure):
    """The VIP's node is drained and the node taking the VIP dies during the move: the drain
    fails (Pulumi destroys nothing) and the VIP is served again from the node being drained,
    within a failover's bound (a drain only avoids its node, it never forbids it)."""
    holder = healthy(lab)
    other = lab.other(holder)
    render = render_change(lab, tmp_path)
    poller = client(lab, max_seconds=1800)
    result: dict = {}
    drain = threading.Thread(target=lambda: result.update(res=run_drain(lab, render, holder, timeout=300)))
    killed = False
    try:
        poller.wait_for("ready", timeout=60)
        drain.start()
        wait_until("the drain's rule in the CIB", lambda: drain_rules(lab, holder), timeout=60, interval=0.1)
        mark = poller.mark()
        lab.kill(other)
        killed = True
        t_kill = time.monotonic()
        wait_until(f"the VIP served from {holder}", lambda: lab.holds_vip(holder) and lab.https().returncode == 0,
                   timeout=FAILOVER_BOUND_S, interval=0.5)
        served_s = time.monotonic() - t_kill
        outages = poller.since(mark, "up")
        drain.join(timeout=320)  # its SSH session notices the dead node only after a while
    finally:
        summary = poller.stop()
        if killed:
            lab.start(other)
    res = result.get("res")
    figure(f"{lab.backend}: drain of {holder}, {other} killed mid-way: drain exit "
           f"{res.returncode if res else 'none'}, the VIP served from {holder} {served_s:.1f} s after the kill; "
           f"outage {max((o['outage_s'] for o in outages), default=0):.2f} s")
    assert res is not None and res.returncode != 0, "the drain reported success though the VIP did not move"
    assert not summary["still_down"], json.dumps(summary)
    clear_drain_rules(lab, holder)
    healthy(lab)


def test_a_redefined_node_lifts_its_drain_rule_so_the_next_drain_can_move_the_vip(lab, tmp_path, figure):
    """A change that redefines every VM on its old disk (vm.vcpus): node A is drained, its VM
    restarted on the same disk and joined again, then node B is drained. A's join must lift A's
    drain rule once HAProxy runs there, or B's drain finds nowhere to put the VIP. A client
    polling throughout sees not one failed request."""
    first = healthy(lab)
    second = lab.other(first)
    render = render_change(lab, tmp_path)
    poller = client(lab, max_seconds=1800)
    try:
        poller.wait_for("ready", timeout=60)
        res = run_drain(lab, render, first)
        assert res.returncode == 0, res.stdout + res.stderr
        assert lab.vip_holders() == [second]
        lab.kill(first)  # the VM redefined: powered off, booted again from its disk
        lab.start(first)
        res = run_step(lab, render, f"join-{first}")
        assert res.returncode == 0, res.stdout + res.stderr
        t0 = time.monotonic()
        res = run_drain(lab, render, second)
        took = time.monotonic() - t0
        holders = lab.vip_holders()
        lab.kill(second)
        lab.start(second)
        res2 = run_step(lab, render, f"join-{second}")
        time.sleep(2)
    finally:
        summary = poller.stop()
    figure(f"{lab.backend}: {first} redefined, then {second} drained: exit {res.returncode} after {took:.1f} s, "
           f"the VIP on {holders}; {summary['probes']} requests, {summary['failed']} failed")
    assert res.returncode == 0 and holders == [first], res.stdout + res.stderr
    assert res2.returncode == 0, res2.stdout + res2.stderr
    assert summary["failed"] == 0 and not summary["outages"], json.dumps(summary)
    assert drain_rules(lab, first) == []
    healthy(lab)


def test_timer_change_with_the_peer_down_refuses_to_restart(lab, tmp_path, figure):
    """New totem timers need corosync restarted; with the other node down, restarting the VIP's
    node would leave the VIP nowhere (alone after a restart, wait_for_all withholds quorum). The
    join refuses, naming the missing node, and the VIP keeps serving; with the node back, the
    same steps apply the change."""
    holder = healthy(lab)
    other = lab.other(holder)
    token = runtime_token(lab, holder)
    render = render_change(lab, tmp_path, new_token(token + 200))
    poller = client(lab)
    killed = False
    try:
        poller.wait_for("ready", timeout=60)
        killed = True
        power_off(lab, other, holder)
        res = run_step(lab, render, f"join-{holder}")
        time.sleep(2)
        served = lab.holds_vip(holder)
    finally:
        summary = poller.stop()
        if killed:
            lab.start(other)
    out = res.stdout + res.stderr
    figure(f"{lab.backend}: token change with {other} down: join exit {res.returncode}; "
           f"{summary['failed']} failed requests")
    assert res.returncode != 0 and other in out, out
    assert served and summary["failed"] == 0 and not summary["outages"], json.dumps(summary)
    assert runtime_token(lab, holder) == token
    wait_until(f"{other} back in the cluster", lambda: lab.settled(holder), timeout=REJOIN_BOUND_S, interval=1)
    res = labctl(lab.backend, "steps", "--render", str(render), timeout=STEP_TIMEOUT_S, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert {runtime_token(lab, n) for n in lab.nodes} == {token + 200}
    restore(lab, tmp_path)


def test_key_rotation_changes_the_key_without_a_restart(lab, tmp_path, figure):
    """A new corosync key applied with the plan's steps while a client polls: every node gets
    the key, one reload switches the whole cluster to it (no restart, no new membership), so
    not one request fails. A node restarted afterwards reads the new key from its file and
    rejoins: the running cluster really uses it."""
    holder = healthy(lab)
    other = lab.other(holder)
    render = render_change(lab, tmp_path)
    with_authkey(render, new_authkey())
    before = lab.membership_changes()
    poller = client(lab)
    try:
        poller.wait_for("ready", timeout=60)
        res = labctl(lab.backend, "steps", "--render", str(render), timeout=STEP_TIMEOUT_S, check=False)
        time.sleep(2)
    finally:
        summary = poller.stop()
    changes = {n: c - before[n] for n, c in lab.membership_changes().items()}
    figure(f"{lab.backend}: key rotation: {summary['probes']} requests, {summary['failed']} failed; "
           f"memberships formed {changes}")
    assert res.returncode == 0, res.stdout + res.stderr
    assert summary["failed"] == 0 and not summary["outages"], json.dumps(summary)
    assert set(changes.values()) == {0}, changes
    lab.exec(other, "sudo systemctl stop pacemaker && sudo systemctl restart corosync && sudo systemctl start pacemaker",
             timeout=120)
    healthy(lab)
    assert lab.vip_holders() == [holder]


def test_key_rotation_with_the_peer_down_keeps_the_vip_and_takes_the_peer_back(lab, tmp_path, figure):
    """A new key while the other node is down: the VIP's node switches to it without stopping
    anything; the other node boots with the old key, cannot join (and, without quorum, starts
    nothing: never two VIP holders); its join then gives it the key and it rejoins."""
    holder = healthy(lab)
    other = lab.other(holder)
    render = render_change(lab, tmp_path)
    with_authkey(render, new_authkey())
    poller = client(lab, max_seconds=1800)
    killed = False
    try:
        poller.wait_for("ready", timeout=60)
        killed = True
        power_off(lab, other, holder)
        res = run_step(lab, render, f"join-{holder}")
        lab.start(other)
        killed = False
        time.sleep(10)  # long enough for the old-key node to have formed a membership of its own
        holders = lab.vip_holders()
        res2 = labctl(lab.backend, "steps", "--render", str(render), timeout=STEP_TIMEOUT_S, check=False)
        time.sleep(2)
    finally:
        summary = poller.stop()
        if killed:
            lab.start(other)
    figure(f"{lab.backend}: key rotation with {other} down: join exit {res.returncode}, VIP holders while "
           f"{other} had the old key {holders}; {summary['failed']} failed requests")
    assert res.returncode == 0, res.stdout + res.stderr
    assert holders == [holder]
    assert res2.returncode == 0, res2.stdout + res2.stderr
    assert summary["failed"] == 0 and not summary["outages"], json.dumps(summary)
    healthy(lab)


def test_a_restart_cut_off_before_it_happened_is_completed_by_the_next_run(lab, tmp_path, figure):
    """A join killed after it moved new totem timers into place but before it restarted
    corosync: the files now match, yet corosync still runs the old timers. The next run must
    notice and restart."""
    holder = healthy(lab)
    other = lab.other(holder)
    token = runtime_token(lab, other)
    render = render_change(lab, tmp_path, new_token(token + 100))
    # Kill the join the moment corosync.conf changes. pkill reads only the start of a command
    # line (the script is long): match its first line; [#] keeps it from matching this watcher.
    watcher = ("sudo sh -c 'old=$(md5sum </etc/corosync/corosync.conf); touch /run/hapx-test-watcher; i=0; "
               "while [ \"$(md5sum </etc/corosync/corosync.conf)\" = \"$old\" ] && [ $i -lt 6000 ]; "
               "do sleep 0.01; i=$((i+1)); done; pkill -KILL -f \"[#] Step join\"; rm -f /run/hapx-test-watcher' "
               ">/dev/null 2>&1 &")
    lab.exec(other, "sudo rm -f /run/hapx-test-watcher")
    lab.exec(other, watcher)
    wait_until("the watcher ready", lambda: lab.exec(other, "test -e /run/hapx-test-watcher", check=False).returncode == 0,
               timeout=30, interval=0.2)
    res = run_step(lab, render, f"join-{other}")
    assert res.returncode != 0, "the watcher did not cut the join off"
    assert runtime_token(lab, other) == token
    res = run_step(lab, render, f"join-{other}")
    figure(f"{lab.backend}: join of {other} cut off, run again: exit {res.returncode}, runtime token "
           f"{runtime_token(lab, other)} (configured {token + 100})")
    assert res.returncode == 0, res.stdout + res.stderr
    assert runtime_token(lab, other) == token + 100
    restore(lab, tmp_path)


def test_configure_keeps_objects_hapx_does_not_own(lab, tmp_path):
    """An operator's resource and constraint (say a fence device and its placement) survive the
    configure step: hapx retires only objects it owns."""
    holder = healthy(lab)
    render = render_change(lab, tmp_path)
    lab.exec(holder, "sudo crm configure primitive ops-canary ocf:heartbeat:Dummy "
                     "op monitor interval=30s && sudo crm configure location ops-canary-placement ops-canary "
                     f"10: {holder}", timeout=60)
    try:
        res = run_step(lab, render, "configure")
        assert res.returncode == 0, res.stdout + res.stderr
        xml = lab.exec(holder, "sudo cibadmin --query --scope configuration").stdout
        assert 'id="ops-canary"' in xml, "the configure step deleted an operator's resource"
        assert 'id="ops-canary-placement"' in xml, "the configure step deleted an operator's constraint"
    finally:
        lab.exec(holder, "sudo crm configure delete --force ops-canary-placement ops-canary", timeout=60, check=False)
    healthy(lab)


def test_both_down_and_one_lost_for_good_the_survivor_serves_after_the_readmes_unblock(lab, figure):
    """Both nodes lose power and one never comes back: the other boots alone and, with
    wait_for_all, waits for its peer without quorum, so nothing serves. The command docs/day2.md gives,
    run on the survivor, tells votequorum to stop waiting: it becomes quorate and serves the VIP
    alone. When the lost node does come back, it rejoins (no split brain: alone, it would wait)."""
    assert UNBLOCK in (PROJECT / "docs" / "day2.md").read_text(), "docs/day2.md no longer gives this way out"
    survivor = healthy(lab)
    lost = lab.other(survivor)
    try:
        lab.kill(lost)
        lab.kill(survivor)
        lab.start(survivor)
        wait_until(f"{survivor} up without quorum", lambda: not lab.crm_status(survivor)["quorum"],
                   timeout=REJOIN_BOUND_S, interval=1)
        time.sleep(10)
        blocked = lab.https().returncode != 0 and not lab.holds_vip(survivor)
        t0 = time.monotonic()
        lab.exec(survivor, UNBLOCK)
        wait_until(f"the VIP served from {survivor} alone", lambda: lab.https().returncode == 0,
                   timeout=REJOIN_BOUND_S, interval=0.5)
        served_s = time.monotonic() - t0
    finally:
        lab.start(lost)
    figure(f"{lab.backend}: both nodes down, {lost} lost: {survivor} served the VIP alone {served_s:.1f} s "
           f"after the README's unblock")
    assert blocked, f"{survivor} served alone without quorum"
    assert lab.holds_vip(survivor)
    healthy(lab)
