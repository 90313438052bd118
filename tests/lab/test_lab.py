"""End to end on real VMs: the rendered stack, booted and bootstrapped by lab/labctl.

The lab tier runs on one lab (see conftest.py): this file's service checks first, then the
fault suite (test_faults.py), then test_teardown.py takes the lab down and checks that
nothing is left. All client traffic runs inside the lab's network namespace.
"""

from __future__ import annotations

import hashlib
import re
import ssl

import labclient


def vip_with_running_haproxy(status: dict, everywhere: bool = True) -> str:
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
        vip_with_running_haproxy(status)


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
