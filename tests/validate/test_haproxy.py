"""haproxy.cfg: HAProxy 2.6 itself (`haproxy -c -f`) accepts what the nodes get, and really
starts with it on a node that does not hold the VIP (Pacemaker runs it warm on every node)."""

import re

import pytest

from hapx import rendering
from tests.validate.tools.haproxy import check_haproxy_cfg, check_haproxy_starts, sysctl_settings
from tests.validate.tools.procs import CheckFailed, write_broken


def test_haproxy_accepts_haproxy_cfg(stack):
    """`haproxy -c -f haproxy.cfg` passes, with no warning but an unresolvable master name."""
    check_haproxy_cfg(stack.root / "haproxy.cfg")


def test_install_haproxy_steps_deliver_the_validated_file(stack):
    """What each install-haproxy step reads on stdin is exactly the file validated above."""
    validated = (stack.root / "haproxy.cfg").read_text()
    assert validated == rendering.haproxy_cfg(stack.settings, stack.secrets.stats_password)
    steps = [s for s in stack.plan["steps"] if s["kind"] == "install-haproxy"]
    assert sorted(s["node"] for s in steps) == sorted(n.name for n in stack.settings.nodes)
    for step in steps:
        assert (stack.root / step["stdin"]).read_text() == validated


def test_haproxy_cfg_carries_the_settings(stack):
    """The frontends bind the VIP, every master is a server, the check matches the setting."""
    s = stack.settings
    text = (stack.root / "haproxy.cfg").read_text()
    assert f"bind {s.vip}:{s.haproxy.frontend_port}\n" in text
    assert f"bind {s.vip}:{s.haproxy.stats_port}\n" in text
    servers = re.findall(r"^\s+server (\S+) (\S+)", text, re.MULTILINE)
    backends = rendering.backend_servers(s)
    assert [name for name, _ in servers] == [m.name for m in s.masters]
    assert servers == [(b.name, f"{b.host}:{b.port}") for b in backends]
    # A master by name is re-resolved through the node's resolv.conf every dnsResolveIntervalSeconds.
    by_name = [b.name for b in backends if b.by_name]
    assert re.findall(r"^\s+server (\S+) .* resolvers system", text, re.MULTILINE) == by_name
    assert (f"    timeout resolve {s.haproxy.dns_resolve_interval_s}s\n" in text) == bool(by_name)
    if s.haproxy.health_check == "https":
        assert f"option httpchk GET {s.haproxy.health_check_path}\n" in text
        assert "check-ssl verify none" in text
    else:
        assert "httpchk" not in text and "check-ssl" not in text


def test_metrics_on_each_nodes_own_address_behind_the_stats_credentials(stack):
    """The exporter's frontend binds every node's own address at the port of the metricsUrls
    output (never the VIP) and asks for the stats page's user and password first."""
    s = stack.settings
    text = (stack.root / "haproxy.cfg").read_text()
    section = text.split(f"\nfrontend {rendering.METRICS.frontend}\n", 1)[1].split("\n\n", 1)[0]
    binds = re.findall(r"^\s+bind (\S+)$", section, re.MULTILINE)
    urls = rendering.metrics_urls(s)
    assert sorted(binds) == sorted(u.split("/")[2] for u in urls.values())
    assert sorted(urls) == sorted(n.name for n in s.nodes) and str(s.vip) not in section
    auth = section.index(f"http-request auth realm hapx unless {{ http_auth({rendering.METRICS.userlist}) }}")
    assert auth < section.index(f"http-request use-service prometheus-exporter if {{ path {rendering.METRICS.path} }}")
    users = text.split(f"\nuserlist {rendering.METRICS.userlist}\n", 1)[1].split("\n\n", 1)[0]
    assert users.split() == ["user", s.haproxy.stats_user, "insecure-password", stack.secrets.stats_password]


def test_haproxy_starts_on_a_node_without_the_vip(stack):
    """Pacemaker starts HAProxy on every node, and all but one lack the VIP: with the kernel
    settings the node's user-data installs (net.ipv4.ip_nonlocal_bind), HAProxy binds the VIP
    anyway and starts, as each node (its own address only) in a throwaway network namespace."""
    for node in stack.settings.nodes:
        sysctls = sysctl_settings(stack.node_dir(node) / "user-data")
        assert sysctls.get("net.ipv4.ip_nonlocal_bind") == "1", sysctls
        check_haproxy_starts(stack.root / "haproxy.cfg", str(node.ip), sysctls)


# --- the check can fail -------------------------------------------------------------------

@pytest.mark.parametrize("breakage, words", [
    (lambda t: t.replace("    balance roundrobin\n", "    balance roundrobin\n    frobnicate on\n"),
     "unknown keyword 'frobnicate'"),
    (lambda t: t.replace("default_backend kubernetes-masters", "default_backend no-such-backend"),
     "unable to find required default_backend"),
    # haproxy 2.6 only warns about this one (an error "in next versions"): the check fails on it.
    (lambda t: t.replace("    mode tcp\n", "    mode tcp\n    timeout client 4h30\n", 1),
     "after the timer value '4h30'"),
], ids=["unknown-keyword", "missing-backend", "warning-bad-timer"])
def test_haproxy_check_rejects_a_broken_cfg(dev_stack, work, breakage, words):
    text = (dev_stack.root / "haproxy.cfg").read_text()
    path = write_broken(work, "haproxy.cfg", text, breakage)
    with pytest.raises(CheckFailed) as err:
        check_haproxy_cfg(path)
    assert words in str(err.value)


def test_start_check_catches_a_node_that_cannot_bind_the_vip(dev_stack):
    """Without net.ipv4.ip_nonlocal_bind a node without the VIP cannot start HAProxy: the check
    sees it (and the same file starts with the setting)."""
    node = dev_stack.settings.nodes[-1]
    cfg = dev_stack.root / "haproxy.cfg"
    check_haproxy_starts(cfg, str(node.ip), {"net.ipv4.ip_nonlocal_bind": "1"})
    with pytest.raises(CheckFailed, match=r"cannot bind socket \(Cannot assign requested address\)"):
        check_haproxy_starts(cfg, str(node.ip), {})
