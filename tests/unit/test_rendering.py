"""Rendering: every artifact is well-formed and carries the settings; templates are strict."""

import copy

import jinja2
import pytest
import yaml

from hapx import bootstrap, rendering
from hapx.render import sample_secrets as make_secrets
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
        hosts = next(f for f in doc["write_files"] if f["path"] == "/etc/hosts")["content"]
        for peer in dev.nodes:
            assert f"{peer.ip} {peer.name}.kube.local {peer.name}" in hosts
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


def test_meta_data_instance_id_follows_identity(dev_config):
    a = settings_from_dict(dev_config)
    cfg = copy.deepcopy(dev_config)
    cfg["nodes"][0]["ip"] = "192.168.4.31"
    b = settings_from_dict(cfg)
    ma, mb = (yaml.safe_load(rendering.meta_data(s, s.nodes[0])) for s in (a, b))
    assert ma["local-hostname"] == "hapx-node01"
    assert ma["instance-id"] != mb["instance-id"]
    assert ma["instance-id"] == yaml.safe_load(rendering.meta_data(a, a.nodes[0]))["instance-id"]


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


def test_haproxy_cfg_balances_masters_with_the_chosen_check(dev_config):
    s = settings_from_dict(dev_config)
    cfg = rendering.haproxy_cfg(s, "s3cret")
    assert "bind 192.168.4.20:6443" in cfg
    assert "bind 192.168.4.20:32700" in cfg
    assert "stats auth admin:s3cret" in cfg
    assert "option httpchk GET /readyz" in cfg and "check-ssl verify none" in cfg
    for m in ("kube-mast01", "kube-mast02", "kube-mast03"):
        assert f"server {m} {m}:6443" in cfg
    assert "timeout client 14400000ms" in cfg
    tcp = copy.deepcopy(dev_config)
    tcp["haproxy"] = {"healthCheck": "tcp"}
    tcp_cfg = rendering.haproxy_cfg(settings_from_dict(tcp), "s3cret")
    assert "httpchk" not in tcp_cfg and "check-ssl" not in tcp_cfg
    assert "default-server check inter" in tcp_cfg


def test_haproxy_cfg_refuses_a_password_that_would_break_it(dev):
    with pytest.raises(ValueError, match="statsPassword"):
        rendering.haproxy_cfg(dev, "two words")


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
        if step.kind == "join":
            assert stdin.strip() == secrets.corosync_authkey
        elif step.kind == "install-haproxy":
            assert f"stats auth admin:{secrets.stats_password}" in stdin
        else:
            assert stdin is None


def test_install_agent_step_carries_the_agent_verbatim(dev):
    """The VIP's agent reaches each node byte for byte as agents/ipaddr, under ocf:hapx:ipaddr."""
    agent = (rendering.AGENTS / "ipaddr").read_text()
    steps = [s for s in bootstrap.plan(dev) if s.kind == "install-agent"]
    assert sorted(s.node for s in steps) == sorted(n.name for n in dev.nodes)
    for step in steps:
        body = step.script.split("<<'HAPX_OCF_AGENT'\n", 1)[1].split("HAPX_OCF_AGENT\n", 1)[0]
        assert body == agent
        assert "dir=/usr/lib/ocf/resource.d/hapx" in step.script and '"$dir/ipaddr"' in step.script
    assert "primitive vip ocf:hapx:ipaddr" in rendering.cluster_crm(dev)


def test_plan_order_respects_every_dependency(three_node_config):
    s = settings_from_dict(three_node_config)
    steps = bootstrap.plan(s)
    seen = set()
    for step in steps:
        assert set(step.after) <= seen, f"{step.id} runs before {set(step.after) - seen}"
        seen.add(step.id)
    ids = [st.id for st in steps]
    assert ids[-1] == "configure"
    assert len(ids) == 4 * len(s.nodes) + 2  # wait-ready, join, install-agent, install-haproxy; 2 shared
