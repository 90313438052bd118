"""Every settings rule refuses bad input with a message naming the config key."""

import copy

import pytest

from hapx.settings import (Corosync, SettingsError, default_knet_ping_timers, default_mac, min_knet_ping_timeout_ms,
                           settings_from_dict)


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
    (lambda c: c.update(corosync={"knetPingIntervalMs": 75}), "hapx:corosync.knetPingIntervalMs", "between 150"),
    (lambda c: c.update(corosync={"knetPingTimeoutMs": 150}), "hapx:corosync.knetPingTimeoutMs", "between 300"),
    (lambda c: c.update(corosync={"knetPingIntervalMs": "fast"}), "hapx:corosync.knetPingIntervalMs", "integer"),
    (lambda c: c.update(corosync={"knetPingIntervalMs": 500, "knetPingTimeoutMs": 500}),
     "hapx:corosync.knetPingIntervalMs", "less than corosync.knetPingTimeoutMs (500 ms)"),
    (lambda c: c.update(corosync={"tokenMs": 600, "knetPingIntervalMs": 400}),
     "hapx:corosync.knetPingIntervalMs", "less than corosync.knetPingTimeoutMs (300 ms, derived from corosync.tokenMs)"),
    (lambda c: c.update(corosync={"knetPingIntervalMs": 250, "knetPingTimeoutMs": 400}),
     "hapx:corosync.knetPingTimeoutMs", "at least 500 with corosync.knetPingIntervalMs 250"),
    (lambda c: c.update(corosync={"tokenMs": 1000, "knetPingIntervalMs": 450}),
     "hapx:corosync.knetPingIntervalMs", "needs corosync.knetPingTimeoutMs of at least 700 (500 ms, derived"),
    (lambda c: c.update(corosync={"knetPingMs": 100}), "hapx:corosync.knetPingMs", "unknown setting"),
    (lambda c: c.update(vm={"memoryMiB": 128}), "hapx:vm.memoryMiB", "between"),
    (lambda c: c.update(vm={"vcpus": 0}), "hapx:vm.vcpus", "between"),
    (lambda c: c.update(vm={"cores": 2}), "hapx:vm.cores", "unknown setting"),
    (lambda c: c.update(sshUser="root"), "hapx:sshUser", "non-root"),
    (lambda c: c.update(pacemaker={"haproxyMonitorSeconds": 1}), "hapx:pacemaker.haproxyMonitorSeconds", "between"),
    (lambda c: c.update(vipp="192.168.4.20"), "hapx:vipp", "unknown setting"),
    (lambda c: c.update(haproxy={"dnsResolveIntervalSeconds": 0}), "hapx:haproxy.dnsResolveIntervalSeconds", "between 1"),
    (lambda c: c["network"].update(dnsHosts={"kube-mast01": "192.168.4.101"}), "hapx:network.dnsHosts", "a list"),
    (lambda c: c["network"].update(dnsHosts=[{"name": "kube-mast01"}]), "hapx:network.dnsHosts[0]",
     "exactly name and address"),
    (lambda c: c["network"].update(dnsHosts=[{"name": "bad name", "address": "192.168.4.101"}]),
     "hapx:network.dnsHosts[0].name", "not a host name"),
    (lambda c: c["network"].update(dnsHosts=[{"name": "kube-mast01", "address": "kube-mast01"}]),
     "hapx:network.dnsHosts[0].address", "not an IPv4 address"),
    (lambda c: c["network"].update(dnsHosts=[{"name": "kube-mast01", "address": "192.168.4.101"},
                                             {"name": "Kube-Mast01", "address": "192.168.4.102"}]),
     "hapx:network.dnsHosts", "duplicate name"),
    (lambda c: c["network"].update(mode="existing", dnsHosts=[{"name": "kube-mast01", "address": "192.168.4.101"}]),
     "hapx:network.dnsHosts", "network.mode: create"),
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


@pytest.mark.parametrize("token, nodes, expected", [
    # Below token 600 corosync's own token/4 and token/2 flap (measured at 300: 75/150 ms).
    (300, 2, (150, 300)),
    (400, 2, (150, 300)),
    # From token 600 (two nodes) on they are corosync's own.
    (600, 2, (150, 300)),
    (800, 2, (200, 400)),
    # Between 800 and 1000 token/4 rounds up to two of libknet's 200 ms ticks, too close to
    # token/2: the interval drops to one tick.
    (900, 2, (200, 450)),
    (1000, 2, (250, 500)),
    (1500, 2, (375, 750)),
    (3000, 2, (750, 1500)),
    (3001, 2, (750, 1500)),
    # With more than two nodes corosync adds token_coefficient (650 ms) per extra node first.
    (300, 3, (200, 475)),
    (3000, 3, (912, 1825)),
])
def test_knet_ping_timers_follow_corosyncs_rule_with_a_floor(token, nodes, expected):
    assert default_knet_ping_timers(token, nodes) == expected


def test_derived_knet_ping_timers_always_pass_their_own_rules():
    for nodes in (2, 3, 5):
        for token in range(300, 10001):
            interval, timeout = default_knet_ping_timers(token, nodes)
            assert 150 <= interval < timeout and timeout >= max(300, min_knet_ping_timeout_ms(interval))
            runtime = token + (nodes - 2) * 650
            if runtime >= 1000 or 600 <= runtime <= 800:
                assert (interval, timeout) == (runtime // 4, runtime // 2), (token, nodes)


def test_default_timers_fail_over_faster_than_keepalived(dev_config):
    """Untuned, a dead node is declared lost after token + consensus = 2.2 s (keepalived: ~3.6 s)."""
    co = settings_from_dict(dev_config).corosync
    assert (co.token_ms, co.consensus_ms) == (1000, 1200)
    assert co == Corosync()  # the dataclass's defaults are the settings' defaults


def test_knet_ping_timers_default_from_the_token(dev_config, three_node_config):
    assert (settings_from_dict(dev_config).corosync.knet_ping_interval_ms,
            settings_from_dict(dev_config).corosync.knet_ping_timeout_ms) == (250, 500)
    cfg = copy.deepcopy(dev_config)
    cfg["corosync"] = {"tokenMs": 300, "consensusMs": 360}
    co = settings_from_dict(cfg).corosync
    assert (co.knet_ping_interval_ms, co.knet_ping_timeout_ms) == (150, 300)
    cfg = copy.deepcopy(three_node_config)
    cfg["corosync"] = {"tokenMs": 1000}
    co = settings_from_dict(cfg).corosync
    assert (co.knet_ping_interval_ms, co.knet_ping_timeout_ms) == (412, 825)


def test_knet_ping_timers_can_be_set(dev_config):
    cfg = copy.deepcopy(dev_config)
    cfg["corosync"] = {"tokenMs": 300, "knetPingIntervalMs": 200, "knetPingTimeoutMs": 400}
    co = settings_from_dict(cfg).corosync
    assert (co.knet_ping_interval_ms, co.knet_ping_timeout_ms) == (200, 400)
    # One alone is checked against the other's derived value: 500 ms suits 1000's interval 250.
    cfg["corosync"] = {"tokenMs": 1000, "knetPingTimeoutMs": 800}
    co = settings_from_dict(cfg).corosync
    assert (co.knet_ping_interval_ms, co.knet_ping_timeout_ms) == (250, 800)


@pytest.mark.parametrize("interval, shortest", [(150, 300), (200, 300), (201, 500), (750, 900), (1000, 1100)])
def test_shortest_knet_ping_timeout_leaves_a_tick_between_pings(interval, shortest):
    assert min_knet_ping_timeout_ms(interval) == shortest


def test_dns_settings_default_and_read(dev_config):
    s = settings_from_dict(dev_config)
    assert s.network.dns_hosts == () and s.haproxy.dns_resolve_interval_s == 10
    cfg = copy.deepcopy(dev_config)
    cfg["network"]["dnsHosts"] = [{"name": "kube-mast01", "address": "192.168.4.101"}]
    cfg["haproxy"] = {"dnsResolveIntervalSeconds": 3}
    s = settings_from_dict(cfg)
    assert [(h.name, str(h.address)) for h in s.network.dns_hosts] == [("kube-mast01", "192.168.4.101")]
    assert s.haproxy.dns_resolve_interval_s == 3
