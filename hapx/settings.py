"""Typed, validated stack settings: every rule about the stack's configuration lives here."""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

NAMESPACE = "hapx"
DEBIAN_12_IMAGE = (
    "https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-generic-amd64.qcow2"
)
DOMAIN_TYPES = ("kvm", "qemu")
NETWORK_MODES = ("create", "existing")
HEALTH_CHECKS = ("https", "tcp")
# RFC 1123 host label: what corosync, Pacemaker and cloud-init all accept as a node name.
_HOSTNAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_DNS_NAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_SSH_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


class SettingsError(ValueError):
    """Raised with every configuration problem at once, each naming its config key."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid hapx stack configuration ({len(problems)} problem(s)):\n{lines}")


@dataclass(frozen=True)
class Node:
    """One cluster member: its host name, fixed address and fixed MAC."""

    name: str
    ip: ipaddress.IPv4Address
    mac: str
    nodeid: int


@dataclass(frozen=True)
class Master:
    """One Kubernetes API server that HAProxy balances."""

    name: str
    address: str
    port: int

    @property
    def endpoint(self) -> str:
        return f"{self.address}:{self.port}"


@dataclass(frozen=True)
class DnsHost:
    """A host entry the DNS of the network the stack creates serves (network.dnsHosts)."""

    name: str
    address: ipaddress.IPv4Address


@dataclass(frozen=True)
class Network:
    """The libvirt network the nodes sit on, created by the stack or an existing one."""

    mode: str
    name: str
    cidr: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address
    dns_servers: tuple[ipaddress.IPv4Address, ...]
    domain: str
    dns_hosts: tuple[DnsHost, ...] = ()

    @property
    def creates(self) -> bool:
        return self.mode == "create"


@dataclass(frozen=True)
class Vm:
    """Size of each node VM."""

    vcpus: int = 1
    memory_mib: int = 1024
    disk_gib: int = 10


# hapx's default token, not corosync's 3000 ms: with consensus 1200 ms a dead node is declared
# lost after 2.2 s (a failover measured at 2.30 s; keepalived's defaults take ~3.6 s), and
# 10-minute soaks at a third of it, idle and loaded, held (README, "Failover figures").
DEFAULT_TOKEN_MS = 1000
# corosync adds token_coefficient (650 ms by default) to the token for every node beyond two
# (exec/totemconfig.c, totem_volatile_config_read): the runtime token knet's timers follow.
COROSYNC_TOKEN_COEFFICIENT_MS = 650
# libknet 1.25 (Debian 12) sends pings and checks its links only once per heartbeat tick
# (KNET_THREADS_TIMERES, 200 ms, libknet/threads_heartbeat.c): a link is declared down when, at a
# tick, its last pong is older than knet_ping_timeout. Pings therefore go out every interval
# rounded up to a tick, and a timeout must leave room for one such gap plus scheduling jitter.
KNET_TICK_MS = 200
KNET_JITTER_MARGIN_MS = 100
# The shortest knet ping timers measured stable on the container lab (token 300 ms): corosync's
# own derivation gave 75/150 ms there, and the link went down every ~9 s (a spurious partition).
KNET_PING_INTERVAL_FLOOR_MS = 150
KNET_PING_TIMEOUT_FLOOR_MS = 300


def default_consensus_ms(token_ms: int) -> int:
    """corosync's own default consensus: 1.2 x the token."""
    return int(token_ms * 1.2)


def corosync_runtime_token_ms(token_ms: int, node_count: int) -> int:
    """The token corosync runs with: the configured one plus token_coefficient per node beyond two."""
    return token_ms + max(0, node_count - 2) * COROSYNC_TOKEN_COEFFICIENT_MS


def min_knet_ping_timeout_ms(interval_ms: int) -> int:
    """The shortest safe knet ping timeout for an interval: the time between two pings (the
    interval rounded up to libknet's 200 ms tick) plus a margin for scheduling jitter. The
    pair measured stable at token 300 ms (150/300 ms) has exactly that margin; corosync's own
    75/150 ms, which flapped, is 50 ms short of the gap."""
    return -(-interval_ms // KNET_TICK_MS) * KNET_TICK_MS + KNET_JITTER_MARGIN_MS


def default_knet_ping_timers(token_ms: int, node_count: int) -> tuple[int, int]:
    """knet ping (interval, timeout) in ms derived from the token the way corosync 3.1 does
    (runtime token / (knet_pong_count * 2) and / knet_pong_count, pong count 2: token/4 and
    token/2, exec/totemconfig.c calc_knet_ping_timers), made safe: never below what was
    measured stable (150/300 ms), and where token/4 rounded up to libknet's tick would leave
    the timeout less than the margin above the gap between pings (a runtime token between 800
    and 1000 ms), the interval drops to the longest that keeps it. So for runtime tokens of
    600-800 ms and from 1000 ms up they are corosync's own."""
    token = corosync_runtime_token_ms(token_ms, node_count)
    interval = max(KNET_PING_INTERVAL_FLOOR_MS, token // 4)
    timeout = max(KNET_PING_TIMEOUT_FLOOR_MS, token // 2)
    if timeout < min_knet_ping_timeout_ms(interval):
        interval = max(KNET_PING_INTERVAL_FLOOR_MS,
                       (timeout - KNET_JITTER_MARGIN_MS) // KNET_TICK_MS * KNET_TICK_MS)
    return interval, timeout


@dataclass(frozen=True)
class Corosync:
    """Totem timers (ms). consensus must exceed token; corosync's own default is 1.2 x token.
    knet's ping timers default to corosync's derivation from the token, floored (see
    default_knet_ping_timers)."""

    token_ms: int = DEFAULT_TOKEN_MS
    consensus_ms: int = default_consensus_ms(DEFAULT_TOKEN_MS)
    cluster_name: str = "hapx"
    knet_ping_interval_ms: int = default_knet_ping_timers(DEFAULT_TOKEN_MS, 2)[0]
    knet_ping_timeout_ms: int = default_knet_ping_timers(DEFAULT_TOKEN_MS, 2)[1]


@dataclass(frozen=True)
class Haproxy:
    """HAProxy frontend, stats page, health check and timeouts."""

    frontend_port: int = 6443
    stats_port: int = 32700
    stats_user: str = "admin"
    health_check: str = "https"
    health_check_path: str = "/readyz"
    check_interval_ms: int = 2000
    check_fall: int = 3
    check_rise: int = 2
    timeout_connect_ms: int = 5000
    # API watches stay open for a long time: short client/server timeouts would cut them.
    timeout_client_ms: int = 4 * 3600 * 1000
    timeout_server_ms: int = 4 * 3600 * 1000
    timeout_check_ms: int = 2000
    dns_resolve_interval_s: int = 10


@dataclass(frozen=True)
class Pacemaker:
    """Resource timers: monitor intervals in whole seconds (Pacemaker counts in seconds)."""

    vip_monitor_s: int = 10
    haproxy_monitor_s: int = 5
    stickiness: int = 100


@dataclass(frozen=True)
class Settings:
    """Everything the program needs from the stack's configuration, validated."""

    vip: ipaddress.IPv4Address
    nodes: tuple[Node, ...]
    masters: tuple[Master, ...]
    network: Network
    libvirt_uri: str = "qemu:///system"
    domain_type: str = "kvm"
    base_image: str = DEBIAN_12_IMAGE
    storage_pool: str = "default"
    ssh_user: str = "debian"
    interface: str = "eth0"
    vm: Vm = field(default_factory=Vm)
    corosync: Corosync = field(default_factory=Corosync)
    haproxy: Haproxy = field(default_factory=Haproxy)
    pacemaker: Pacemaker = field(default_factory=Pacemaker)

    @property
    def prefix_len(self) -> int:
        return self.network.cidr.prefixlen

    def node(self, name: str) -> Node:
        """The node called name."""
        return next(n for n in self.nodes if n.name == name)


def default_mac(name: str) -> str:
    """A stable locally administered MAC in QEMU's 52:54:00 range, derived from the node name."""
    digest = hashlib.sha256(name.encode()).digest()
    return "52:54:00:" + ":".join(f"{b:02x}" for b in digest[:3])


class _Reader:
    """Reads typed values from a raw config mapping, collecting problems instead of raising."""

    def __init__(self, raw: Mapping[str, Any]):
        self.raw = raw
        self.problems: list[str] = []

    def fail(self, key: str, msg: str) -> None:
        self.problems.append(f"{NAMESPACE}:{key}: {msg}")

    def section(self, key: str) -> Mapping[str, Any]:
        value = self.raw.get(key, {})
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.fail(key, f"must be an object, got {type(value).__name__}")
            return {}
        known = _SECTION_KEYS.get(key)
        if known is not None:
            for extra in sorted(set(value) - known):
                self.fail(f"{key}.{extra}", f"unknown setting (known: {', '.join(sorted(known))})")
        return value

    def string(self, src: Mapping[str, Any], key: str, label: str, default: Optional[str] = None) -> Optional[str]:
        value = src.get(key, default)
        if value is None:
            self.fail(label, "is required")
            return None
        if not isinstance(value, str) or not value.strip():
            self.fail(label, f"must be a non-empty string, got {value!r}")
            return None
        return value.strip()

    def integer(self, src: Mapping[str, Any], key: str, label: str, default: int, lo: int, hi: int) -> int:
        value = src.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            self.fail(label, f"must be an integer, got {value!r}")
            return default
        try:
            number = int(value)
        except ValueError:
            self.fail(label, f"must be an integer, got {value!r}")
            return default
        if not lo <= number <= hi:
            self.fail(label, f"must be between {lo} and {hi}, got {number}")
            return default
        return number

    def choice(self, src: Mapping[str, Any], key: str, label: str, default: str, options: tuple[str, ...]) -> str:
        value = src.get(key, default)
        if value not in options:
            self.fail(label, f"must be one of {', '.join(options)}, got {value!r}")
            return default
        return value

    def ipv4(self, value: Any, label: str) -> Optional[ipaddress.IPv4Address]:
        try:
            return ipaddress.IPv4Address(str(value).strip())
        except ValueError:
            self.fail(label, f"is not an IPv4 address: {value!r}")
            return None

    def port(self, src: Mapping[str, Any], key: str, label: str, default: int) -> int:
        return self.integer(src, key, label, default, 1, 65535)


_SECTION_KEYS = {
    "network": {"mode", "name", "cidr", "gateway", "dnsServers", "domain", "dnsHosts"},
    "vm": {"vcpus", "memoryMiB", "diskGiB"},
    "corosync": {"tokenMs", "consensusMs", "clusterName", "knetPingIntervalMs", "knetPingTimeoutMs"},
    "haproxy": {
        "frontendPort", "statsPort", "statsUser", "healthCheck", "healthCheckPath",
        "checkIntervalMs", "checkFall", "checkRise", "timeoutConnectMs", "timeoutClientMs",
        "timeoutServerMs", "timeoutCheckMs", "dnsResolveIntervalSeconds",
    },
    "pacemaker": {"vipMonitorSeconds", "haproxyMonitorSeconds", "stickiness"},
}
TOP_LEVEL_KEYS = {
    "vip", "nodes", "masters", "network", "libvirtUri", "domainType", "baseImage",
    "storagePool", "sshUser", "interface", "vm", "corosync", "haproxy", "pacemaker",
    # secrets, read separately by the Pulumi layer
    "statsPassword", "corosyncAuthkey", "sshPrivateKey",
}


def _network(r: _Reader) -> Optional[Network]:
    src = r.section("network")
    mode = r.choice(src, "mode", "network.mode", "create", NETWORK_MODES)
    name = r.string(src, "name", "network.name", "hapx")
    cidr_raw = src.get("cidr")
    cidr = None
    if cidr_raw is None:
        r.fail("network.cidr", "is required (the node subnet, e.g. 192.168.4.0/24)")
    else:
        try:
            cidr = ipaddress.IPv4Network(str(cidr_raw).strip(), strict=True)
        except ValueError as err:
            r.fail("network.cidr", f"is not an IPv4 network: {cidr_raw!r} ({err})")
    if cidr is not None and cidr.prefixlen > 29:
        r.fail("network.cidr", f"/{cidr.prefixlen} is too small for two nodes, a gateway and a VIP")
        cidr = None
    gateway = None
    if "gateway" in src:
        gateway = r.ipv4(src["gateway"], "network.gateway")
    elif cidr is not None:
        gateway = next(cidr.hosts())
    if gateway is not None and cidr is not None and gateway not in cidr:
        r.fail("network.gateway", f"{gateway} is outside network.cidr {cidr}")
    elif gateway is not None and cidr is not None and mode == "create" and gateway != next(cidr.hosts()):
        # A network libvirt creates always routes through its first host address.
        r.fail("network.gateway", f"must be {next(cidr.hosts())} (the first address) when network.mode is create")
    dns_raw = src.get("dnsServers")
    dns: list[ipaddress.IPv4Address] = []
    if dns_raw is None:
        dns = [gateway] if gateway is not None else []
    elif not isinstance(dns_raw, list) or not dns_raw:
        r.fail("network.dnsServers", "must be a non-empty list of IPv4 addresses")
    else:
        for i, value in enumerate(dns_raw):
            addr = r.ipv4(value, f"network.dnsServers[{i}]")
            if addr is not None:
                dns.append(addr)
    domain = r.string(src, "domain", "network.domain", "hapx.local")
    if domain is not None and not _DNS_NAME.match(domain):
        r.fail("network.domain", f"is not a DNS domain name: {domain!r}")
    if None in (name, cidr, gateway, domain):
        return None
    return Network(mode, name, cidr, gateway, tuple(dns), domain, _dns_hosts(r, src, mode))


def _dns_hosts(r: _Reader, src: Mapping[str, Any], mode: str) -> tuple[DnsHost, ...]:
    raw = src.get("dnsHosts")
    if raw is None:
        return ()
    if mode != "create":
        # An existing network's DNS is the operator's: hapx cannot add entries to it.
        r.fail("network.dnsHosts", "is only served by a network the stack creates (network.mode: create)")
        return ()
    if not isinstance(raw, list):
        r.fail("network.dnsHosts", "must be a list of {name, address} objects")
        return ()
    hosts = []
    for i, item in enumerate(raw):
        label = f"network.dnsHosts[{i}]"
        if not isinstance(item, Mapping) or set(item) != {"name", "address"}:
            r.fail(label, f"must be an object with exactly name and address, got {item!r}")
            continue
        name = r.string(item, "name", f"{label}.name")
        if name is not None and not _DNS_NAME.match(name):
            r.fail(f"{label}.name", f"is not a host name: {name!r}")
            continue
        address = r.ipv4(item["address"], f"{label}.address")
        if name is not None and address is not None:
            hosts.append(DnsHost(name.lower(), address))
    _unique(r, "network.dnsHosts", "name", [h.name for h in hosts])
    return tuple(hosts)


def _nodes(r: _Reader, network: Optional[Network]) -> tuple[Node, ...]:
    raw = r.raw.get("nodes")
    if not isinstance(raw, list):
        r.fail("nodes", "is required: a list of {name, ip[, mac]} objects, at least two")
        return ()
    if len(raw) < 2:
        r.fail("nodes", f"needs at least two nodes for a highly available pair, got {len(raw)}")
    if len(raw) > 16:
        r.fail("nodes", f"at most 16 nodes are supported, got {len(raw)}")
    nodes = []
    for i, item in enumerate(raw):
        label = f"nodes[{i}]"
        if not isinstance(item, Mapping):
            r.fail(label, f"must be an object with name and ip, got {item!r}")
            continue
        for extra in sorted(set(item) - {"name", "ip", "mac"}):
            r.fail(f"{label}.{extra}", "unknown setting (known: ip, mac, name)")
        name = r.string(item, "name", f"{label}.name")
        if name is not None and not _HOSTNAME.match(name):
            r.fail(f"{label}.name", f"{name!r} is not a valid host name (lower-case letters, digits, '-')")
            name = None
        ip = r.ipv4(item.get("ip"), f"{label}.ip") if "ip" in item else None
        if "ip" not in item:
            r.fail(f"{label}.ip", "is required")
        mac = str(item.get("mac") or (default_mac(name) if name else "")).lower()
        if name is not None and not _MAC.match(mac):
            r.fail(f"{label}.mac", f"is not a MAC address (xx:xx:xx:xx:xx:xx): {item.get('mac')!r}")
        elif mac and int(mac[:2], 16) & 1:
            r.fail(f"{label}.mac", f"{mac} is a multicast address")
        if network is not None and ip is not None:
            if ip not in network.cidr:
                r.fail(f"{label}.ip", f"{ip} is outside network.cidr {network.cidr}")
            elif ip in (network.cidr.network_address, network.cidr.broadcast_address):
                r.fail(f"{label}.ip", f"{ip} is the network or broadcast address of {network.cidr}")
            elif ip == network.gateway:
                r.fail(f"{label}.ip", f"{ip} is the gateway address")
        if name is not None and ip is not None:
            nodes.append(Node(name, ip, mac, nodeid=i + 1))
    _unique(r, "nodes", "name", [n.name for n in nodes])
    _unique(r, "nodes", "ip", [str(n.ip) for n in nodes])
    _unique(r, "nodes", "mac", [n.mac for n in nodes])
    return tuple(nodes)


def _unique(r: _Reader, key: str, attr: str, values: list[str]) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            r.fail(key, f"duplicate {attr} {value!r}")
        seen.add(value)


def _masters(r: _Reader) -> tuple[Master, ...]:
    raw = r.raw.get("masters")
    if not isinstance(raw, list) or not raw:
        r.fail("masters", "is required: a non-empty list of {name, address, port} objects")
        return ()
    masters = []
    for i, item in enumerate(raw):
        label = f"masters[{i}]"
        if not isinstance(item, Mapping):
            r.fail(label, f"must be an object with name, address and port, got {item!r}")
            continue
        for extra in sorted(set(item) - {"name", "address", "port"}):
            r.fail(f"{label}.{extra}", "unknown setting (known: address, name, port)")
        name = r.string(item, "name", f"{label}.name")
        if name is not None and not _HOSTNAME.match(name):
            r.fail(f"{label}.name", f"{name!r} is not a valid server name (lower-case letters, digits, '-')")
            name = None
        address = r.string(item, "address", f"{label}.address", name)
        if address is not None:
            try:
                ipaddress.IPv4Address(address)
            except ValueError:
                if not _DNS_NAME.match(address):
                    r.fail(f"{label}.address", f"is neither an IPv4 address nor a host name: {address!r}")
                    address = None
        port = r.port(item, "port", f"{label}.port", 6443)
        if name is not None and address is not None:
            masters.append(Master(name, address, port))
    _unique(r, "masters", "name", [m.name for m in masters])
    _unique(r, "masters", "endpoint", [m.endpoint for m in masters])
    return tuple(masters)


def settings_from_dict(raw: Mapping[str, Any]) -> Settings:
    """Build Settings from the stack's `hapx:` config (keys without the namespace); raise SettingsError."""
    r = _Reader(raw)
    for extra in sorted(set(raw) - TOP_LEVEL_KEYS):
        r.fail(extra, "unknown setting")
    network = _network(r)
    nodes = _nodes(r, network)
    masters = _masters(r)

    vip = None
    if "vip" not in raw:
        r.fail("vip", "is required (the floating address clients use)")
    else:
        vip = r.ipv4(raw["vip"], "vip")
    if vip is not None and network is not None:
        if vip not in network.cidr:
            r.fail("vip", f"{vip} is outside network.cidr {network.cidr}")
        elif vip in (network.cidr.network_address, network.cidr.broadcast_address):
            r.fail("vip", f"{vip} is the network or broadcast address of {network.cidr}")
        elif vip == network.gateway:
            r.fail("vip", f"{vip} is the gateway address")
        for node in nodes:
            if vip == node.ip:
                r.fail("vip", f"{vip} is also the address of node {node.name}")

    libvirt_uri = r.string(raw, "libvirtUri", "libvirtUri", "qemu:///system")
    domain_type = r.choice(raw, "domainType", "domainType", "kvm", DOMAIN_TYPES)
    base_image = r.string(raw, "baseImage", "baseImage", DEBIAN_12_IMAGE)
    storage_pool = r.string(raw, "storagePool", "storagePool", "default")
    ssh_user = r.string(raw, "sshUser", "sshUser", "debian")
    if ssh_user is not None and (not _SSH_USER.match(ssh_user) or ssh_user == "root"):
        r.fail("sshUser", f"{ssh_user!r} is not a valid non-root user name")
    interface = r.string(raw, "interface", "interface", "eth0")
    if interface is not None and not re.match(r"^[a-z][a-z0-9]{0,14}$", interface):
        r.fail("interface", f"{interface!r} is not a valid interface name")

    vm_src = r.section("vm")
    vm = Vm(
        vcpus=r.integer(vm_src, "vcpus", "vm.vcpus", 1, 1, 64),
        memory_mib=r.integer(vm_src, "memoryMiB", "vm.memoryMiB", 1024, 384, 262144),
        disk_gib=r.integer(vm_src, "diskGiB", "vm.diskGiB", 10, 3, 4096),
    )

    co_src = r.section("corosync")
    token = r.integer(co_src, "tokenMs", "corosync.tokenMs", DEFAULT_TOKEN_MS, 300, 60000)
    consensus = r.integer(co_src, "consensusMs", "corosync.consensusMs", default_consensus_ms(token), 360, 72000)
    if "consensusMs" in co_src and consensus <= token:
        r.fail("corosync.consensusMs", f"must be greater than corosync.tokenMs ({token}), got {consensus}")
    cluster_name = r.string(co_src, "clusterName", "corosync.clusterName", "hapx")
    if cluster_name is not None and not re.match(r"^[A-Za-z0-9_-]{1,32}$", cluster_name):
        r.fail("corosync.clusterName", f"{cluster_name!r}: use up to 32 letters, digits, '-' or '_'")
    interval_default, timeout_default = default_knet_ping_timers(token, max(2, len(nodes)))
    ping_interval = r.integer(co_src, "knetPingIntervalMs", "corosync.knetPingIntervalMs", interval_default,
                              KNET_PING_INTERVAL_FLOOR_MS, 60000)
    ping_timeout = r.integer(co_src, "knetPingTimeoutMs", "corosync.knetPingTimeoutMs", timeout_default,
                             KNET_PING_TIMEOUT_FLOOR_MS, 120000)
    # corosync.conf(5): the two are a pair. One given alone is checked against the other's default.
    timeout_given = "knetPingTimeoutMs" in co_src
    timeout_text = f"{ping_timeout} ms" + ("" if timeout_given else ", derived from corosync.tokenMs")
    if ping_interval >= ping_timeout:
        r.fail("corosync.knetPingIntervalMs",
               f"must be less than corosync.knetPingTimeoutMs ({timeout_text}), got {ping_interval}")
    elif ping_timeout < min_knet_ping_timeout_ms(ping_interval):
        why = (f"libknet sends pings and checks links only every {KNET_TICK_MS} ms, so a timeout shorter "
               f"than the gap between two pings plus {KNET_JITTER_MARGIN_MS} ms declares a healthy link down")
        if timeout_given:
            r.fail("corosync.knetPingTimeoutMs",
                   f"must be at least {min_knet_ping_timeout_ms(ping_interval)} with corosync.knetPingIntervalMs "
                   f"{ping_interval}, got {ping_timeout}: {why}")
        else:
            r.fail("corosync.knetPingIntervalMs",
                   f"{ping_interval} needs corosync.knetPingTimeoutMs of at least "
                   f"{min_knet_ping_timeout_ms(ping_interval)} ({timeout_text}): set both; {why}")

    hp = r.section("haproxy")
    haproxy = Haproxy(
        frontend_port=r.port(hp, "frontendPort", "haproxy.frontendPort", 6443),
        stats_port=r.port(hp, "statsPort", "haproxy.statsPort", 32700),
        stats_user=r.string(hp, "statsUser", "haproxy.statsUser", "admin") or "admin",
        health_check=r.choice(hp, "healthCheck", "haproxy.healthCheck", "https", HEALTH_CHECKS),
        health_check_path=r.string(hp, "healthCheckPath", "haproxy.healthCheckPath", "/readyz") or "/readyz",
        check_interval_ms=r.integer(hp, "checkIntervalMs", "haproxy.checkIntervalMs", 2000, 100, 60000),
        check_fall=r.integer(hp, "checkFall", "haproxy.checkFall", 3, 1, 100),
        check_rise=r.integer(hp, "checkRise", "haproxy.checkRise", 2, 1, 100),
        timeout_connect_ms=r.integer(hp, "timeoutConnectMs", "haproxy.timeoutConnectMs", 5000, 100, 120000),
        timeout_client_ms=r.integer(hp, "timeoutClientMs", "haproxy.timeoutClientMs", 4 * 3600 * 1000, 1000, 24 * 3600 * 1000),
        timeout_server_ms=r.integer(hp, "timeoutServerMs", "haproxy.timeoutServerMs", 4 * 3600 * 1000, 1000, 24 * 3600 * 1000),
        timeout_check_ms=r.integer(hp, "timeoutCheckMs", "haproxy.timeoutCheckMs", 2000, 100, 120000),
        dns_resolve_interval_s=r.integer(hp, "dnsResolveIntervalSeconds", "haproxy.dnsResolveIntervalSeconds", 10, 1, 3600),
    )
    if haproxy.frontend_port == haproxy.stats_port:
        r.fail("haproxy.statsPort", f"must differ from haproxy.frontendPort ({haproxy.frontend_port})")
    if not re.match(r"^[A-Za-z0-9_.-]{1,32}$", haproxy.stats_user):
        r.fail("haproxy.statsUser", f"{haproxy.stats_user!r}: use up to 32 letters, digits, '.', '-' or '_'")
    if not re.match(r"^/[A-Za-z0-9/_.?=&-]*$", haproxy.health_check_path):
        r.fail("haproxy.healthCheckPath", f"must be an absolute URL path, got {haproxy.health_check_path!r}")

    pm = r.section("pacemaker")
    pacemaker = Pacemaker(
        vip_monitor_s=r.integer(pm, "vipMonitorSeconds", "pacemaker.vipMonitorSeconds", 10, 2, 3600),
        haproxy_monitor_s=r.integer(pm, "haproxyMonitorSeconds", "pacemaker.haproxyMonitorSeconds", 5, 2, 3600),
        stickiness=r.integer(pm, "stickiness", "pacemaker.stickiness", 100, 0, 1000000),
    )

    if r.problems:
        raise SettingsError(r.problems)
    return Settings(
        vip=vip, nodes=nodes, masters=masters, network=network, libvirt_uri=libvirt_uri,
        domain_type=domain_type, base_image=base_image, storage_pool=storage_pool,
        ssh_user=ssh_user, interface=interface, vm=vm,
        corosync=Corosync(token, consensus, cluster_name, ping_interval, ping_timeout),
        haproxy=haproxy, pacemaker=pacemaker,
    )


def load_stack_file(path: str) -> dict[str, Any]:
    """Read a Pulumi.<stack>.yaml and return its `hapx:` config without the namespace prefix."""
    import yaml

    with open(path, encoding="utf-8") as fh:
        doc = yaml.safe_load(fh) or {}
    config = doc.get("config") or {}
    prefix = NAMESPACE + ":"
    return {k[len(prefix):]: v for k, v in config.items() if k.startswith(prefix)}
