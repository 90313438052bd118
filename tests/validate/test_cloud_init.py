"""cloud-init seed files: cloud-init 22.4 (the VMs' version) accepts each node's user-data,
reads its network-config into the intended network, and the meta-data names the node."""

import functools

import pytest
import yaml

from hapx import rendering
from tests.validate import harness
from tests.validate.harness import CheckFailed, NetworkExpectation


@functools.lru_cache(maxsize=1)
def known_keys() -> frozenset:
    return frozenset(harness.cloud_config_keys())


def expectation(settings, node) -> NetworkExpectation:
    return NetworkExpectation(
        interface=settings.interface,
        mac=node.mac,
        address=f"{node.ip}/{settings.prefix_len}",
        gateway=str(settings.network.gateway),
        dns=tuple(str(d) for d in settings.network.dns_servers),
        search=(settings.network.domain,),
    )


def test_cloud_init_schema_accepts_user_data(stack):
    """`cloud-init schema --config-file user-data` passes for every node."""
    def check(node):
        try:
            harness.check_user_data(stack.node_dir(node) / "user-data")
        except CheckFailed as err:
            return str(err)
        return None

    failures = [f for f in harness.parallel(check, stack.settings.nodes) if f]
    assert not failures, "\n\n".join(failures)


def test_user_data_uses_only_keys_cloud_init_knows(stack):
    """No misspelt top-level key (cloud-init 22.4's schema check lets unknown keys through)."""
    for node in stack.settings.nodes:
        harness.check_user_data_keys(stack.node_dir(node) / "user-data", set(known_keys()))


def test_user_data_install_script_passes_shellcheck(stack, work):
    """The /usr/local/sbin/hapx-install-packages script user-data writes is sound POSIX sh."""
    for node in stack.settings.nodes:
        doc = yaml.safe_load((stack.node_dir(node) / "user-data").read_text())
        (script,) = [f["content"] for f in doc["write_files"] if f["path"] == "/usr/local/sbin/hapx-install-packages"]
        assert script.startswith("#!/bin/sh\n")
        path = work / f"hapx-install-packages-{node.name}"
        path.write_text(script)
        # SC2086: `$pkgs` is unquoted on purpose: it is split into the list of package names
        # (fixed names from hapx.rendering.PACKAGES, no glob characters).
        harness.check_shell(path, shell="sh", exclude=["SC2086"])


def test_meta_data_names_the_node(stack):
    """meta-data: the node's host name and an instance-id unique to the node."""
    ids = set()
    for node in stack.settings.nodes:
        doc = yaml.safe_load((stack.node_dir(node) / "meta-data").read_text())
        iid = rendering.instance_id(stack.settings, node, stack.secrets.ssh_public_key,
                                    stack.secrets.host_keys[node.name].public)
        assert doc == {"instance-id": iid, "local-hostname": node.name}
        ids.add(doc["instance-id"])
    assert len(ids) == len(stack.settings.nodes)


def test_network_config_is_read_by_cloud_init(stack, work):
    """network-config is version 2 with only keys cloud-init reads, and cloud-init's own
    converter (`cloud-init devel net-convert`) turns it into ifupdown, netplan and networkd
    files that carry the node's address, MAC, default gateway and DNS servers."""
    for node in stack.settings.nodes:
        harness.check_network_config(stack.node_dir(node) / "network-config", work / node.name,
                                     expectation(stack.settings, node))


def test_default_route_works_without_net_tools(stack, work):
    """On a Debian 12 image with ifupdown (the lab's image has it, and cloud-init 22.4 picks
    its `eni` renderer first), the default gateway must not depend on net-tools' route(8):
    the `routes: [{to: 0.0.0.0/0, via: GW}]` form renders as `post-up route add default gw
    GW || true`, which fails silently (no default route) when net-tools is not installed;
    `gateway4: GW` renders as ifupdown's own `gateway GW`."""
    for node in stack.settings.nodes:
        files = harness.net_convert(stack.node_dir(node) / "network-config", work / f"eni-{node.name}", "eni")
        eni = "\n".join(text for name, text in files.items() if "interfaces" in name)
        route_lines = [line.strip() for line in eni.splitlines() if "route add" in line or "route del" in line]
        assert not route_lines, (
            f"{node.name}: the ENI rendering needs net-tools for its default route:\n  " + "\n  ".join(route_lines))
        assert f"gateway {stack.settings.network.gateway}" in eni


# --- the checks can fail ------------------------------------------------------------------

# A small cloud-config in the shape of the rendered user-data that cloud-init 22.4 accepts:
# the base the breakages start from (independent of any bug in the rendered file).
GOOD_USER_DATA = """\
#cloud-config
hostname: hapx-node01
fqdn: hapx-node01.kube.local
manage_etc_hosts: localhost
users:
  - name: debian
    sudo: "ALL=(ALL) NOPASSWD:ALL"
    shell: /bin/bash
    lock_passwd: true
ssh_pwauth: false
write_files:
  - path: /etc/sysctl.d/60-hapx.conf
    permissions: "0644"
    content: |
      net.ipv4.ip_nonlocal_bind = 1
runcmd:
  - [sysctl, --system, --quiet]
"""


def test_cloud_init_schema_accepts_the_negative_tests_base(work):
    path = work / "user-data"
    path.write_text(GOOD_USER_DATA)
    harness.check_user_data(path)
    harness.check_user_data_keys(path, set(known_keys()))


@pytest.mark.parametrize("breakage, words", [
    (lambda t: t.replace("runcmd:\n", "runcmd: 5\nbootcmd:\n", 1), "runcmd: 5 is not of type 'array'"),
    (lambda t: t.replace("#cloud-config\n", "", 1), 'needs to begin with "#cloud-config"'),
    (lambda t: t.replace("ssh_pwauth: false\n", "ssh_pwauth: [\n", 1), "is not valid yaml"),
    (lambda t: t.replace("    lock_passwd: true\n", "    lock_passwd: maybe\n", 1), "'lock_passwd': 'maybe'} is not valid"),
    (lambda t: t.replace("ssh_pwauth: false\n", "ssh_pwauth: false\nssh_genkeytypes: []\n", 1),
     "ssh_genkeytypes: [] is too short"),
], ids=["wrong-type", "no-header", "bad-yaml", "bad-user", "empty-genkeytypes"])
def test_cloud_init_schema_rejects_broken_user_data(work, breakage, words):
    path = harness.write_broken(work, "user-data", GOOD_USER_DATA, breakage)
    with pytest.raises(CheckFailed) as err:
        harness.check_user_data(path)
    assert words in str(err.value)


def test_unknown_user_data_key_is_rejected(work):
    path = work / "user-data"
    path.write_text(GOOD_USER_DATA.replace("manage_etc_hosts:", "manage_etc_host:"))
    harness.check_user_data(path)  # cloud-init 22.4's schema lets it through...
    with pytest.raises(CheckFailed, match="manage_etc_host'"):  # ...the key check does not
        harness.check_user_data_keys(path, set(known_keys()))


@pytest.mark.parametrize("breakage, words", [
    (lambda t: t.replace("192.168.4.21/24", "192.168.4.321/24", 1), "net-convert rejected"),
    (lambda t: t.replace("    gateway4:", "    gateway:", 1), "keys cloud-init does not read"),
    (lambda t: t.replace("version: 2\n", "version: 1\n", 1), "not 2"),
    (lambda t: t.replace("      macaddress:", "      mac:", 1), "match.macaddress"),
], ids=["bad-address", "misspelt-key", "wrong-version", "no-mac-match"])
def test_network_config_check_rejects_broken_files(dev_stack, work, breakage, words):
    node = dev_stack.settings.nodes[0]
    text = (dev_stack.node_dir(node) / "network-config").read_text()
    path = harness.write_broken(work, "network-config", text, breakage)
    with pytest.raises(CheckFailed) as err:
        if words == "net-convert rejected":
            harness.net_convert(path, work / "out", "networkd")
        else:
            harness.check_network_config(path, work, expectation(dev_stack.settings, node))
    assert words in str(err.value)
