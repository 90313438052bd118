"""Rendering: every artifact is well-formed and carries the settings; templates are strict."""

import copy
import re

import jinja2
import pytest
import yaml

from hapx import bootstrap, rendering, scores
from hapx.cli.render import sample_secrets as make_secrets
from hapx.settings import settings_from_dict


@pytest.fixture
def dev(dev_config):
    return settings_from_dict(dev_config)


@pytest.fixture
def secrets(dev):
    return make_secrets(dev)[0]


def test_user_data_is_cloud_config_yaml(dev, secrets):
    for node in dev.nodes:
        text = rendering.user_data(dev, node, secrets)
        assert text.startswith("#cloud-config\n")
        doc = yaml.safe_load(text)
        assert doc["hostname"] == node.name
        assert doc["users"][0]["name"] == "debian"
        assert doc["users"][0]["ssh_authorized_keys"] == [secrets.ssh_public_key]
        assert doc["ssh_keys"]["ed25519_public"] == secrets.host_keys[node.name].public
        assert doc["ssh_keys"]["ed25519_private"] == secrets.host_keys[node.name].private
        assert doc["ssh_pwauth"] is False
        # The members are the join step's (a node added later must not rebuild the others).
        assert not [f for f in doc["write_files"] if f["path"] == "/etc/hosts"]
        for peer in dev.nodes:
            assert str(peer.ip) not in text
        # No cluster secret rides in user-data: those go over SSH stdin.
        assert secrets.corosync_authkey not in text
        assert secrets.stats_password not in text


def test_network_config_is_static_v2_matched_by_mac(dev):
    node = dev.nodes[0]
    doc = yaml.safe_load(rendering.network_config(dev, node))
    eth = doc["ethernets"]["eth0"]
    assert doc["version"] == 2
    assert eth["match"]["macaddress"] == node.mac
    assert eth["addresses"] == ["192.168.4.21/24"]
    assert eth["gateway4"] == "192.168.4.1"
    assert eth["accept-ra"] is False  # no 10 s wait for IPv6 router advertisements at boot


def _instance_id(settings, secrets, node=0):
    n = settings.nodes[node]
    return rendering.instance_id(settings, n, secrets.ssh_public_key, secrets.host_keys[n.name].public)


def test_meta_data_carries_the_instance_id(dev, secrets):
    iid = _instance_id(dev, secrets)
    doc = yaml.safe_load(rendering.meta_data(dev.nodes[0], iid))
    assert doc == {"instance-id": iid, "local-hostname": "hapx-node01"}
    assert iid.startswith("hapx-node01-")


@pytest.mark.parametrize("change", [
    lambda c: c["nodes"][0].__setitem__("ip", "192.168.4.31"),
    lambda c: c["nodes"][0].__setitem__("mac", "52:54:00:aa:bb:cc"),
    lambda c: c.__setitem__("sshUser", "ops"),
    lambda c: c.__setitem__("interface", "ens3"),
    lambda c: c["network"].__setitem__("domain", "other.local"),
    lambda c: c["network"].__setitem__("dnsServers", ["192.168.4.53"]),
])
def test_instance_id_follows_everything_cloud_init_applies(dev_config, secrets, change):
    a = settings_from_dict(dev_config)
    cfg = copy.deepcopy(dev_config)
    change(cfg)
    b = settings_from_dict(cfg)
    assert _instance_id(a, secrets) != _instance_id(b, secrets)
    assert _instance_id(a, secrets) == _instance_id(settings_from_dict(copy.deepcopy(dev_config)), secrets)


@pytest.mark.parametrize("change", [
    lambda c: c["masters"].append({"name": "kube-mast04", "address": "kube-mast04", "port": 6443}),
    lambda c: c.__setitem__("corosync", {"tokenMs": 2000}),
    lambda c: c.__setitem__("haproxy", {"timeoutConnectMs": 4000}),
    lambda c: c.__setitem__("vm", {"memoryMiB": 2048}),
    lambda c: c["nodes"].append({"name": "hapx-node03", "ip": "192.168.4.23"}),
])
def test_instance_id_ignores_what_the_steps_apply(dev_config, secrets, change):
    a = settings_from_dict(dev_config)
    cfg = copy.deepcopy(dev_config)
    change(cfg)
    assert _instance_id(a, secrets) == _instance_id(settings_from_dict(cfg), secrets)


def test_instance_id_follows_the_keys_but_never_holds_a_secret(dev, secrets):
    other = make_secrets(dev)[0]
    n = dev.nodes[0]
    assert _instance_id(dev, secrets) != _instance_id(dev, other)
    # Only the public halves go in: the id is the same whatever the private host key says.
    assert _instance_id(dev, secrets) == rendering.instance_id(
        dev, n, secrets.ssh_public_key, secrets.host_keys[n.name].public)


def test_corosync_conf_two_node_quorum_and_crypto(dev, three_node_config):
    conf = rendering.corosync_conf(dev)
    assert "transport: knet" in conf
    assert "crypto_cipher: aes256" in conf and "crypto_hash: sha256" in conf
    assert "two_node: 1" in conf
    assert "expected_votes" not in conf
    assert "ring0_addr: 192.168.4.22" in conf
    three = rendering.corosync_conf(settings_from_dict(three_node_config))
    assert "two_node" not in three
    assert three.count("node {") == 3


def _totem_interface(conf: str) -> list[str]:
    """The lines of totem's interface block (indented, between `interface {` and its `}`)."""
    totem = conf[conf.index("totem {"):conf.index("\n}\n", conf.index("totem {"))]
    block = totem[totem.index("    interface {\n") + len("    interface {\n"):]
    return [line.strip() for line in block[:block.index("    }")].splitlines() if line.strip()]


@pytest.mark.parametrize("corosync, expected", [
    ({}, ["linknumber: 0", "knet_ping_interval: 250", "knet_ping_timeout: 500"]),
    ({"tokenMs": 3000}, ["linknumber: 0", "knet_ping_interval: 750", "knet_ping_timeout: 1500"]),
    ({"tokenMs": 300, "consensusMs": 360}, ["linknumber: 0", "knet_ping_interval: 150", "knet_ping_timeout: 300"]),
    ({"tokenMs": 300, "knetPingIntervalMs": 200, "knetPingTimeoutMs": 450},
     ["linknumber: 0", "knet_ping_interval: 200", "knet_ping_timeout: 450"]),
])
def test_corosync_conf_carries_the_knet_ping_timers_in_totem(dev_config, corosync, expected):
    cfg = copy.deepcopy(dev_config)
    cfg["corosync"] = corosync
    conf = rendering.corosync_conf(settings_from_dict(cfg))
    assert _totem_interface(conf) == expected
    assert conf.count("knet_ping_interval:") == conf.count("knet_ping_timeout:") == 1


def test_haproxy_cfg_balances_masters_with_the_chosen_check(dev_config):
    s = settings_from_dict(dev_config)
    cfg = rendering.haproxy_cfg(s, "s3cret")
    assert "bind 192.168.4.20:6443" in cfg
    assert "bind 192.168.4.20:32700" in cfg
    assert "stats auth admin:s3cret" in cfg
    assert "option httpchk GET /readyz" in cfg and "check-ssl verify none" in cfg
    for m in ("kube-mast01", "kube-mast02", "kube-mast03"):
        # A bare name is qualified with network.domain: HAProxy's resolvers apply no search list.
        assert f"server {m} {m}.kube.local:6443 resolvers system resolve-prefer ipv4\n" in cfg
    assert "timeout client 14400000ms" in cfg
    tcp = copy.deepcopy(dev_config)
    tcp["haproxy"] = {"healthCheck": "tcp"}
    tcp_cfg = rendering.haproxy_cfg(settings_from_dict(tcp), "s3cret")
    assert "httpchk" not in tcp_cfg and "check-ssl" not in tcp_cfg
    assert "default-server check inter" in tcp_cfg


def test_haproxy_cfg_refuses_a_password_that_would_break_it(dev):
    with pytest.raises(ValueError, match="statsPassword"):
        rendering.haproxy_cfg(dev, "two words")


def test_crm_ids_come_from_one_place(dev):
    """Every id in cluster.crm is one of rendering.CRM's; the step scripts use the same ids."""
    crm = rendering.cluster_crm(dev)
    ids = rendering.CRM
    declared = set(re.findall(r"^(?:primitive|clone|colocation|order|location|property|rsc_defaults) ([\w-]+):?",
                              crm, re.M))
    assert declared == {ids.vip, ids.haproxy, ids.haproxy_clone, ids.colocation, ids.order,
                        ids.cluster_options, ids.rsc_options, ids.backend_health, ids.backend_health_clone,
                        ids.vip_backends, ids.vip_haproxy_failed}
    assert f"rule {ids.masters_up_attribute}: defined {ids.masters_up_attribute}" in crm
    scripts = {s.kind: s.script for s in bootstrap.plan(dev)}
    assert f"--resource {ids.vip} " in scripts["configure"]
    assert f"runs_here {ids.haproxy_clone}" in scripts["join"]
    assert " ".join(rendering.owned_crm_ids(dev)) in scripts["configure"]


def test_crm_config_uses_id_form_and_a_deliberate_colocation(dev):
    crm = rendering.cluster_crm(dev)
    assert "property cib-bootstrap-options:" in crm
    assert "rsc_defaults rsc-options:" in crm and "resource-stickiness=100" in crm
    assert "default-resource-stickiness" not in crm
    assert "primitive vip ocf:hapx:ipaddr" in crm and "ip=192.168.4.20" in crm
    assert "primitive haproxy systemd:haproxy" in crm
    assert "clone haproxy-clone haproxy" in crm
    assert "colocation vip-with-haproxy inf: vip haproxy-clone" in crm
    assert "order haproxy-before-vip Mandatory: haproxy-clone vip" in crm


@pytest.mark.parametrize("pacemaker, rule", [
    ({"vipPlacement": "off-dc"}, "rule 200: #is_dc eq false"),
    ({"vipPlacement": "off-dc", "stickiness": 62406}, "rule 62506: #is_dc eq false"),  # the highest allowed
])
def test_off_dc_placement_scores_its_rule_above_stickiness(dev_config, pacemaker, rule):
    settings = settings_from_dict(dict(dev_config, pacemaker=pacemaker))
    crm = rendering.cluster_crm(settings)
    assert f"location vip-off-the-dc vip \\\n    {rule}\n" in crm
    assert rendering.CRM.vip_location in rendering.owned_crm_ids(settings)


def test_sticky_placement_is_the_default_and_renders_no_dc_rule(dev_config):
    """No fail-back by default: no rule on #is_dc, so stickiness alone decides, and the
    configure step retires an off-DC rule an earlier configuration had."""
    settings = settings_from_dict(dev_config)
    assert settings.pacemaker.vip_placement == "sticky"
    crm = rendering.cluster_crm(settings)
    assert "#is_dc" not in crm and rendering.CRM.vip_location not in crm
    assert rendering.CRM.vip_location not in rendering.owned_crm_ids(settings)
    configure = next(s.script for s in bootstrap.plan(settings) if s.kind == "configure")
    assert f"'{' '.join(rendering.CRM.owned)}' '{' '.join(rendering.owned_crm_ids(settings))}')" in configure


def test_templates_fail_loudly_on_a_missing_variable(dev):
    with pytest.raises(jinja2.UndefinedError):
        rendering.render_template("corosync.conf.j2", settings=dev)  # keyfile missing
    with pytest.raises(jinja2.UndefinedError):
        rendering.render_template("cloud-init/meta-data.yaml.j2", node=dev.nodes[0])


def test_no_command_line_carries_a_secret(dev, secrets):
    for step in bootstrap.plan(dev):
        assert secrets.corosync_authkey not in step.command
        assert secrets.stats_password not in step.command
        stdin = bootstrap.stdin_for(step, dev, secrets)
        if step.kind in ("join", "rekey"):
            assert stdin.strip() == secrets.corosync_authkey
        elif step.kind == "install-haproxy":
            assert f"stats auth admin:{secrets.stats_password}" in stdin
        else:
            assert stdin is None


def test_install_agent_step_carries_the_agents_verbatim(dev):
    """hapx's agents reach each node byte for byte as agents/ipaddr and agents/haproxy-health,
    under ocf:hapx:ipaddr and ocf:hapx:haproxy-health."""
    names = ("ipaddr", "haproxy-health")
    steps = [s for s in bootstrap.plan(dev) if s.kind == "install-agent"]
    assert sorted(s.node for s in steps) == sorted(n.name for n in dev.nodes)
    for step in steps:
        bodies = [part.split("HAPX_OCF_AGENT\n", 1)[0] for part in step.script.split("<<'HAPX_OCF_AGENT'\n")[1:]]
        assert bodies == [(rendering.AGENTS / name).read_text() for name in names]
        assert "dir=/usr/lib/ocf/resource.d/hapx" in step.script
        assert all(f'"$dir/{name}"' in step.script for name in names)
    crm = rendering.cluster_crm(dev)
    assert "primitive vip ocf:hapx:ipaddr" in crm and "primitive backend-health ocf:hapx:haproxy-health" in crm


@pytest.mark.parametrize("pacemaker, multiplier", [
    ({}, 200),  # stickiness 100 + 100
    ({"vipPlacement": "off-dc"}, 400),  # stickiness 100 + the off-DC bonus 200 + 100
    ({"stickiness": 124912}, 125012),  # the highest stickiness the dev stack allows (test_settings)
])
def test_backend_health_multiplier_beats_stickiness_and_the_off_dc_bonus(dev_config, pacemaker, multiplier):
    """One master's difference outweighs stickiness plus the off-DC bonus; attrd's dampening
    covers a check interval and a monitor interval between two nodes' readings."""
    dev_config["pacemaker"] = pacemaker
    s = settings_from_dict(dev_config)
    health = scores.backend_health(s)
    assert health.multiplier == multiplier
    assert health.dampen_s == health.monitor_s + 2 + 2  # checkIntervalMs 2000
    assert health.failcount_attribute == "fail-count-haproxy#monitor_5000"
    assert f"multiplier={multiplier} hold_s=10 dampen_s={health.dampen_s}" in rendering.cluster_crm(s)


def test_a_working_haproxy_outweighs_every_master(dev_config):
    """The bonus of a node whose HAProxy has not failed is above the highest health score, so
    the VIP leaves a failed HAProxy even for a node whose count is not published yet."""
    s = settings_from_dict(dev_config)
    health = scores.backend_health(s)
    assert health.working_bonus > health.multiplier * len(s.masters) + s.pacemaker.stickiness
    assert (f"location vip-on-unfailed-haproxy vip \\\n    rule {health.working_bonus}: "
            f"not_defined {health.failcount_attribute}\n") in rendering.cluster_crm(s)


def test_plan_order_respects_every_dependency(three_node_config):
    s = settings_from_dict(three_node_config)
    steps = bootstrap.plan(s)
    seen = set()
    for step in steps:
        assert set(step.after) <= seen, f"{step.id} runs before {set(step.after) - seen}"
        seen.add(step.id)
    ids = [st.id for st in steps]
    assert ids[-3:] == ["wait-members", "rekey", "configure"]
    assert len(ids) == 4 * len(s.nodes) + 3  # wait-ready, join, install-agent, install-haproxy; 3 shared
    names = [n.name for n in s.nodes]
    for i, n in enumerate(names):
        join = next(st for st in steps if st.id == f"join-{n}")
        # A node has its files before it joins; the nodes join one after another.
        assert {f"install-agent-{n}", f"install-haproxy-{n}"} <= set(join.after)
        assert (f"join-{names[i - 1]}" in join.after) == (i > 0)
        assert bootstrap.build_after(s, s.nodes[i]) == ((f"join-{names[i - 1]}",) if i else ())


def test_join_step_keeps_the_members_in_etc_hosts(dev):
    join = next(st for st in bootstrap.plan(dev) if st.kind == "join")
    block = join.script.split("<<'HAPX_MEMBERS'\n", 1)[1].split("HAPX_MEMBERS\n", 1)[0]
    assert block == rendering.etc_hosts_block(dev)
    for n in dev.nodes:
        assert f"{n.ip} {n.name}.kube.local {n.name}\n" in block


def test_haproxy_resolvers_only_for_masters_by_name_with_the_hold_setting(dev_config):
    cfg = copy.deepcopy(dev_config)
    cfg["haproxy"] = {"dnsResolveIntervalSeconds": 4}
    cfg["masters"] = [{"name": "m1", "address": "api.example.org"}, {"name": "m2", "address": "192.168.9.2"}]
    text = rendering.haproxy_cfg(settings_from_dict(cfg), "s3cret")
    assert "resolvers system\n    parse-resolv-conf\n" in text and "    timeout resolve 4s\n" in text and "    hold valid 4s\n" in text
    # A name with a dot is taken as it is; an address needs no resolver.
    assert "server m1 api.example.org:6443 resolvers system resolve-prefer ipv4\n" in text
    assert "server m2 192.168.9.2:6443\n" in text
    cfg["masters"] = [{"name": "m2", "address": "192.168.9.2"}]
    assert "resolvers" not in rendering.haproxy_cfg(settings_from_dict(cfg), "s3cret")
