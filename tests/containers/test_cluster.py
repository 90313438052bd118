"""The pair at native speed: the rendered stack in containers, bootstrapped by the plan's steps.

All client traffic runs inside the lab's network namespace.
"""

from __future__ import annotations

import re

from lab.labclient import CRM, labctl
from tests.labtier import check_vip_serves_through_haproxy


def vip_with_running_haproxy(status: dict, everywhere: bool = True) -> str:
    """The VIP runs on exactly one node, which runs HAProxy; with everywhere, HAProxy runs on every online node."""
    vip, haproxy = status["resources"][CRM.vip], status["resources"][CRM.haproxy]
    assert vip["role"] == "Started" and len(vip["nodes"]) == 1, status["resources"]
    assert vip["nodes"][0] in haproxy["nodes"], status["resources"]
    if everywhere:
        online = sorted(n for n, up in status["online"].items() if up)
        # An offline node's clone instance shows as Stopped: only the online ones must run.
        assert sorted(haproxy["nodes"]) == online, status["resources"]
    return vip["nodes"][0]


def test_vip_serves_the_api_frontend(lab):
    check_vip_serves_through_haproxy(lab)


def test_stats_page_wants_its_password(lab):
    url = f"http://{lab.vip}:{lab.stats_port}/"

    def code(*auth: str) -> str:
        res = lab.client("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", *auth, url)
        return res.stdout.strip()

    assert code() == "401"
    assert code("-u", f"{lab.stats_user}:wrong-{lab.stats_password}") == "401"
    assert code("-u", f"{lab.stats_user}:{lab.stats_password}") == "200"
    page = lab.stats_csv()
    assert "kubernetes-masters" in page and "kube-mast01" in page


def test_both_nodes_online_haproxy_everywhere_vip_on_one(lab):
    for node in lab.nodes:
        status = lab.crm_status(node)
        assert status["quorum"], status["xml"]
        assert all(status["online"].get(n) for n in lab.nodes), status["online"]
        vip_with_running_haproxy(status)
    assert len(lab.vip_holders()) == 1


def test_cloud_init_finished_cleanly_with_the_stacks_network(lab):
    """What the node's cloud-init applied: done without errors, eth0 by its MAC with the static
    address, the stack's resolver (the containers run the image's netplan/networkd stack)."""
    for node, ip in lab.nodes.items():
        status = lab.exec(node, "cloud-init status --long", check=False)
        # cloud-init status exits non-zero when a stage reported an error.
        assert status.returncode == 0 and "status: done" in status.stdout, status.stdout + status.stderr
        assert f"inet {ip}/" in lab.exec(node, "ip -4 -o addr show dev eth0").stdout
        assert lab.exec(node, "systemctl is-system-running --wait || true", timeout=120).stdout.strip() == "running"


def _cib_fingerprint(lab, node: str) -> dict:
    head = lab.exec(node, "sudo cibadmin --query | head -n 1").stdout
    attrs = dict(re.findall(r'(\w+)="([^"]*)"', head))
    config = lab.exec(node, "sudo cibadmin --query --scope configuration").stdout
    return {"epoch": attrs.get("epoch"), "admin_epoch": attrs.get("admin_epoch"), "configuration": config}


def test_reapplying_every_step_changes_nothing(lab):
    first = next(iter(lab.nodes))
    before = _cib_fingerprint(lab, first)
    holder = lab.vip_node()
    res = labctl(lab.backend, "steps", timeout=900)
    assert res.returncode == 0, res.stdout + res.stderr
    after = _cib_fingerprint(lab, first)
    assert (after["epoch"], after["admin_epoch"]) == (before["epoch"], before["admin_epoch"])
    assert after["configuration"] == before["configuration"]
    assert lab.vip_node() == holder
    assert lab.https("/healthz").returncode == 0
