"""The status command's pure parts: crm_mon's XML, HAProxy's `show stat`, the verdict, the screen."""

import pytest

from hapx.cli import status
from hapx.cli.status import NodeReport

OUTPUTS = {
    "vip": "10.99.4.20",
    "nodeIps": {"hapx-node01": "10.99.4.11", "hapx-node02": "10.99.4.12"},
    "backendMasters": ["kube-mast01 10.99.5.101:6443", "kube-mast02 10.99.5.102:6443"],
    "sshUser": "debian",
    "sshPrivateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nSECRETKEYTEXT\n-----END OPENSSH PRIVATE KEY-----\n",
    "statsPassword": "S3cretStatsPassw0rd",
    "nodeHostKeys": {"hapx-node01": "ssh-ed25519 AAAA1", "hapx-node02": "ssh-ed25519 AAAA2"},
}


def crm_mon_xml(node2: str = 'online="true" standby="false"', vip_on: str = "hapx-node02",
                quorum: str = "true", failures: str = "") -> str:
    """crm_mon --one-shot --inactive --output-as=xml as Pacemaker 2.1.5 prints it (trimmed)."""
    vip = (f'<resource id="vip" resource_agent="ocf:hapx:ipaddr" role="Started" active="true" orphaned="false" '
           f'blocked="false" managed="true" failed="false" failure_ignored="false" nodes_running_on="1">'
           f'<node name="{vip_on}" id="2" cached="true"/></resource>' if vip_on else
           '<resource id="vip" resource_agent="ocf:hapx:ipaddr" role="Stopped" active="false" orphaned="false" '
           'blocked="false" managed="true" failed="false" failure_ignored="false" nodes_running_on="0"/>')
    node2_running = 'online="true"' in node2 and 'standby="true"' not in node2
    h2 = ('<resource id="haproxy" resource_agent="systemd:haproxy" role="Started" active="true" failed="false" '
          'nodes_running_on="1"><node name="hapx-node02" id="2" cached="true"/></resource>' if node2_running else
          '<resource id="haproxy" resource_agent="systemd:haproxy" role="Stopped" active="false" failed="false" '
          'nodes_running_on="0"/>')
    return f"""<?xml version="1.0"?>
<pacemaker-result api-version="2.25" request="crm_mon --one-shot --inactive --output-as=xml">
  <summary>
    <stack type="corosync"/>
    <current_dc present="true" version="2.1.5-a3f44794f94" name="hapx-node01" id="1" with_quorum="{quorum}"/>
    <nodes_configured number="2"/>
  </summary>
  <nodes>
    <node name="hapx-node01" id="1" online="true" standby="false" standby_onfail="false" maintenance="false" pending="false" unclean="false" shutdown="false" expected_up="true" is_dc="true" resources_running="1" type="member"/>
    <node name="hapx-node02" id="2" {node2} standby_onfail="false" maintenance="false" pending="false" unclean="false" shutdown="false" expected_up="true" is_dc="false" resources_running="2" type="member"/>
  </nodes>
  <resources>
    {vip}
    <clone id="haproxy-clone" multi_state="false" unique="false" managed="true" disabled="false" failed="false" failure_ignored="false">
      <resource id="haproxy" resource_agent="systemd:haproxy" role="Started" active="true" failed="false" nodes_running_on="1"><node name="hapx-node01" id="1" cached="true"/></resource>
      {h2}
    </clone>
  </resources>
  {failures}
  <status code="0" message="OK"/>
</pacemaker-result>
"""


STAT_HEADER = ("# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,"
               "status,weight,act,bck\n")


def show_stat(*servers: tuple[str, str]) -> str:
    rows = ["kubernetes-apiserver,FRONTEND,,,0,1,,1,0,0,0,0,0,,,,,OPEN,,,\n"]
    rows += [f"kubernetes-masters,{name},0,0,0,1,,1,0,0,,0,,0,0,0,0,{st},1,1,0\n" for name, st in servers]
    rows.append("kubernetes-masters,BACKEND,0,0,0,1,,1,0,0,0,0,,0,0,0,0,UP,2,2,0\n")
    return STAT_HEADER + "".join(rows) + "\n"


ALL_UP = {"kube-mast01": "UP", "kube-mast02": "UP"}


def healthy_reports() -> list[NodeReport]:
    view = status.parse_crm_mon(crm_mon_xml())
    return [NodeReport(n, ip, view, dict(ALL_UP)) for n, ip in OUTPUTS["nodeIps"].items()]


def test_parse_crm_mon_healthy():
    view = status.parse_crm_mon(crm_mon_xml())
    assert view.nodes == {"hapx-node01": "online", "hapx-node02": "online"}
    assert view.vip_on == ["hapx-node02"]
    assert view.haproxy_on == ["hapx-node01", "hapx-node02"]
    assert view.quorum and view.dc == "hapx-node01" and view.failed == []


def test_parse_crm_mon_offline_standby_and_failures():
    assert status.parse_crm_mon(crm_mon_xml(node2='online="false" standby="false"')).nodes["hapx-node02"] == "offline"
    view = status.parse_crm_mon(crm_mon_xml(node2='online="true" standby="true"', vip_on="", quorum="false",
                                            failures='<failures><failure op_key="haproxy_monitor_5000" '
                                            'node="hapx-node01" exitstatus="not running" exitreason="" exitcode="7" '
                                            'call="12" status="complete" interval="5000" task="monitor"/></failures>'))
    assert view.nodes["hapx-node02"] == "standby"
    assert view.vip_on == [] and view.haproxy_on == ["hapx-node01"] and not view.quorum
    assert view.failed == ["haproxy_monitor_5000 on hapx-node01: not running"]


def test_parse_show_stat_reads_the_masters_backend_only():
    text = show_stat(("kube-mast01", "UP"), ("kube-mast02", "DOWN 1/2"))
    assert status.parse_show_stat(text) == {"kube-mast01": "UP", "kube-mast02": "DOWN"}
    assert status.parse_show_stat(text, backend="other") == {}


def test_healthy_pair_exits_zero_and_shows_everything_but_secrets():
    reports = healthy_reports()
    verdict = status.assess(OUTPUTS, reports)
    assert verdict.problems == [] and verdict.code == 0
    screen = status.format_screen(OUTPUTS, reports, verdict)
    assert screen.startswith("hapx pair: HEALTHY\n")
    assert "VIP 10.99.4.20 on hapx-node02; quorum yes; DC hapx-node01" in screen
    lines = screen.splitlines()
    assert any(line.split() == ["hapx-node02", "10.99.4.12", "online", "running", "yes"] for line in lines)
    assert any(line.split() == ["kube-mast01", "10.99.5.101:6443", "UP", "UP"] for line in lines)
    assert "failed actions: none" in screen
    for secret in ("SECRETKEYTEXT", OUTPUTS["statsPassword"], "AAAA1"):
        assert secret not in screen


def test_a_master_down_is_degraded_and_shown_per_node():
    reports = healthy_reports()
    reports[0] = NodeReport(reports[0].name, reports[0].address, reports[0].view,
                            {"kube-mast01": "DOWN", "kube-mast02": "UP"})
    verdict = status.assess(OUTPUTS, reports)
    assert verdict.code == 1 and verdict.problems == ["kube-mast01 is DOWN on hapx-node01"]
    screen = status.format_screen(OUTPUTS, reports, verdict)
    assert screen.startswith("hapx pair: DEGRADED (1 problem)\n  - kube-mast01 is DOWN on hapx-node01\n")
    assert any(line.split() == ["kube-mast01", "10.99.5.101:6443", "DOWN", "UP"] for line in screen.splitlines())


def test_a_node_down_is_degraded_offline_and_unreachable():
    view = status.parse_crm_mon(crm_mon_xml(node2='online="false" standby="false"', vip_on="hapx-node01"))
    reports = [NodeReport("hapx-node01", "10.99.4.11", view, dict(ALL_UP)),
               NodeReport("hapx-node02", "10.99.4.12", error="unreachable over SSH (timed out)")]
    verdict = status.assess(OUTPUTS, reports)
    assert verdict.code == 1 and verdict.seen_by == "hapx-node01"
    assert "hapx-node02 is offline" in verdict.problems
    screen = status.format_screen(OUTPUTS, reports, verdict)
    assert "VIP 10.99.4.20 on hapx-node01;" in screen
    assert any(line.split()[:4] == ["hapx-node02", "10.99.4.12", "offline", "(unreachable)"]
               for line in screen.splitlines())


@pytest.mark.parametrize("change, problem", [
    (dict(quorum="false"), "the cluster has no quorum"),
    (dict(vip_on=""), "the VIP runs on 0 nodes"),
    (dict(node2='online="true" standby="true"'), "hapx-node02 is standby"),
])
def test_each_cluster_problem_degrades(change, problem):
    view = status.parse_crm_mon(crm_mon_xml(**change))
    reports = [NodeReport(n, ip, view, dict(ALL_UP)) for n, ip in OUTPUTS["nodeIps"].items()]
    assert problem in status.assess(OUTPUTS, reports).problems


def test_no_node_answering_is_degraded():
    reports = [NodeReport(n, ip, error="unreachable over SSH") for n, ip in OUTPUTS["nodeIps"].items()]
    verdict = status.assess(OUTPUTS, reports)
    assert verdict.code == 1 and verdict.problems[-1].startswith("no node answered")
    assert "VIP 10.99.4.20: unknown" in status.format_screen(OUTPUTS, reports, verdict)


def test_report_from_the_probes_answer():
    answer = {"crm_mon": crm_mon_xml(), "crm_mon_rc": 0, "stat": None, "stat_error": "connection refused"}
    report = status.report_from("hapx-node01", "10.99.4.11", answer)
    assert report.servers is None and "admin socket does not answer" in report.error
    answer["stat"] = show_stat(("kube-mast01", "UP"), ("kube-mast02", "UP"))
    assert status.report_from("hapx-node01", "10.99.4.11", answer).servers == ALL_UP


def test_main_refuses_outputs_without_what_it_needs(tmp_path, capsys):
    path = tmp_path / "outputs.json"
    path.write_text('{"vip": "10.99.4.20"}')
    assert status.main(["--outputs", str(path)]) == 2
    assert "lack" in capsys.readouterr().err


def test_a_stack_without_its_passphrase_is_refused_before_pulumi_runs(tmp_path, monkeypatch):
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE", raising=False)
    with pytest.raises(status.OutputsError, match="no .pulumi-passphrase"):
        status.stack_outputs("dev", project=tmp_path)
    assert not (tmp_path / ".pulumi-passphrase").exists()
