"""cloud-init seed files: cloud-init 22.4 (the VMs' version) accepts each node's user-data,
reads its network-config into the intended network, and the meta-data names the node."""

import dataclasses
import functools
import shutil

import pytest
import yaml

from hapx import rendering
from tests.validate.tools.cloud_init import (
    NET_CONVERT_KINDS,
    NetworkExpectation,
    check_converted_network,
    check_user_data,
    check_user_data_keys,
    cloud_config_keys,
    net_convert,
    run_cloud_init,
)
from tests.validate.tools.procs import CheckFailed, write_broken
from tests.validate.tools.shell import check_shell


@functools.lru_cache(maxsize=1)
def known_keys() -> frozenset:
    return frozenset(cloud_config_keys())


def expectation(settings, node) -> NetworkExpectation:
    return NetworkExpectation(
        interface=settings.interface,
        mac=node.mac,
        address=f"{node.ip}/{settings.prefix_len}",
        gateway=str(settings.network.gateway),
        dns=tuple(str(d) for d in settings.network.dns_servers),
        search=(settings.network.domain,),
    )


@pytest.fixture(scope="session")
def cloud_init_runs(all_stacks, tmp_path_factory):
    """cloud-init's schema check on every variant's user-data and its converter on every
    network-config, each tool started once for all of them (its start-up, not the file,
    dominates one check); the per-variant tests below read what it said about their files."""
    nodes = [(s, n) for s in all_stacks.values() for n in s.settings.nodes]
    base = tmp_path_factory.mktemp("cloud-init")
    yield run_cloud_init([s.node_dir(n) / "user-data" for s, n in nodes],
                         [s.node_dir(n) / "network-config" for s, n in nodes], base)
    shutil.rmtree(base, ignore_errors=True)


def test_cloud_init_schema_accepts_user_data(stack, cloud_init_runs):
    """cloud-init's schema check (what `cloud-init schema --config-file` runs) passes every node's user-data."""
    failures = []
    for node in stack.settings.nodes:
        try:
            cloud_init_runs.check_user_data(stack.node_dir(node) / "user-data")
        except CheckFailed as err:
            failures.append(str(err))
    assert not failures, "\n\n".join(failures)


def test_user_data_uses_only_keys_cloud_init_knows(stack):
    """No misspelt top-level key (cloud-init 22.4's schema check lets unknown keys through)."""
    for node in stack.settings.nodes:
        check_user_data_keys(stack.node_dir(node) / "user-data", set(known_keys()))


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
        check_shell(path, shell="sh", exclude=["SC2086"])


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


def test_network_config_is_read_by_cloud_init(stack, cloud_init_runs):
    """network-config is version 2 with only keys cloud-init reads, and cloud-init's own
    converter (what `cloud-init devel net-convert` runs) turns it into ifupdown, netplan and
    networkd files that carry the node's address, MAC, default gateway and DNS servers."""
    for node in stack.settings.nodes:
        cloud_init_runs.check_network_config(stack.node_dir(node) / "network-config", expectation(stack.settings, node))


def test_default_route_works_without_net_tools(stack, cloud_init_runs):
    """On a Debian 12 image with ifupdown (the lab's image has it, and cloud-init 22.4 picks
    its `eni` renderer first), the default gateway must not depend on net-tools' route(8):
    the `routes: [{to: 0.0.0.0/0, via: GW}]` form renders as `post-up route add default gw
    GW || true`, which fails silently (no default route) when net-tools is not installed;
    `gateway4: GW` renders as ifupdown's own `gateway GW`."""
    for node in stack.settings.nodes:
        files = cloud_init_runs.converted_network(stack.node_dir(node) / "network-config", "eni")
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


USER_DATA_BREAKAGES = {
    "wrong-type": (lambda t: t.replace("runcmd:\n", "runcmd: 5\nbootcmd:\n", 1), "runcmd: 5 is not of type 'array'"),
    "no-header": (lambda t: t.replace("#cloud-config\n", "", 1), 'needs to begin with "#cloud-config"'),
    "bad-yaml": (lambda t: t.replace("ssh_pwauth: false\n", "ssh_pwauth: [\n", 1), "is not valid yaml"),
    "bad-user": (lambda t: t.replace("    lock_passwd: true\n", "    lock_passwd: maybe\n", 1),
                 "'lock_passwd': 'maybe'} is not valid"),
    "empty-genkeytypes": (lambda t: t.replace("ssh_pwauth: false\n", "ssh_pwauth: false\nssh_genkeytypes: []\n", 1),
                          "ssh_genkeytypes: [] is too short"),
    # cloud-init 22.4's schema lets an unknown key through; check_user_data_keys does not.
    "unknown-key": (lambda t: t.replace("manage_etc_hosts:", "manage_etc_host:"), None),
}
NETWORK_BREAKAGES = {
    "bad-address": (lambda t: t.replace("192.168.4.21/24", "192.168.4.321/24", 1), "net-convert rejected"),
    "misspelt-key": (lambda t: t.replace("    gateway4:", "    gateway:", 1), "keys cloud-init does not read"),
    "wrong-version": (lambda t: t.replace("version: 2\n", "version: 1\n", 1), "not 2"),
    "no-mac-match": (lambda t: t.replace("      macaddress:", "      mac:", 1), "match.macaddress"),
}


@pytest.fixture(scope="module")
def broken(dev_stack, tmp_path_factory):
    """The negative tests' files (the base user-data, each breakage of it, each breakage of the
    dev stack's first network-config) through the same batched runs as the stacks' files:
    (the runs, {name: user-data}, {name: network-config})."""
    base = tmp_path_factory.mktemp("cloud-init-broken")
    user_data = {"base": base / "base.user-data"}
    user_data["base"].write_text(GOOD_USER_DATA)
    for name, (breakage, _) in USER_DATA_BREAKAGES.items():
        user_data[name] = write_broken(base, f"{name}.user-data", GOOD_USER_DATA, breakage)
    net_text = (dev_stack.node_dir(dev_stack.settings.nodes[0]) / "network-config").read_text()
    networks = {name: write_broken(base, f"{name}.network-config", net_text, breakage)
                for name, (breakage, _) in NETWORK_BREAKAGES.items()}
    runs = run_cloud_init(list(user_data.values()), list(networks.values()), base / "out")
    yield runs, user_data, networks
    shutil.rmtree(base, ignore_errors=True)


def test_cloud_init_schema_accepts_the_negative_tests_base(broken):
    runs, user_data, _ = broken
    runs.check_user_data(user_data["base"])
    check_user_data_keys(user_data["base"], set(known_keys()))


def test_batched_schema_check_says_what_the_cli_says(broken):
    """`cloud-init schema --config-file` itself accepts the base and rejects a broken file with
    the words the batched check (what the tests above use) reports."""
    runs, user_data, _ = broken
    check_user_data(user_data["base"])
    with pytest.raises(CheckFailed) as err:
        check_user_data(user_data["wrong-type"])
    assert USER_DATA_BREAKAGES["wrong-type"][1] in str(err.value)
    assert USER_DATA_BREAKAGES["wrong-type"][1] in runs.schema_errors[user_data["wrong-type"]]


def test_batched_converter_writes_what_the_cli_writes(all_stacks, cloud_init_runs, work):
    """`cloud-init devel net-convert` itself writes the same files, by name and content, as the
    batched converter (for a node converted late in the batch, where state left by earlier
    conversions would show)."""
    last = list(all_stacks.values())[-1]
    path = last.node_dir(last.settings.nodes[-1]) / "network-config"
    for kind in NET_CONVERT_KINDS:
        assert net_convert(path, work / kind, kind) == cloud_init_runs.converted_network(path, kind)


@pytest.mark.parametrize("name", [n for n, (_, words) in USER_DATA_BREAKAGES.items() if words])
def test_cloud_init_schema_rejects_broken_user_data(broken, name):
    runs, user_data, _ = broken
    with pytest.raises(CheckFailed) as err:
        runs.check_user_data(user_data[name])
    assert USER_DATA_BREAKAGES[name][1] in str(err.value)


def test_unknown_user_data_key_is_rejected(broken):
    runs, user_data, _ = broken
    runs.check_user_data(user_data["unknown-key"])  # cloud-init 22.4's schema lets it through...
    with pytest.raises(CheckFailed, match="manage_etc_host'"):  # ...the key check does not
        check_user_data_keys(user_data["unknown-key"], set(known_keys()))


@pytest.mark.parametrize("name", list(NETWORK_BREAKAGES))
def test_network_config_check_rejects_broken_files(dev_stack, broken, name):
    runs, _, networks = broken
    words = NETWORK_BREAKAGES[name][1]

    def check() -> object:
        if words == "net-convert rejected":
            return runs.converted_network(networks[name], "networkd")
        return runs.check_network_config(networks[name], expectation(dev_stack.settings, dev_stack.settings.nodes[0]))

    with pytest.raises(CheckFailed) as err:
        check()
    assert words in str(err.value)


def test_converted_network_check_sees_a_lost_value(stack, cloud_init_runs):
    """The check on the converter's output fails when a value is not in what it wrote (here:
    each node's files checked against another address)."""
    for node in stack.settings.nodes:
        path = stack.node_dir(node) / "network-config"
        other = dataclasses.replace(expectation(stack.settings, node), address="192.0.2.99/24")
        for kind in NET_CONVERT_KINDS:
            with pytest.raises(CheckFailed, match=f"net-convert -O {kind} of .* lost"):
                check_converted_network(path, kind, cloud_init_runs.converted_network(path, kind), other)
