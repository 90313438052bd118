"""corosync.conf: corosync 3.1 itself (`corosync -t`) accepts it on every node, and its node
list, timers and quorum section are the stack's."""

import base64
import re

import pytest

from hapx import rendering
from hapx.bootstrap import STDIN_AUTHKEY
from tests.validate.tools.corosync import check_corosync_conf, parse_corosync_conf
from tests.validate.tools.procs import CheckFailed, write_broken
from tests.validate.tools.shell import heredoc

JOIN_HEREDOC = "HAPX_COROSYNC_CONF"


def key_and_conf(stack, work):
    """Write the stack's (test) authkey where a test corosync.conf points `keyfile:`."""
    key = work / "authkey"
    key.write_bytes(base64.b64decode(stack.secrets.corosync_authkey))
    key.chmod(0o400)
    conf = work / "corosync.conf"
    conf.write_text(rendering.corosync_conf(stack.settings, keyfile=str(key)))
    return key, conf


def test_corosync_accepts_corosync_conf_on_every_node(stack, work):
    """`corosync -t -c` passes as each node (its address local, in a throwaway namespace),
    with `keyfile:` pointing at the stack's generated authkey."""
    _key, conf = key_and_conf(stack, work)
    for node in stack.settings.nodes:
        check_corosync_conf(conf, str(node.ip))


def test_validated_conf_is_the_deployed_one(stack, work):
    """The file corosync -t checked differs from the deployed one in the keyfile line alone,
    and each join step writes exactly the deployed file (and reads the authkey on stdin)."""
    key, conf = key_and_conf(stack, work)
    deployed = (stack.root / "corosync.conf").read_text()
    assert deployed == rendering.corosync_conf(stack.settings)
    assert deployed.replace(f"keyfile: {rendering.DEFAULT_KEYFILE}\n", f"keyfile: {key}\n") == conf.read_text()
    joins = [s for s in stack.steps if s.kind == "join"]
    assert sorted(s.node for s in joins) == sorted(n.name for n in stack.settings.nodes)
    for step in joins:
        assert heredoc(step.script, JOIN_HEREDOC) == deployed
        assert step.stdin == STDIN_AUTHKEY
        assert stack.secrets.corosync_authkey not in step.script and stack.secrets.corosync_authkey not in step.command


def test_corosync_conf_matches_the_stack(stack):
    """The node list is the stack's nodes (name, id, ring0 address); knet with crypto; the
    timers are the settings'; two_node exactly when there are two nodes."""
    s = stack.settings
    conf = parse_corosync_conf((stack.root / "corosync.conf").read_text())
    nodes = [(n.value("name"), n.value("nodeid"), n.value("ring0_addr")) for n in conf.section("nodelist").all("node")]
    assert nodes == [(n.name, str(n.nodeid), str(n.ip)) for n in s.nodes]
    assert len({nodeid for _, nodeid, _ in nodes}) == len(nodes)
    totem = conf.section("totem")
    assert totem.value("cluster_name") == s.corosync.cluster_name
    assert totem.value("transport") == "knet"
    assert totem.value("crypto_cipher") not in (None, "none")
    assert totem.value("crypto_hash") not in (None, "none")
    assert totem.value("keyfile") == rendering.DEFAULT_KEYFILE
    assert int(totem.value("token")) == s.corosync.token_ms
    assert int(totem.value("consensus")) == s.corosync.consensus_ms > s.corosync.token_ms
    # knet's ping timers, set for link 0 (the only one): never below 150/300 ms, and the
    # timeout longer than the interval.
    interfaces = totem.all("interface")
    assert len(interfaces) == 1
    link = interfaces[0]
    assert link.value("linknumber") == "0"
    interval, timeout = int(link.value("knet_ping_interval")), int(link.value("knet_ping_timeout"))
    assert (interval, timeout) == (s.corosync.knet_ping_interval_ms, s.corosync.knet_ping_timeout_ms)
    assert 150 <= interval < timeout and timeout >= 300
    quorum = conf.section("quorum")
    assert quorum.value("provider") == "corosync_votequorum"
    assert quorum.value("two_node") == ("1" if len(s.nodes) == 2 else None)
    # A lone node must never count as quorate by itself (the tutorial's mistake).
    assert quorum.value("expected_votes") is None
    assert quorum.value("wait_for_all") in (None, "1")


# --- the check can fail -------------------------------------------------------------------

@pytest.mark.parametrize("breakage, words", [
    (lambda t: t.replace("totem {\n", "totem { version: 2\n", 1), "Extra characters after opening bracket"),
    (lambda t: t[:t.rindex("}")] + t[t.rindex("}") + 1:], "Missing closing brace"),
    (lambda t: t.replace("transport: knet", "transport: knot", 1), "Invalid transport type"),
    (lambda t: t.replace("crypto_cipher: aes256", "crypto_cipher: rot13", 1), "Invalid cipher type"),
    (lambda t: re.sub(r"knet_ping_interval: \d+", "knet_ping_interval: fast", t, count=1), "knet_ping_interval"),
], ids=["content-after-brace", "missing-brace", "unknown-transport", "unknown-cipher", "ping-interval-not-a-number"])
def test_corosync_check_rejects_a_broken_conf(dev_stack, work, breakage, words):
    _key, conf = key_and_conf(dev_stack, work)
    node = dev_stack.settings.nodes[0]
    check_corosync_conf(conf, str(node.ip))  # the unbroken file passes
    write_broken(conf.parent, conf.name, conf.read_text(), breakage)
    with pytest.raises(CheckFailed) as err:
        check_corosync_conf(conf, str(node.ip))
    assert words in str(err.value)


def test_corosync_check_fails_for_a_host_not_in_the_nodelist(dev_stack, work):
    """The throwaway namespace is what makes the check pass: from an address outside the node
    list corosync finds no local node."""
    _key, conf = key_and_conf(dev_stack, work)
    with pytest.raises(CheckFailed, match="No valid name found for local host"):
        check_corosync_conf(conf, "192.0.2.99")


def test_corosync_check_fails_without_the_key(dev_stack, work):
    key, conf = key_and_conf(dev_stack, work)
    key.unlink()
    with pytest.raises(CheckFailed, match="Could not open"):
        check_corosync_conf(conf, str(dev_stack.settings.nodes[0].ip))
