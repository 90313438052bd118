"""Stack files are read as Pulumi reads them (YAML 1.2), and a broken one is a message, not a traceback."""

import subprocess
import sys

import pytest

from hapx import spec, stackfile
from hapx.model import GivenSecret
from tests.conftest import PROJECT


def parse(text: str) -> stackfile.StackFile:
    return stackfile.parse(text.encode(), "Pulumi.t.yaml")


def test_scalars_follow_yaml_1_2():
    got = parse("config:\n"
                "  hapx:interface: on\n"
                "  hapx:sshUser: no\n"
                "  hapx:nodes:\n"
                "    - {name: n1, ip: 10.0.0.11, mac: 52:54:00:12:34:56, nodeid: 017}\n"
                "  hapx:network: {domain: 2001-12-14, dnsServers: [0x1f]}\n").hapx
    assert got["interface"] == "on" and got["sshUser"] == "no"
    assert got["nodes"][0]["mac"] == "52:54:00:12:34:56"  # YAML 1.1: a base-60 integer
    assert got["nodes"][0]["nodeid"] == 17  # YAML 1.1: octal 15
    assert got["network"] == {"domain": "2001-12-14", "dnsServers": [31]}


def test_namespaces_and_encrypted_secrets():
    got = parse("config:\n"
                "  hapx:statsPassword: {secure: AAAB}\n"
                "  hpax:vip: 10.0.0.1\n"
                "  libvirt:uri: qemu:///system\n"
                "  vip: 10.0.0.2\n")
    assert got.hapx == {"statsPassword": GivenSecret(None, encrypted=True), "vip": "10.0.0.2"}
    assert got.other_keys == ["hpax:vip", "libvirt:uri"]


@pytest.mark.parametrize("text, message", [
    (b"- a\n- b\n", "Pulumi.t.yaml: must be a YAML object (config: ...), got a list"),
    (b"config: [1, 2]\n", "Pulumi.t.yaml: config: must be an object of `namespace:key: value`, got a list"),
    (b"config:\n  hapx:vip: [\n", "Pulumi.t.yaml: not valid YAML: expected the node content, but found '<stream end>'"
                                  " (line 3, column 1)"),
    (b"config:\n  5: x\n", "Pulumi.t.yaml: config: key 5 is not a string (write `hapx:key`)"),
    (b"config:\n  hapx:vip: \xff\xfe\n", "Pulumi.t.yaml: not UTF-8 text (at byte offset 20)"),
    (b"config:\n  hapx:vip: !!python/object/apply:os.system [true]\n",
     "Pulumi.t.yaml: not valid YAML: could not determine a constructor for the tag "
     "'tag:yaml.org,2002:python/object/apply:os.system' (line 2, column 13)"),
    (b"config:\n  hapx:vip: {secure: AAAB}\n",
     "Pulumi.t.yaml: hapx:vip: is encrypted, so it cannot be checked here; only "
     "statsPassword, corosyncAuthkey, sshPrivateKey are secrets"),
])
def test_a_broken_stack_file_is_one_clear_message(text, message):
    with pytest.raises(stackfile.StackFileError) as err:
        stackfile.parse(text, "Pulumi.t.yaml")
    assert str(err.value) == message


@pytest.mark.parametrize("text, message", [
    ("- a\n", "hapx.render: Pulumi.t.yaml: must be a YAML object (config: ...), got a list\n"),
    ("config:\n  hapx:vip: 10.0.0.1\n",
     "hapx.render: Pulumi.t.yaml: invalid hapx stack configuration (3 problem(s)):\n"
     "  - hapx:network.cidr: is required\n  - hapx:nodes: is required\n  - hapx:masters: is required\n"),
])
def test_check_prints_the_message_and_exits_non_zero(tmp_path, text, message):
    stack = tmp_path / "Pulumi.t.yaml"
    stack.write_text(text)
    done = subprocess.run([sys.executable, "-m", "hapx.cli.render", "--stack", "t", "--config", str(stack), "--check"],
                          cwd=PROJECT, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (2, "", message)


def test_the_readme_settings_table_is_the_spec():
    readme = (PROJECT / "README.md").read_text()
    start = readme.index("| key | default | meaning |")
    assert readme[start:readme.index("\n\n", start) + 1] == spec.markdown_table(), \
        "README's settings table differs from hapx/spec.py: paste `python -m hapx.spec` into it"
