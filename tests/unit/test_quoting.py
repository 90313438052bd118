"""Values written into the rendered files keep their type and cannot change a file's structure:
the quoting filters (hapx.rendering) and the issue's YAML cases, read back as cloud-init reads
them (PyYAML's safe_load, YAML 1.1)."""

import copy
import shlex

import pytest
import yaml

from hapx import rendering
from hapx.cli.render import sample_secrets
from hapx.settings import settings_from_dict

# Strings a YAML 1.1 or 1.2 reader would take for something else, or that break a plain scalar.
NASTY = [
    "on", "off", "yes", "no", "y", "n", "true", "False", "null", "Null", "~", "", "1", "-1", "0x1f", "0o17",
    "017", "1e3", "1_000", "1.5", ".inf", "-.inf", ".nan", "1:20", "190:20:30", "2001-12-14", "<<", "=",
    " lead", "trail ", "a: b", "a #b", "#x", '"', "'", "{a}", "[a]", "&a", "*a", "!a", "!!str", "%x", "@x",
    "`x", "|", ">", "- x", "? x", "a\nb", "a\tb", "a\rb", "nul\0", "\x7f", "\x85", "\u2028", "\u2029",
    "\ufeff", "\\", "\\n", "é", "日本", "\U0001f600", "x" * 5000,
]


@pytest.mark.parametrize("value", NASTY, ids=range(len(NASTY)))
def test_yaml_filter_reads_back_as_the_exact_string(value):
    doc = yaml.safe_load(f"key: {rendering.yaml_quote(value)}\nlist: [{rendering.yaml_quote(value)}]\n")
    assert doc == {"key": value, "list": [value]}
    if len(value) < 1000:
        assert yaml.safe_load(f"{rendering.yaml_quote(value, key=True)}: mapped\n") == {value: "mapped"}
    else:
        with pytest.raises(ValueError, match="too long for a YAML mapping key"):
            rendering.yaml_quote(value, key=True)


@pytest.mark.parametrize("value", [v for v in NASTY if "\0" not in v], ids=lambda v: repr(v)[:20])
def test_shell_filter_is_one_word(value):
    assert shlex.split(f"cmd {rendering.shell_quote(value)} end") == ["cmd", value, "end"]


def test_shell_filter_leaves_a_plain_word_bare_and_refuses_nul():
    assert rendering.shell_quote("hapx-node01") == "hapx-node01"
    with pytest.raises(ValueError, match="NUL"):
        rendering.shell_quote("a\0b")


@pytest.mark.parametrize("value, quoted", [
    ("admin:s3cret", "admin:s3cret"),
    ("admin:a b#c", "'admin:a b#c'"),
    ("admin:it's", "'admin:it'\"'\"'s'"),
    ("admin:$HOME\\", "'admin:$HOME\\'"),
])
def test_haproxy_filter_quotes_what_haproxy_would_split_or_expand(value, quoted):
    assert rendering.haproxy_quote(value) == quoted


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "a\0b"], ids=["newline", "cr", "nul"])
def test_haproxy_filter_refuses_what_no_quoting_can_hold(value):
    with pytest.raises(ValueError, match="haproxy.cfg"):
        rendering.haproxy_quote(value)


@pytest.mark.parametrize("value", ["a{", "a}", "a\nb", " a", "a ", "", "a\0"],
                         ids=["open", "close", "newline", "lead", "trail", "empty", "nul"])
def test_corosync_filter_refuses_what_corosync_would_read_otherwise(value):
    with pytest.raises(ValueError, match="corosync.conf"):
        rendering.corosync_value(value)


def test_corosync_filter_passes_a_plain_value():
    assert rendering.corosync_value("hapx-node01") == "hapx-node01"


def _render(cfg: dict) -> dict:
    """Every cloud-init file of every node, parsed as cloud-init parses it."""
    settings = settings_from_dict(cfg)
    secrets, _ = sample_secrets(settings)
    docs = {}
    for node in settings.nodes:
        iid = rendering.instance_id(settings, node, secrets.ssh_public_key, secrets.host_keys[node.name].public)
        docs[node.name] = {
            "user-data": yaml.safe_load(rendering.user_data(settings, node, secrets)),
            "network-config": yaml.safe_load(rendering.network_config(settings, node)),
            "meta-data": yaml.safe_load(rendering.meta_data(node, iid)),
            "iid": iid,
        }
    return docs


# (All-digit names such as "1" or "017" are refused by the settings: see test_settings.)
@pytest.mark.parametrize("names", [["null", "yes"], ["0x1f", "on"], ["1e3", "true"], ["off", "no"]],
                         ids=lambda n: "-".join(n))
def test_node_names_yaml_would_retype_stay_strings(dev_config, names):
    cfg = copy.deepcopy(dev_config)
    for node, name in zip(cfg["nodes"], names, strict=False):
        node["name"] = name
    cfg["network"]["domain"] = "5"  # a number if unquoted
    for name, doc in _render(cfg).items():
        assert doc["user-data"]["hostname"] == name
        assert doc["user-data"]["fqdn"] == f"{name}.5"
        assert doc["meta-data"] == {"instance-id": doc["iid"], "local-hostname": name}


@pytest.mark.parametrize("user", ["null", "on", "yes", "no", "true", "off"])
def test_ssh_user_yaml_would_retype_stays_a_string(dev_config, user):
    cfg = dict(dev_config, sshUser=user)
    for doc in _render(cfg).values():
        (entry,) = doc["user-data"]["users"]
        assert entry["name"] == user


@pytest.mark.parametrize("interface", ["on", "off", "yes", "no", "null", "true", "n"])
def test_interface_yaml_would_retype_stays_the_ethernet_name(dev_config, interface):
    cfg = dict(dev_config, interface=interface)
    for doc in _render(cfg).values():
        ethernets = doc["network-config"]["ethernets"]
        assert list(ethernets) == [interface]
        assert ethernets[interface]["set-name"] == interface


@pytest.mark.parametrize("domain", ["on", "off", "yes", "null", "1", "1.5", "0x1f", "1e3"])
def test_domain_yaml_would_retype_stays_a_string(dev_config, domain):
    cfg = copy.deepcopy(dev_config)
    cfg["network"]["domain"] = domain
    for name, doc in _render(cfg).items():
        (eth,) = doc["network-config"]["ethernets"].values()
        assert eth["nameservers"]["search"] == [domain]
        assert doc["user-data"]["fqdn"] == f"{name}.{domain}"
