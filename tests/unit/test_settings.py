"""Every settings rule refuses bad input with a message naming the config key."""

import copy
import re

import pytest

from hapx.model import GivenSecret, SettingsError, default_mac, default_nodeid
from hapx.settings import settings_from_dict
from hapx.timers import default_knet_ping_timers, min_knet_ping_timeout_ms


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


DELETE = object()


def patched(cfg: dict, patch: list[tuple[str, object]]) -> dict:
    """A copy of cfg with each `path` (`nodes[0].mac`, `haproxy.statsPort`) set, appended or DELETEd."""
    cfg = copy.deepcopy(cfg)
    for path, value in patch:
        parts = re.findall(r"[^.\[\]]+|\[\d+\]", path)
        obj = cfg
        for part in parts[:-1]:
            obj = obj[int(part[1:-1])] if part.startswith("[") else obj.setdefault(part, {})
        last = parts[-1]
        if last.startswith("["):
            i = int(last[1:-1])
            if value is DELETE:
                obj.pop(i)
            elif i == len(obj):
                obj.append(value)
            else:
                obj[i] = value
        elif value is DELETE:
            obj.pop(last)
        else:
            obj[last] = value
    return cfg


# Each bad input on the dev stack, and exactly what the operator is told.
CASES = [
    ('vip-not-ip', [('vip', '192.168.4.300')],
     ["hapx:vip: is not an IPv4 address: '192.168.4.300'"]),
    ('vip-outside', [('vip', '10.0.0.20')],
     ['hapx:vip: 10.0.0.20 is outside network.cidr 192.168.4.0/24']),
    ('vip-is-node', [('vip', '192.168.4.21')],
     ['hapx:vip: 192.168.4.21 is the address of node hapx-node01']),
    ('vip-is-gateway', [('vip', '192.168.4.1')],
     ['hapx:vip: 192.168.4.1 is the gateway address']),
    ('vip-broadcast', [('vip', '192.168.4.255')],
     ['hapx:vip: 192.168.4.255 is the network or broadcast address of 192.168.4.0/24']),
    ('vip-missing', [('vip', DELETE)],
     ['hapx:vip: is required']),
    ('one-node', [('nodes[1]', DELETE)],
     ['hapx:nodes: needs at least two nodes for a highly available pair, got 1']),
    ('nodes-missing', [('nodes', DELETE)],
     ['hapx:nodes: is required']),
    ('dup-name', [('nodes[1].name', 'hapx-node01')],
     ["hapx:nodes: duplicate name 'hapx-node01'", "hapx:nodes: duplicate mac '52:54:00:76:a7:1e'"]),
    ('dup-ip', [('nodes[1].ip', '192.168.4.21')],
     ["hapx:nodes: duplicate ip '192.168.4.21'"]),
    ('dup-mac', [('nodes[1].mac', '52:54:00:76:a7:1e')],
     ["hapx:nodes: duplicate mac '52:54:00:76:a7:1e'"]),
    ('node-ip-outside', [('nodes[0].ip', '192.168.5.21')],
     ['hapx:nodes[0].ip: 192.168.5.21 is outside network.cidr 192.168.4.0/24']),
    ('node-ip-bad', [('nodes[0].ip', 'not-an-ip')],
     ["hapx:nodes[0].ip: is not an IPv4 address: 'not-an-ip'"]),
    ('node-ip-gateway', [('nodes[0].ip', '192.168.4.1')],
     ['hapx:nodes[0].ip: 192.168.4.1 is the gateway address']),
    ('node-name-bad', [('nodes[0].name', 'Node_01')],
     ["hapx:nodes[0].name: 'Node_01' is not valid: lower-case letters, digits and '-', at most 63, not starting or ending with '-'"]),
    ('mac-bad', [('nodes[0].mac', '52:54:00:zz:00:01')],
     ["hapx:nodes[0].mac: is not a MAC address (xx:xx:xx:xx:xx:xx): '52:54:00:zz:00:01'"]),
    ('mac-multicast', [('nodes[0].mac', '01:00:5e:00:00:01')],
     ['hapx:nodes[0].mac: 01:00:5e:00:00:01 is a multicast address']),
    ('node-unknown-key', [('nodes[0].role', 'x')],
     ['hapx:nodes[0].role: unknown setting (known: ip, mac, name, nodeid)']),
    ('masters-empty', [('masters', [])],
     ['hapx:masters: must be a non-empty list, got []']),
    ('port-high', [('masters[0].port', 70000)],
     ['hapx:masters[0].port: must be between 1 and 65535, got 70000']),
    ('port-zero', [('masters[0].port', 0)],
     ['hapx:masters[0].port: must be between 1 and 65535, got 0']),
    ('master-address-bad', [('masters[0].address', 'bad host!')],
     ["hapx:masters[0].address: is neither an IPv4 address nor a host name: 'bad host!'"]),
    ('dup-master', [('masters[1].name', 'kube-mast01')],
     ["hapx:masters: duplicate name 'kube-mast01'"]),
    ('domain-type', [('domainType', 'xen')],
     ["hapx:domainType: must be one of kvm, qemu, got 'xen'"]),
    ('network-mode', [('network.mode', 'bridge')],
     ["hapx:network.mode: must be one of create, existing, got 'bridge'"]),
    ('cidr-33', [('network.cidr', '192.168.4.0/33')],
     ["hapx:network.cidr: is not an IPv4 network: '192.168.4.0/33' ('33' is not a valid netmask)"]),
    ('cidr-host-bits', [('network.cidr', '192.168.4.7/24')],
     ["hapx:network.cidr: is not an IPv4 network: '192.168.4.7/24' (192.168.4.7/24 has host bits set)"]),
    ('gateway-outside', [('network.gateway', '10.1.1.1')],
     ['hapx:network.gateway: 10.1.1.1 is outside network.cidr 192.168.4.0/24']),
    ('gateway-not-first', [('network.gateway', '192.168.4.254')],
     ['hapx:network.gateway: must be 192.168.4.1 (the first address) when network.mode is create']),
    ('stats-port-0', [('haproxy.statsPort', 0)],
     ['hapx:haproxy.statsPort: must be between 1 and 65535, got 0']),
    ('stats-port-frontend', [('haproxy.statsPort', 6443)],
     ['hapx:haproxy.statsPort: must differ from haproxy.frontendPort (6443)']),
    ('frontend-port-text', [('haproxy.frontendPort', 'https')],
     ["hapx:haproxy.frontendPort: must be an integer, got 'https'"]),
    ('health-check', [('haproxy.healthCheck', 'icmp')],
     ["hapx:haproxy.healthCheck: must be one of https, tcp, got 'icmp'"]),
    ('health-check-path', [('haproxy.healthCheckPath', 'readyz')],
     ["hapx:haproxy.healthCheckPath: 'readyz' is not valid: an absolute URL path"]),
    ('timeout-client', [('haproxy.timeoutClientMs', 10)],
     ['hapx:haproxy.timeoutClientMs: must be between 1000 and 86400000, got 10']),
    ('token-low', [('corosync.tokenMs', 100)],
     ['hapx:corosync.tokenMs: must be between 300 and 60000, got 100']),
    ('consensus-not-above', [('corosync.tokenMs', 2000), ('corosync.consensusMs', 2000)],
     ['hapx:corosync.consensusMs: must be greater than the runtime token (2000 ms: corosync.tokenMs 2000), got 2000']),
    ('knet-interval-low', [('corosync.knetPingIntervalMs', 75)],
     ['hapx:corosync.knetPingIntervalMs: must be between 150 and 60000, got 75']),
    ('knet-timeout-low', [('corosync.knetPingTimeoutMs', 150)],
     ['hapx:corosync.knetPingTimeoutMs: must be between 300 and 120000, got 150']),
    ('knet-interval-text', [('corosync.knetPingIntervalMs', 'fast')],
     ["hapx:corosync.knetPingIntervalMs: must be an integer, got 'fast'"]),
    ('knet-equal', [('corosync.knetPingIntervalMs', 500), ('corosync.knetPingTimeoutMs', 500)],
     ['hapx:corosync.knetPingIntervalMs: must be less than corosync.knetPingTimeoutMs (500 ms), got 500']),
    ('knet-interval-vs-derived', [('corosync.tokenMs', 600), ('corosync.knetPingIntervalMs', 400)],
     ['hapx:corosync.knetPingIntervalMs: must be less than corosync.knetPingTimeoutMs (300 ms, derived from corosync.tokenMs), got 400']),
    ('knet-timeout-tick', [('corosync.knetPingIntervalMs', 250), ('corosync.knetPingTimeoutMs', 400)],
     ['hapx:corosync.knetPingTimeoutMs: must be at least 500 with corosync.knetPingIntervalMs 250, got 400: libknet sends pings and checks links only every 200 ms, so a timeout shorter than the gap between two pings plus 100 ms declares a healthy link down']),
    ('knet-interval-needs-timeout', [('corosync.tokenMs', 1000), ('corosync.knetPingIntervalMs', 450)],
     ['hapx:corosync.knetPingIntervalMs: 450 needs corosync.knetPingTimeoutMs of at least 700 (500 ms, derived from corosync.tokenMs): set both; libknet sends pings and checks links only every 200 ms, so a timeout shorter than the gap between two pings plus 100 ms declares a healthy link down']),
    ('corosync-unknown', [('corosync.knetPingMs', 100)],
     ['hapx:corosync.knetPingMs: unknown setting (known: clusterName, consensusMs, knetPingIntervalMs, knetPingTimeoutMs, tokenMs)']),
    ('memory-low', [('vm.memoryMiB', 128)],
     ['hapx:vm.memoryMiB: must be between 384 and 262144, got 128']),
    ('vcpus-0', [('vm.vcpus', 0)],
     ['hapx:vm.vcpus: must be between 1 and 64, got 0']),
    ('vm-unknown', [('vm.cores', 2)],
     ['hapx:vm.cores: unknown setting (known: diskGiB, memoryMiB, vcpus)']),
    ('ssh-root', [('sshUser', 'root')],
     ['hapx:sshUser: must not be root (root logins are disabled on the nodes)']),
    ('monitor-1', [('pacemaker.haproxyMonitorSeconds', 1)],
     ['hapx:pacemaker.haproxyMonitorSeconds: must be between 2 and 3600, got 1']),
    ('top-unknown', [('vipp', '192.168.4.20')],
     ['hapx:vipp: unknown setting']),
    ('cluster-name', [('corosync.clusterName', 'my cluster')],
     ["hapx:corosync.clusterName: 'my cluster' is not valid: up to 32 letters, digits, '-' or '_'"]),
    ('stats-user', [('haproxy.statsUser', 'ad min')],
     ["hapx:haproxy.statsUser: 'ad min' is not valid: up to 32 letters, digits, '.', '-' or '_'"]),
    ('master-address-numeric', [('masters[0].address', '1.2.3')],
     ["hapx:masters[0].address: is neither an IPv4 address nor a host name: '1.2.3'"]),
    ('master-address-hex', [('masters[0].address', '0x7f000001')],
     ["hapx:masters[0].address: is neither an IPv4 address nor a host name: '0x7f000001'"]),
    ('master-address-short-ipv4', [('masters[0].address', '10.1')],
     ["hapx:masters[0].address: is neither an IPv4 address nor a host name: '10.1'"]),
    ('node-name-digits', [('nodes[0].name', '1')],
     ["hapx:nodes[0].name: '1' is all digits: a host name needs a letter or '-'"]),
    ('nodes-not-list', [('nodes', {'name': 'a'})],
     ["hapx:nodes: must be a non-empty list, got {'name': 'a'}"]),
    ('section-not-object', [('haproxy', [1])],
     ['hapx:haproxy: must be an object, got a list']),
    ('item-not-object', [('masters[0]', 'kube-mast01')],
     ["hapx:masters[0]: must be an object (address, name, port), got 'kube-mast01'"]),
    ('master-at-vip', [('masters[0].address', '192.168.4.20')],
     ['hapx:masters[0].address: 192.168.4.20 is the VIP: HAProxy would proxy to itself']),
    ('master-at-node', [('masters[0].address', '192.168.4.22')],
     ['hapx:masters[0].address: 192.168.4.22 is the address of node hapx-node02: HAProxy would proxy to itself']),
    ('master-unspecified', [('masters[0].address', '0.0.0.0')],
     ['hapx:masters[0].address: 0.0.0.0 is the node itself: HAProxy would proxy to itself']),
    ('master-loopback', [('masters[0].address', '127.0.0.1')],
     ['hapx:masters[0].address: 127.0.0.1 is the node itself: HAProxy would proxy to itself']),
    ('master-broadcast', [('masters[0].address', '255.255.255.255')],
     ['hapx:masters[0].address: 255.255.255.255 is not a host address (multicast, broadcast or reserved)']),
    ('master-multicast', [('masters[0].address', '224.0.0.1')],
     ['hapx:masters[0].address: 224.0.0.1 is not a host address (multicast, broadcast or reserved)']),
    ('master-localhost', [('masters[0].address', 'localhost')],
     ["hapx:masters[0].address: 'localhost' is the node itself: HAProxy would proxy to itself"]),
    ('metrics-port-22', [('haproxy.metricsPort', 22)],
     ["hapx:haproxy.metricsPort: 22 is sshd's port on the nodes: HAProxy could not bind it"]),
    ('metrics-port-stats', [('haproxy.metricsPort', 32700)],
     ['hapx:haproxy.metricsPort: must differ from haproxy.statsPort (32700)']),
    ('dns-interval-0', [('haproxy.dnsResolveIntervalSeconds', 0)],
     ['hapx:haproxy.dnsResolveIntervalSeconds: must be between 1 and 3600, got 0']),
    ('dns-hosts-object', [('network.dnsHosts', {'kube-mast01': '192.168.4.101'})],
     ["hapx:network.dnsHosts: must be a non-empty list, got {'kube-mast01': '192.168.4.101'}"]),
    ('dns-host-no-address', [('network.dnsHosts', [{'name': 'kube-mast01'}])],
     ['hapx:network.dnsHosts[0].address: is required']),
    ('dns-host-bad-name', [('network.dnsHosts', [{'name': 'bad name', 'address': '192.168.4.101'}])],
     ["hapx:network.dnsHosts[0].name: 'bad name' is not valid: a DNS name"]),
    ('dns-host-address-name', [('network.dnsHosts', [{'name': 'kube-mast01', 'address': 'kube-mast01'}])],
     ["hapx:network.dnsHosts[0].address: is not an IPv4 address: 'kube-mast01'"]),
    ('dns-hosts-duplicate', [('network.dnsHosts', [{'name': 'kube-mast01', 'address': '192.168.4.101'}, {'name': 'Kube-Mast01', 'address': '192.168.4.102'}])],
     ["hapx:network.dnsHosts: duplicate name 'kube-mast01'"]),
    ('dns-hosts-existing', [('network.mode', 'existing'), ('network.dnsHosts', [{'name': 'kube-mast01', 'address': '192.168.4.101'}])],
     ['hapx:network.dnsHosts: is only served by a network the stack creates (network.mode: create)']),

    ('frontend-22', [('haproxy.frontendPort', 22)],
     ["hapx:haproxy.frontendPort: 22 is sshd's port on the nodes: HAProxy could not bind it"]),
    ('stats-22', [('haproxy.statsPort', 22)],
     ["hapx:haproxy.statsPort: 22 is sshd's port on the nodes: HAProxy could not bind it"]),
    ('ssh-haproxy', [('sshUser', 'haproxy')],
     ["hapx:sshUser: 'haproxy' is a system account on the nodes; it must not get passwordless sudo"]),
    ('ssh-nobody', [('sshUser', 'nobody')],
     ["hapx:sshUser: 'nobody' is a system account on the nodes; it must not get passwordless sudo"]),
    ('ssh-systemd', [('sshUser', 'systemd-network')],
     ["hapx:sshUser: 'systemd-network' is a system account on the nodes; it must not get passwordless sudo"]),
    ('interface-lo', [('interface', 'lo')],
     ["hapx:interface: 'lo' is reserved (the loopback or a kernel name), not the node's NIC"]),
    ('interface-bool', [('interface', True)],
     ['hapx:interface: must be a non-empty string, got True']),
    ('mac-zero', [('nodes[0].mac', '00:00:00:00:00:00')],
     ['hapx:nodes[0].mac: 00:00:00:00:00:00 is not a usable address']),
    ('mac-newline', [('nodes[0].mac', '52:54:00:12:34:56\n')],
     ["hapx:nodes[0].mac: has leading or trailing white space: '52:54:00:12:34:56\\n'"]),
    ('name-trailing-space', [('nodes[0].name', 'hapx-node01 ')],
     ["hapx:nodes[0].name: has leading or trailing white space: 'hapx-node01 '"]),
    ('cidr-all', [('network.cidr', '0.0.0.0/0')],
     ['hapx:network.cidr: 0.0.0.0/0 is larger than a /8']),
    ('cidr-small', [('network.cidr', '192.168.4.0/30')],
     ['hapx:network.cidr: 192.168.4.0/30 is too small for two nodes, a gateway and a VIP']),
    ('cidr-loopback', [('network.cidr', '127.0.0.0/24')],
     ['hapx:network.cidr: 127.0.0.0/24 is a loopback network']),
    ('cidr-multicast', [('network.cidr', '224.0.0.0/24')],
     ['hapx:network.cidr: 224.0.0.0/24 is a multicast network']),
    ('cidr-link-local', [('network.cidr', '169.254.1.0/24')],
     ['hapx:network.cidr: 169.254.1.0/24 is link-local (169.254.0.0/16)']),
    ('gateway-network', [('network.mode', 'existing'), ('network.gateway', '192.168.4.0')],
     ['hapx:network.gateway: 192.168.4.0 is the network or broadcast address of 192.168.4.0/24']),
    ('gateway-broadcast', [('network.mode', 'existing'), ('network.gateway', '192.168.4.255')],
     ['hapx:network.gateway: 192.168.4.255 is the network or broadcast address of 192.168.4.0/24']),
    ('node-localhost', [('nodes[0].name', 'localhost')],
     ["hapx:nodes[0].name: 'localhost' is reserved for the loopback address"]),
    ('pool-bad', [('storagePool', 'my pool')],
     ["hapx:storagePool: 'my pool' is not valid: up to 64 letters, digits, '_', '.', '+' or '-', starting with a letter or digit"]),
    ('uri-bad', [('libvirtUri', 'system')],
     ["hapx:libvirtUri: 'system' is not valid: a libvirt URI such as qemu:///system or qemu+ssh://host/system"]),
    ('network-name-bad', [('network.name', 'lan/0')],
     ["hapx:network.name: 'lan/0' is not valid: up to 64 letters, digits, '_', '.', '+' or '-', starting with a letter or digit"]),
    ('existing-without-name', [('network.mode', 'existing'), ('network.name', DELETE)],
     ['hapx:network.name: is required when network.mode is existing (the libvirt network to join)']),
    ('base-image-space', [('baseImage', '/tmp/a b.qcow2')],
     ["hapx:baseImage: '/tmp/a b.qcow2' is not valid: a URL or path without white space, quotes or '\\'"]),
    ('dns-loopback', [('network.dnsServers', ['127.0.0.53'])],
     ['hapx:network.dnsServers[0]: 127.0.0.53 is the node itself: nothing answers DNS there']),
    ('dns-broadcast', [('network.dnsServers', ['255.255.255.255'])],
     ['hapx:network.dnsServers[0]: 255.255.255.255 is not a host address (multicast, broadcast or reserved)']),
    ('dns-not-ip', [('network.dnsServers', ['ns1'])],
     ["hapx:network.dnsServers[0]: is not an IPv4 address: 'ns1'"]),
    ('three-nodes-real-token', [('nodes[2]', {'name': 'hapx-node03', 'ip': '192.168.4.23'}), ('corosync.tokenMs', 3000), ('corosync.consensusMs', 3600)],
     ['hapx:corosync.consensusMs: must be greater than the runtime token (3650 ms: corosync.tokenMs 3000 + 1 x 650 ms token_coefficient for 3 nodes), got 3600']),
    ('nodeid-duplicate', [('nodes[0].nodeid', 7), ('nodes[1].nodeid', 7)],
     ['hapx:nodes: duplicate nodeid 7 (nodes hapx-node01 and hapx-node02): give one of them an explicit nodeid']),
    ('nodeid-knet-range', [('nodes[0].nodeid', 65536)],
     ['hapx:nodes[0].nodeid: must be between 1 and 65535, got 65536']),
    ('secret-in-plain-text', [('statsPassword', 'Abcdefgh12345')],
     ['hapx:statsPassword: is stored in plain text: set it with `pulumi config set --secret hapx:statsPassword`']),
    ('password-empty', [('statsPassword', GivenSecret(''))],
     ["hapx:statsPassword: must be 12 to 128 letters, digits or -._~!%*+,/;=?@^ (no white space, quotes, '#', '$' or '\\')"]),
    ('password-space', [('statsPassword', GivenSecret('abc def ghi jkl'))],
     ["hapx:statsPassword: must be 12 to 128 letters, digits or -._~!%*+,/;=?@^ (no white space, quotes, '#', '$' or '\\')"]),
    ('password-hash', [('statsPassword', GivenSecret('abcdefghijkl#mn'))],
     ["hapx:statsPassword: must be 12 to 128 letters, digits or -._~!%*+,/;=?@^ (no white space, quotes, '#', '$' or '\\')"]),
    ('authkey-not-base64', [('corosyncAuthkey', GivenSecret('not base64!'))],
     ['hapx:corosyncAuthkey: is not base64']),
    ('authkey-short', [('corosyncAuthkey', GivenSecret('c2hvcnQ='))],
     ['hapx:corosyncAuthkey: decodes to 5 bytes; corosync needs 128 to 4096 (corosync-keygen makes 256)']),
    ('ssh-key-not-private', [('sshPrivateKey', GivenSecret('ssh-ed25519 AAAA'))],
     ['hapx:sshPrivateKey: is not an unencrypted OpenSSH private key (it does not parse)']),
    # Every address setting follows the rules its spec names (Setting.not_at), one checker for all.
    ('dns-host-at-vip', [('network.dnsHosts', [{'name': 'kube-mast01', 'address': '192.168.4.20'}])],
     ['hapx:network.dnsHosts[0].address: 192.168.4.20 is the VIP: a master given by this name would make HAProxy proxy to itself']),
    ('dns-host-at-node', [('network.dnsHosts', [{'name': 'kube-mast01', 'address': '192.168.4.21'}])],
     ['hapx:network.dnsHosts[0].address: 192.168.4.21 is the address of node hapx-node01: a master given by this name would make HAProxy proxy to itself']),
    ('dns-host-node-name-elsewhere', [('network.dnsHosts', [{'name': 'hapx-node02', 'address': '192.168.4.99'}])],
     ["hapx:network.dnsHosts[0].name: 'hapx-node02' is the name of node hapx-node02, whose address is 192.168.4.22, not 192.168.4.99"]),
    ('dns-host-node-fqdn-elsewhere', [('network.dnsHosts', [{'name': 'hapx-node02.kube.local', 'address': '10.0.0.7'}])],
     ["hapx:network.dnsHosts[0].name: 'hapx-node02.kube.local' is the name of node hapx-node02, whose address is 192.168.4.22, not 10.0.0.7"]),
    ('dns-host-loopback', [('network.dnsHosts', [{'name': 'kube-mast01', 'address': '127.0.0.1'}])],
     ['hapx:network.dnsHosts[0].address: 127.0.0.1 is the node itself: a master given by this name would make HAProxy proxy to itself']),
    ('dns-host-broadcast', [('network.dnsHosts', [{'name': 'kube-mast01', 'address': '192.168.4.255'}])],
     ['hapx:network.dnsHosts[0].address: 192.168.4.255 is the network or broadcast address of 192.168.4.0/24']),
    ('dns-host-multicast', [('network.dnsHosts', [{'name': 'kube-mast01', 'address': '239.1.1.1'}])],
     ['hapx:network.dnsHosts[0].address: 239.1.1.1 is not a host address (multicast, broadcast or reserved)']),
    ('dns-server-at-vip', [('network.dnsServers', ['192.168.4.20'])],
     ['hapx:network.dnsServers[0]: 192.168.4.20 is the VIP: nothing answers DNS there']),
    ('dns-server-at-node', [('network.dnsServers', ['192.168.4.1', '192.168.4.22'])],
     ['hapx:network.dnsServers[1]: 192.168.4.22 is the address of node hapx-node02: nothing answers DNS there']),
    ('dns-server-network-address', [('network.dnsServers', ['192.168.4.0'])],
     ['hapx:network.dnsServers[0]: 192.168.4.0 is the network or broadcast address of 192.168.4.0/24']),
    ('master-network-address', [('masters[0].address', '192.168.4.0')],
     ['hapx:masters[0].address: 192.168.4.0 is the network or broadcast address of 192.168.4.0/24']),
    ('master-node-name', [('masters[0].address', 'hapx-node01')],
     ["hapx:masters[0].address: 'hapx-node01' is the name of node hapx-node01: HAProxy would proxy to itself"]),
    ('master-node-fqdn', [('masters[0].address', 'HAPX-NODE02.kube.local')],
     ["hapx:masters[0].address: 'HAPX-NODE02.kube.local' is the name of node hapx-node02: HAProxy would proxy to itself"]),
    # Scores that saturate at INFINITY leave the drain and the health rules without a say.
    ('stickiness-at-the-ceiling', [('pacemaker', {'stickiness': 124913})],
     ["hapx:pacemaker.stickiness: 124913 puts the VIP's score on its node at 1000004 with 3 masters and vipPlacement "
      "sticky, at or above Pacemaker's INFINITY (1000000): a drain, a lost master or a failed HAProxy could no "
      "longer move the VIP; at most 124912 here"]),
    ('stickiness-infinity-off-dc', [('pacemaker', {'stickiness': 1000000, 'vipPlacement': 'off-dc'})],
     ["hapx:pacemaker.stickiness: 1000000 puts the VIP's score on its node at 16001500 with 3 masters and vipPlacement "
      "off-dc, at or above Pacemaker's INFINITY (1000000): a drain, a lost master or a failed HAProxy could no "
      "longer move the VIP; at most 62406 here"]),

]


@pytest.mark.parametrize("patch, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_bad_input_gets_its_exact_message(dev_config, patch, expected):
    assert problems(patched(dev_config, patch)) == expected


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


def test_three_nodes_are_accepted_with_corosyncs_runtime_token(three_node_config):
    co = settings_from_dict(three_node_config).corosync
    # corosync runs 3 nodes with token 1000 + 650 ms: consensus defaults to 1.2 x that.
    assert (co.token_ms, co.consensus_ms) == (1000, 1980)


def test_nodeids_do_not_shift_when_a_node_goes(three_node_config):
    three = settings_from_dict(three_node_config).nodes
    assert [n.nodeid for n in three] == [default_nodeid(n.name) for n in three]
    assert all(1 <= n.nodeid <= 65535 for n in three)
    cfg = copy.deepcopy(three_node_config)
    cfg["nodes"].pop(0)
    assert {n.name: n.nodeid for n in settings_from_dict(cfg).nodes} == {n.name: n.nodeid for n in three[1:]}
    cfg["nodes"][0]["nodeid"] = 1
    assert settings_from_dict(cfg).nodes[0].nodeid == 1


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


def test_address_problems_are_reported_at_once(dev_config):
    cfg = patched(dev_config, [('network.dnsServers', ['192.168.4.20', '192.168.4.21']),
                               ('network.dnsHosts', [{'name': 'kube-mast01', 'address': '192.168.4.20'},
                                                     {'name': 'hapx-node01', 'address': '192.168.4.30'}]),
                               ('masters[1].address', '192.168.4.22')])
    assert [p.split(": ")[0] for p in problems(cfg)] == [
        "hapx:network.dnsServers[0]", "hapx:network.dnsServers[1]", "hapx:network.dnsHosts[0].address",
        "hapx:network.dnsHosts[1].name", "hapx:masters[1].address"]


def test_a_node_s_own_dns_entry_is_accepted(dev_config):
    cfg = patched(dev_config, [('network.dnsHosts', [{'name': 'hapx-node01', 'address': '192.168.4.21'},
                                                     {'name': 'hapx-node02.kube.local', 'address': '192.168.4.22'},
                                                     {'name': 'kube-mast01', 'address': '192.168.4.101'},
                                                     {'name': 'router', 'address': '192.168.4.1'}]),
                               ('network.dnsServers', ['192.168.4.1', '10.0.0.53'])])
    s = settings_from_dict(cfg)
    assert [str(h.address) for h in s.network.dns_hosts] == ["192.168.4.21", "192.168.4.22", "192.168.4.101",
                                                             "192.168.4.1"]


def test_every_address_setting_names_its_rules():
    from hapx import spec

    addresses = [s.key for s in spec.SPEC if s.kind == spec.IPV4] + ["masters[].address", "network.dnsServers"]
    assert [k for k in addresses if not spec.setting(k).not_at] == []
    # Where a client connects (HAProxy to a master, a node to its resolver, a name to its host),
    # the address must be another host's: the same rules for each.
    assert spec.setting("network.dnsHosts[].address").not_at == spec.setting("masters[].address").not_at \
        == spec.setting("network.dnsServers").not_at


@pytest.mark.parametrize("stack", ["dev", "lab", "containers"])
def test_the_repo_stacks_load(stack):
    from hapx.stackfile import load_stack_file
    from tests.conftest import PROJECT

    settings_from_dict(load_stack_file(str(PROJECT / f"Pulumi.{stack}.yaml")))
