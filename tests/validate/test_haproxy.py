"""haproxy.cfg: HAProxy 2.6 itself (`haproxy -c -f`) accepts what the nodes get."""

import re

import pytest

from hapx import rendering
from tests.validate import harness
from tests.validate.harness import CheckFailed


def test_haproxy_accepts_haproxy_cfg(stack):
    """`haproxy -c -f haproxy.cfg` passes, with no warning but an unresolvable master name."""
    harness.check_haproxy_cfg(stack.root / "haproxy.cfg")


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
    assert servers == [(m.name, m.endpoint) for m in s.masters]
    if s.haproxy.health_check == "https":
        assert f"option httpchk GET {s.haproxy.health_check_path}\n" in text
        assert "check-ssl verify none" in text
    else:
        assert "httpchk" not in text and "check-ssl" not in text


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
    broken = breakage(text)
    assert broken != text
    path = work / "haproxy.cfg"
    path.write_text(broken)
    with pytest.raises(CheckFailed) as err:
        harness.check_haproxy_cfg(path)
    assert words in str(err.value)
