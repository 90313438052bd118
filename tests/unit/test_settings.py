"""Every settings rule refuses bad input with a message naming the config key."""

import copy

import pytest

from hapx.settings import SettingsError, default_mac, settings_from_dict


def problems(cfg: dict) -> list[str]:
    with pytest.raises(SettingsError) as err:
        settings_from_dict(cfg)
    return err.value.problems


def test_dev_stack_carries_the_seed_values(dev_config):
    s = settings_from_dict(dev_config)
    assert str(s.vip) == "192.168.4.20"
    assert [n.name for n in s.nodes] == ["hapx-node01", "hapx-node02"]
    assert all(str(n.ip).startswith("192.168.4.") for n in s.nodes)
    assert [m.endpoint for m in s.masters] == ["kube-mast01:6443", "kube-mast02:6443", "kube-mast03:6443"]
    assert s.haproxy.stats_port == 32700
    assert s.domain_type == "kvm"
    assert s.network.creates
    assert s.base_image.endswith("debian-12-generic-amd64.qcow2")
    assert s.corosync.consensus_ms > s.corosync.token_ms


def test_default_mac_is_stable_and_local():
    assert default_mac("hapx-node01") == default_mac("hapx-node01")
    assert default_mac("hapx-node01") != default_mac("hapx-node02")
    assert default_mac("hapx-node01").startswith("52:54:00:")


@pytest.mark.parametrize("mutate, key, words", [
    (lambda c: c.update(vip="192.168.4.300"), "hapx:vip", "not an IPv4 address"),
    (lambda c: c.update(vip="10.0.0.20"), "hapx:vip", "outside network.cidr"),
    (lambda c: c.update(vip="192.168.4.21"), "hapx:vip", "address of node hapx-node01"),
    (lambda c: c.update(vip="192.168.4.1"), "hapx:vip", "gateway"),
    (lambda c: c.update(vip="192.168.4.255"), "hapx:vip", "broadcast"),
    (lambda c: c.pop("vip"), "hapx:vip", "is required"),
    (lambda c: c["nodes"].pop(), "hapx:nodes", "at least two"),
    (lambda c: c.pop("nodes"), "hapx:nodes", "is required"),
    (lambda c: c["nodes"][1].update(name="hapx-node01"), "hapx:nodes", "duplicate name"),
    (lambda c: c["nodes"][1].update(ip="192.168.4.21"), "hapx:nodes", "duplicate ip"),
    (lambda c: c["nodes"][1].update(mac=default_mac("hapx-node01")), "hapx:nodes", "duplicate mac"),
    (lambda c: c["nodes"][0].update(ip="192.168.5.21"), "hapx:nodes[0].ip", "outside network.cidr"),
    (lambda c: c["nodes"][0].update(ip="not-an-ip"), "hapx:nodes[0].ip", "not an IPv4 address"),
    (lambda c: c["nodes"][0].update(ip="192.168.4.1"), "hapx:nodes[0].ip", "gateway"),
    (lambda c: c["nodes"][0].update(name="Node_01"), "hapx:nodes[0].name", "not a valid host name"),
    (lambda c: c["nodes"][0].update(mac="52:54:00:zz:00:01"), "hapx:nodes[0].mac", "not a MAC"),
    (lambda c: c["nodes"][0].update(mac="01:00:5e:00:00:01"), "hapx:nodes[0].mac", "multicast"),
    (lambda c: c["nodes"][0].update(role="x"), "hapx:nodes[0].role", "unknown setting"),
    (lambda c: c.update(masters=[]), "hapx:masters", "non-empty"),
    (lambda c: c["masters"][0].update(port=70000), "hapx:masters[0].port", "between 1 and 65535"),
    (lambda c: c["masters"][0].update(port=0), "hapx:masters[0].port", "between 1 and 65535"),
    (lambda c: c["masters"][0].update(address="bad host!"), "hapx:masters[0].address", "neither"),
    (lambda c: c["masters"][1].update(name="kube-mast01"), "hapx:masters", "duplicate name"),
    (lambda c: c.update(domainType="xen"), "hapx:domainType", "one of kvm, qemu"),
    (lambda c: c["network"].update(mode="bridge"), "hapx:network.mode", "one of create, existing"),
    (lambda c: c["network"].update(cidr="192.168.4.0/33"), "hapx:network.cidr", "not an IPv4 network"),
    (lambda c: c["network"].update(cidr="192.168.4.7/24"), "hapx:network.cidr", "not an IPv4 network"),
    (lambda c: c["network"].update(gateway="10.1.1.1"), "hapx:network.gateway", "outside"),
    (lambda c: c["network"].update(gateway="192.168.4.254"), "hapx:network.gateway", "first address"),
    (lambda c: c.update(haproxy={"statsPort": 0}), "hapx:haproxy.statsPort", "between 1 and 65535"),
    (lambda c: c.update(haproxy={"statsPort": 6443}), "hapx:haproxy.statsPort", "must differ"),
    (lambda c: c.update(haproxy={"frontendPort": "https"}), "hapx:haproxy.frontendPort", "integer"),
    (lambda c: c.update(haproxy={"healthCheck": "icmp"}), "hapx:haproxy.healthCheck", "one of https, tcp"),
    (lambda c: c.update(haproxy={"healthCheckPath": "readyz"}), "hapx:haproxy.healthCheckPath", "absolute"),
    (lambda c: c.update(haproxy={"timeoutClientMs": 10}), "hapx:haproxy.timeoutClientMs", "between"),
    (lambda c: c.update(corosync={"tokenMs": 100}), "hapx:corosync.tokenMs", "between"),
    (lambda c: c.update(corosync={"tokenMs": 2000, "consensusMs": 2000}), "hapx:corosync.consensusMs", "greater than"),
    (lambda c: c.update(vm={"memoryMiB": 128}), "hapx:vm.memoryMiB", "between"),
    (lambda c: c.update(vm={"vcpus": 0}), "hapx:vm.vcpus", "between"),
    (lambda c: c.update(vm={"cores": 2}), "hapx:vm.cores", "unknown setting"),
    (lambda c: c.update(sshUser="root"), "hapx:sshUser", "non-root"),
    (lambda c: c.update(pacemaker={"haproxyMonitorSeconds": 1}), "hapx:pacemaker.haproxyMonitorSeconds", "between"),
    (lambda c: c.update(vipp="192.168.4.20"), "hapx:vipp", "unknown setting"),
])
def test_each_rule_names_its_key(dev_config, mutate, key, words):
    cfg = copy.deepcopy(dev_config)
    mutate(cfg)
    found = [p for p in problems(cfg) if p.startswith(key + ":")]
    assert found, f"no problem reported for {key}: {problems(cfg)}"
    assert any(words in p for p in found), found


def test_all_problems_are_reported_at_once(dev_config):
    cfg = copy.deepcopy(dev_config)
    cfg["vip"] = "bogus"
    cfg["domainType"] = "xen"
    cfg["masters"] = []
    cfg["nodes"][1]["ip"] = cfg["nodes"][0]["ip"]
    with pytest.raises(SettingsError) as err:
        settings_from_dict(cfg)
    message = str(err.value)
    for key in ("hapx:vip", "hapx:domainType", "hapx:masters", "hapx:nodes"):
        assert key in message
    assert "4 problem(s)" in message


def test_three_nodes_are_accepted(three_node_config):
    s = settings_from_dict(three_node_config)
    assert [n.nodeid for n in s.nodes] == [1, 2, 3]


def test_consensus_defaults_to_corosyncs_rule(dev_config):
    cfg = copy.deepcopy(dev_config)
    cfg["corosync"] = {"tokenMs": 1000}
    assert settings_from_dict(cfg).corosync.consensus_ms == 1200
