"""End to end on real VMs: the rendered stack, booted and bootstrapped by lab/labctl.

The tests run in file order on one lab (see conftest.py); the last one tears it down and
checks that nothing is left. All client traffic runs inside the lab's network namespace.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import ssl
import subprocess
import time
from pathlib import Path

import labclient
from labclient import Poller, wait_until

FAILOVER_BOUND_S = 60     # the VIP serves again from the survivor within this
REJOIN_BOUND_S = 300      # a restarted node is online in the cluster again within this (TCG boot)
STICKY_WATCH_S = 15       # after the rejoin, the VIP must stay where it is for this long


def _vip_with_running_haproxy(status: dict, everywhere: bool = True) -> str:
    """The VIP runs on exactly one node, which runs HAProxy; with everywhere, HAProxy runs on every online node."""
    vip, haproxy = status["resources"]["vip"], status["resources"]["haproxy"]
    assert vip["role"] == "Started" and len(vip["nodes"]) == 1, status["resources"]
    assert vip["nodes"][0] in haproxy["nodes"], status["resources"]
    if everywhere:
        online = sorted(n for n, up in status["online"].items() if up)
        # An offline node's clone instance shows as Stopped: only the online ones must run.
        assert sorted(haproxy["nodes"]) == online, status["resources"]
    return vip["nodes"][0]


def test_vip_serves_the_api_frontend(lab):
    """HTTPS through the VIP's :6443 reaches a stand-in API server; HAProxy passes TLS through."""
    res = lab.https("/healthz")
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.rstrip().endswith("ok")
    der = ssl.PEM_cert_to_DER_cert((labclient.STATE_FILE.parent / "tls" / "cert.pem").read_text())
    assert f"peer-certificate-sha256: {hashlib.sha256(der).hexdigest()}" in res.stdout, \
        "the VIP did not present the stand-in's certificate: is HAProxy terminating TLS?"
    # Round robin over the stand-ins: several requests reach more than one of them.
    servers = set()
    for _ in range(6):
        out = lab.https("/version").stdout
        m = re.search(r'"server": "([^"]+)"', out)
        assert m, out
        servers.add(m.group(1))
    assert len(servers) >= 2, f"every request reached {servers}"


def test_stats_page_wants_its_password(lab):
    url = f"http://{lab.vip}:{lab.stats_port}/"
    password = (lab.render / "secrets" / "stats-password").read_text().strip()

    def code(*auth: str) -> str:
        res = lab.client("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", *auth, url)
        return res.stdout.strip()

    assert code() == "401"
    assert code("-u", f"{lab.stats_user}:wrong-{password}") == "401"
    assert code("-u", f"{lab.stats_user}:{password}") == "200"
    page = lab.client("curl", "-s", "--max-time", "10", "-u", f"{lab.stats_user}:{password}", url + ";csv").stdout
    assert "kubernetes-masters" in page and "kube-mast01" in page


def test_both_nodes_online_haproxy_everywhere_vip_on_one(lab):
    for node in lab.nodes:
        text = lab.exec(node, "sudo crm_mon -1").stdout
        assert re.search(r"Online: \[ .*\b" + r"\b.*\b".join(sorted(lab.nodes)) + r"\b.* \]", text), text
        status = lab.crm_status(node)
        assert status["quorum"], status["xml"]
        assert all(status["online"].get(n) for n in lab.nodes), status["online"]
        _vip_with_running_haproxy(status)


def _cib_fingerprint(lab, node: str) -> dict:
    head = lab.exec(node, "sudo cibadmin --query | head -n 1").stdout
    attrs = dict(re.findall(r'(\w+)="([^"]*)"', head))
    config = lab.exec(node, "sudo cibadmin --query --scope configuration").stdout
    return {"epoch": attrs.get("epoch"), "admin_epoch": attrs.get("admin_epoch"), "configuration": config}


def test_reapplying_every_step_changes_nothing(lab):
    first = next(iter(lab.nodes))
    before = _cib_fingerprint(lab, first)
    holder = lab.vip_node()
    res = labclient.labctl("steps", timeout=900)
    assert res.returncode == 0, res.stdout + res.stderr
    after = _cib_fingerprint(lab, first)
    assert (after["epoch"], after["admin_epoch"]) == (before["epoch"], before["admin_epoch"])
    assert after["configuration"] == before["configuration"]
    assert lab.vip_node() == holder
    assert lab.https("/healthz").returncode == 0


def test_hard_failover_and_rejoin(lab):
    victim = lab.vip_node()
    assert victim, "the VIP runs nowhere"
    survivor = lab.other(victim)
    poller = Poller(lab)
    try:
        poller.wait_for("ready", timeout=30)
        mark = poller.mark()
        t_kill = time.time()
        lab.virsh("destroy", victim)
        down = poller.wait_for("down", timeout=30, after=mark)
        up = poller.wait_for("up", timeout=FAILOVER_BOUND_S, after=mark)
        served_again_s = up["t"] - t_kill
        print(f"\nhard failover: {victim} destroyed, VIP served again from {survivor} after "
              f"{served_again_s:.1f}s (outage {up['outage_s']:.1f}s, first failed probe "
              f"{down['t'] - t_kill:.1f}s after the kill)")
        assert served_again_s <= FAILOVER_BOUND_S
        assert lab.vip_node(ask=survivor) == survivor
        assert _vip_with_running_haproxy(lab.crm_status(survivor)) == survivor

        t_start = time.monotonic()
        lab.virsh("start", victim)
        wait_until(f"{victim} online again, HAProxy running there", lambda: lab.settled(survivor),
                   timeout=REJOIN_BOUND_S, interval=3)
        print(f"rejoin: {victim} online in the cluster {time.monotonic() - t_start:.1f}s after `virsh start`")
        mark = poller.mark()
        time.sleep(STICKY_WATCH_S)
        status = lab.crm_status(survivor)
        assert _vip_with_running_haproxy(status) == survivor, "the VIP moved back to the rejoined node"
        assert lab.vip_node(ask=victim) == survivor
    finally:
        summary = poller.stop()
    later = [ev for ev in poller.events[mark:] if ev["event"] in ("down", "up")]
    assert not later, f"the VIP dropped while {victim} rejoined: {later}"
    assert not summary["still_down"], summary


def test_teardown_leaves_nothing(lab):
    state = json.loads(labclient.STATE_FILE.read_text())
    ns, net_ino, mnt_ino = state["ns"], state.get("net_ino"), state.get("mnt_ino")
    res = labclient.labctl("down", timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr

    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert not re.search(rf"^{re.escape(ns)}\b", netns, re.M), netns
    leftovers = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            inos = {os.stat(f"/proc/{pid}/ns/{k}").st_ino for k in ("net", "mnt")}
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if inos & {net_ino, mnt_ino} or "guest=hapx-node" in cmdline or "lab/responder.py" in cmdline:
            leftovers.append(f"{pid}: {cmdline}")
    assert not leftovers, leftovers
    mounts = Path("/proc/self/mountinfo").read_text()
    assert "build/lab" not in mounts and f"/run/netns/{ns}" not in mounts
    assert not labclient.STATE_FILE.parent.exists(), "build/lab/state (domains, volumes) is still there"
    # And `down` again is a no-op.
    assert labclient.labctl("down", timeout=60).returncode == 0
