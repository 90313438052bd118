"""Typed, validated stack settings: every rule about the stack's configuration lives here.

The keys, defaults and single-value rules come from hapx.spec; the rules that tie several
settings together are written below. Every problem is collected, each naming its `hapx:` key,
and reported at once, before anything is created.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Optional

from hapx import spec
from hapx.spec import EDGE, GATEWAY, NAMESPACE, NODE, NON_HOST, OUTSIDE, SELF, VIP, Setting

# sshd listens on it on every node: HAProxy could never bind it.
SSH_PORT = 22
# Accounts Debian 12 and the packages the nodes install create: the operator user gets
# passwordless sudo, which must never be handed to a daemon's account.
SYSTEM_USERS = frozenset("""
    daemon bin sys sync games man lp mail news uucp proxy www-data backup list irc gnats _gnats
    nobody _apt messagebus sshd haproxy hacluster polkitd tss uuidd dnsmasq tcpdump statd _rpc
    _chrony ntp avahi systemd-network systemd-resolve systemd-timesync systemd-coredump
    """.split())
# Names the kernel keeps for itself under /proc/sys/net/ipv4/conf, or the loopback.
RESERVED_INTERFACES = frozenset({"lo", "all", "default"})
RESERVED_HOST_NAMES = frozenset({"localhost"})
BROADCAST = ipaddress.IPv4Address("255.255.255.255")


class SettingsError(ValueError):
    """Raised with every configuration problem at once, each naming its config key."""

    def __init__(self, problems: list[str]):
        self.problems = list(dict.fromkeys(problems))  # a value read twice is reported once
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid hapx stack configuration ({len(self.problems)} problem(s)):\n{lines}")


@dataclass(frozen=True)
class GivenSecret:
    """A secret set in the stack's config: its value where readable, and whether it is encrypted."""

    value: Optional[str]  # None: encrypted in a stack file, unreadable without the passphrase
    encrypted: bool = True

    def __repr__(self) -> str:
        return f"GivenSecret(encrypted={self.encrypted})"  # never the value


@dataclass(frozen=True)
class Node:
    """One cluster member: its host name, fixed address, fixed MAC and corosync node id."""

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
    dns_hosts: tuple[DnsHost, ...]

    @property
    def creates(self) -> bool:
        return self.mode == "create"


@dataclass(frozen=True)
class Vm:
    """Size of each node VM (hapx.spec has the defaults)."""

    vcpus: int
    memory_mib: int
    disk_gib: int


# hapx's default token, not corosync's 3000 ms: with consensus 1200 ms a dead node is declared
# lost after 2.2 s (a failover measured at 2.30 s; keepalived's defaults take ~3.6 s), and
# 10-minute soaks at a third of it, idle and loaded, held (README, "Failover figures").
DEFAULT_TOKEN_MS = spec.default("corosync.tokenMs")
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


def default_consensus_ms(runtime_token_ms: int) -> int:
    """corosync's own default consensus: 1.2 x the token it runs with (totemconfig.c)."""
    return int(runtime_token_ms * 1.2)


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
    """Totem timers (ms). consensus must exceed the runtime token; knet's ping timers default to
    corosync's derivation from the token, floored (see default_knet_ping_timers)."""

    token_ms: int
    consensus_ms: int
    cluster_name: str
    knet_ping_interval_ms: int
    knet_ping_timeout_ms: int


@dataclass(frozen=True)
class Haproxy:
    """HAProxy frontend, stats page, health check and timeouts."""

    frontend_port: int
    stats_port: int
    metrics_port: int
    stats_user: str
    health_check: str
    health_check_path: str
    check_interval_ms: int
    check_fall: int
    check_rise: int
    timeout_connect_ms: int
    timeout_client_ms: int
    timeout_server_ms: int
    timeout_check_ms: int
    dns_resolve_interval_s: int


@dataclass(frozen=True)
class Pacemaker:
    """Resource timers: monitor intervals in whole seconds (Pacemaker counts in seconds)."""

    vip_monitor_s: int
    vip_drain_ms: int
    haproxy_monitor_s: int
    stickiness: int
    vip_placement: str
    drain_without_peer: str
    backend_health_hold_s: int


@dataclass(frozen=True)
class Settings:
    """Everything the program needs from the stack's configuration, validated."""

    vip: ipaddress.IPv4Address
    nodes: tuple[Node, ...]
    masters: tuple[Master, ...]
    network: Network
    libvirt_uri: str
    domain_type: str
    base_image: str
    storage_pool: str
    ssh_user: str
    interface: str
    vm: Vm
    corosync: Corosync
    haproxy: Haproxy
    pacemaker: Pacemaker

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


def default_nodeid(name: str) -> int:
    """A corosync node id derived from the node name: the same whatever the node's place in the list."""
    return 1 + int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big") % spec.MAX_NODEID


class _Reader:
    """Reads typed values from a raw config mapping, collecting problems instead of raising."""

    def __init__(self, raw: Mapping[str, Any]):
        self.raw = raw
        self.problems: list[str] = []
        # Addresses whose places (the VIP, the nodes) are read after them: checked at the end.
        self.later: list[tuple[str, str, Any, Optional[str], str]] = []

    def fail(self, key: str, msg: str) -> None:
        self.problems.append(f"{NAMESPACE}:{key}: {msg}")

    def unknown(self, src: Mapping[str, Any], section: str, label: str) -> None:
        """Report keys of src the spec does not know in section."""
        known = spec.keys_in(section)
        for extra in sorted(map(str, set(src) - known)):
            where = f"{label}.{extra}" if label else extra
            self.fail(where, f"unknown setting (known: {', '.join(sorted(known))})" if label else "unknown setting")

    def section(self, key: str) -> Mapping[str, Any]:
        value = self.raw.get(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.fail(key, f"must be an object, got {_kind_of(value)}")
            return {}
        self.unknown(value, key, key)
        return value

    def value(self, key: str, src: Optional[Mapping[str, Any]] = None, label: Optional[str] = None,
              default: Any = None) -> Any:
        """The value of spec key in src (the top level by default), checked; None if missing or bad.

        default replaces a spec default that depends on other settings."""
        s = spec.setting(key)
        src = self.raw if src is None else src
        label = label or key
        if s.name not in src or src[s.name] is None:
            if s.required:
                self.fail(label, "is required")
                return None
            return s.default if default is None else default
        return _CHECKS[s.kind](self, s, src[s.name], label)

    def section_values(self, section: str, src: Mapping[str, Any], **derived: Any) -> dict[str, Any]:
        """Every plain setting of a section by its Settings field; derived gives computed defaults."""
        return {s.attr: self.value(s.key, src, default=derived.get(s.attr))
                for s in spec.SPEC if s.section == section and s.attr}


def _kind_of(value: Any) -> str:
    return {bool: "a boolean", int: "a number", float: "a number", list: "a list", dict: "an object",
            str: "a string"}.get(type(value), type(value).__name__)


def _check_string(r: _Reader, s: Setting, value: Any, label: str) -> Optional[str]:
    if not isinstance(value, str) or not value:
        r.fail(label, f"must be a non-empty string, got {value!r}")
        return None
    if value != value.strip():
        r.fail(label, f"has leading or trailing white space: {value!r}")
        return None
    if s.pattern and not re.fullmatch(s.pattern, value):
        r.fail(label, f"{value!r} is not valid: {s.pattern_doc}")
        return None
    return value


def _check_integer(r: _Reader, s: Setting, value: Any, label: str) -> Optional[int]:
    # Pulumi hands top-level values over as strings; objects keep their YAML numbers.
    if isinstance(value, bool) or not isinstance(value, (int, str)) or (
            isinstance(value, str) and not re.fullmatch(r"-?[0-9]+", value)):
        r.fail(label, f"must be an integer, got {value!r}")
        return None
    number = int(value)
    assert s.lo is not None and s.hi is not None, f"{s.key}: an integer setting has bounds in the spec"
    if not s.lo <= number <= s.hi:
        r.fail(label, f"must be between {s.lo} and {s.hi}, got {number}")
        return None
    return number


def _check_choice(r: _Reader, s: Setting, value: Any, label: str) -> Optional[str]:
    if value not in s.choices:
        r.fail(label, f"must be one of {', '.join(s.choices)}, got {value!r}")
        return None
    return value


def _check_ipv4(r: _Reader, s: Optional[Setting], value: Any, label: str) -> Optional[ipaddress.IPv4Address]:
    try:
        if not isinstance(value, str):
            raise ValueError
        return ipaddress.IPv4Address(value)
    except ValueError:
        r.fail(label, f"is not an IPv4 address: {value!r}")
        return None


def _check_network(r: _Reader, s: Setting, value: Any, label: str) -> Optional[ipaddress.IPv4Network]:
    try:
        if not isinstance(value, str):
            raise ValueError("not a string")
        cidr = ipaddress.IPv4Network(value, strict=True)
    except ValueError as err:
        r.fail(label, f"is not an IPv4 network: {value!r} ({err})")
        return None
    for bad, what in ((cidr.prefixlen < 8, "is larger than a /8"),
                      (cidr.prefixlen > 29, "is too small for two nodes, a gateway and a VIP"),
                      (cidr.is_loopback, "is a loopback network"),
                      (cidr.is_link_local, "is link-local (169.254.0.0/16)"),
                      (cidr.is_multicast, "is a multicast network"),
                      (cidr.subnet_of(ipaddress.IPv4Network("0.0.0.0/8")), "is inside 0.0.0.0/8 (\"this network\")"),
                      (cidr.subnet_of(ipaddress.IPv4Network("240.0.0.0/4")), "is reserved (240.0.0.0/4)")):
        if bad:
            r.fail(label, f"{cidr} {what}")
            return None
    return cidr


def _check_list(r: _Reader, s: Setting, value: Any, label: str) -> Optional[list]:
    if not isinstance(value, list) or not value:
        r.fail(label, f"must be a non-empty list, got {value!r}")
        return None
    return value


def _check_secret(r: _Reader, s: Setting, value: Any, label: str) -> Optional[GivenSecret]:
    given = value if isinstance(value, GivenSecret) else GivenSecret(value if isinstance(value, str) else None,
                                                                    encrypted=False)
    if not given.encrypted:
        r.fail(label, f"is stored in plain text: set it with `pulumi config set --secret {NAMESPACE}:{s.key}`")
    if not given.encrypted and given.value is None:
        r.fail(label, f"must be a string, got {_kind_of(value)}")
        return None
    if given.value is not None:
        problem = _SECRET_RULES[s.key](given.value)
        if problem:
            r.fail(label, problem)  # the rule's words, never the value
            return None
    return given


def _stats_password_problem(value: str) -> Optional[str]:
    s = spec.setting("statsPassword")
    assert s.pattern is not None, "statsPassword has a pattern in the spec"
    return None if re.fullmatch(s.pattern, value) else f"must be {s.pattern_doc}"


def _authkey_problem(value: str) -> Optional[str]:
    try:
        key = base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        return "is not base64"
    if not spec.AUTHKEY_MIN_BYTES <= len(key) <= spec.AUTHKEY_MAX_BYTES:
        return (f"decodes to {len(key)} bytes; corosync needs {spec.AUTHKEY_MIN_BYTES} to "
                f"{spec.AUTHKEY_MAX_BYTES} (corosync-keygen makes 256)")
    return None


def _ssh_key_problem(value: str) -> Optional[str]:
    from cryptography.hazmat.primitives import serialization

    try:
        serialization.load_ssh_private_key(value.encode(), password=None)
    except (ValueError, TypeError, UnicodeEncodeError) as err:
        reason = "it is encrypted" if "password" in str(err).lower() else "it does not parse"
        return f"is not an unencrypted OpenSSH private key ({reason})"
    return None


_CHECKS = {spec.STRING: _check_string, spec.INTEGER: _check_integer, spec.CHOICE: _check_choice,
           spec.IPV4: _check_ipv4, spec.NETWORK: _check_network, spec.LIST: _check_list,
           spec.SECRET: _check_secret}
_SECRET_RULES = {"statsPassword": _stats_password_problem, "corosyncAuthkey": _authkey_problem,
                 "sshPrivateKey": _ssh_key_problem}


def _network(r: _Reader) -> Optional[Network]:
    src = r.section("network")
    mode = r.value("network.mode", src)
    name = r.value("network.name", src)
    if mode == "existing" and "name" not in src:
        r.fail("network.name", "is required when network.mode is existing (the libvirt network to join)")
    cidr = r.value("network.cidr", src, "network.cidr")
    first = next(cidr.hosts()) if cidr is not None else None
    gateway = r.value("network.gateway", src, default=first)
    if gateway is not None and cidr is not None:
        if not _check_address(r, "network.gateway", "network.gateway", gateway, _Places(cidr)):
            gateway = None
        elif mode == "create" and gateway != first:
            # A network libvirt creates always routes through its first host address.
            r.fail("network.gateway", f"must be {first} (the first address) when network.mode is create")
    dns: list[ipaddress.IPv4Address] = []
    dns_raw = r.value("network.dnsServers", src, default=[gateway] if gateway else [])
    for i, item in enumerate(dns_raw or []):
        label = f"network.dnsServers[{i}]"
        addr = item if isinstance(item, ipaddress.IPv4Address) else _check_ipv4(r, None, item, label)
        if addr is None:
            continue
        if "dnsServers" in src:
            r.later.append(("network.dnsServers", label, addr, None, ""))
        dns.append(addr)
    domain = r.value("network.domain", src)
    hosts = _dns_hosts(r, src, mode)
    if None in (mode, name, cidr, gateway, domain) or (dns_raw and len(dns) != len(dns_raw)):
        return None
    return Network(mode, name, cidr, gateway, tuple(dns), domain, hosts)


def _dns_hosts(r: _Reader, src: Mapping[str, Any], mode: Optional[str]) -> tuple[DnsHost, ...]:
    items = _items(r, "network.dnsHosts", src)
    if items and mode == "existing":
        # An existing network's DNS is the operator's: hapx cannot add entries to it.
        r.fail("network.dnsHosts", "is only served by a network the stack creates (network.mode: create)")
        return ()
    hosts = []
    for label, item in items:
        name = r.value("network.dnsHosts[].name", item, f"{label}.name")
        address = r.value("network.dnsHosts[].address", item, f"{label}.address")
        if name is not None and address is not None:
            r.later.append(("network.dnsHosts[].address", f"{label}.address", address, name, f"{label}.name"))
            hosts.append(DnsHost(name.lower(), address))
    _unique(r, "network.dnsHosts", "name", [h.name for h in hosts])
    return tuple(hosts)


def _items(r: _Reader, key: str, src: Optional[Mapping[str, Any]] = None) -> list[tuple[str, Mapping[str, Any]]]:
    """The objects of a list setting (in src, the top level by default), each with its label
    (`nodes[0]`); bad items reported."""
    raw = r.value(key, src)
    items = []
    for i, item in enumerate(raw or []):
        label = f"{key}[{i}]"
        if not isinstance(item, Mapping):
            r.fail(label, f"must be an object ({', '.join(sorted(spec.keys_in(key + '[]')))}), got {item!r}")
            continue
        r.unknown(item, key + "[]", label)
        items.append((label, item))
    return items


def _nodes(r: _Reader, network: Optional[Network]) -> tuple[Node, ...]:
    items = _items(r, "nodes")
    count = len(r.raw.get("nodes") or []) if isinstance(r.raw.get("nodes"), list) else 0
    if 0 < count < 2:
        r.fail("nodes", f"needs at least two nodes for a highly available pair, got {count}")
    if count > 16:
        r.fail("nodes", f"at most 16 nodes are supported, got {count}")
    nodes = []
    for label, item in items:
        name = r.value("nodes[].name", item, f"{label}.name")
        if name in RESERVED_HOST_NAMES:
            r.fail(f"{label}.name", f"{name!r} is reserved for the loopback address")
            name = None
        elif name is not None and name.isdigit():
            # RFC 1123 2.1: a host name is never all-numeric (and Pacemaker's tools take numbers as node ids).
            r.fail(f"{label}.name", f"{name!r} is all digits: a host name needs a letter or '-'")
            name = None
        ip = r.value("nodes[].ip", item, f"{label}.ip")
        mac = r.value("nodes[].mac", item, f"{label}.mac", default=default_mac(name) if name else None)
        if mac is not None:
            mac = mac.lower()
            if not re.fullmatch(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", mac):
                r.fail(f"{label}.mac", f"is not a MAC address (xx:xx:xx:xx:xx:xx): {item.get('mac')!r}")
                mac = None
            elif int(mac[:2], 16) & 1:
                r.fail(f"{label}.mac", f"{mac} is a multicast address")
                mac = None
            elif mac == "00:00:00:00:00:00":
                r.fail(f"{label}.mac", f"{mac} is not a usable address")
                mac = None
        nodeid = r.value("nodes[].nodeid", item, f"{label}.nodeid", default=default_nodeid(name) if name else None)
        if network is not None and ip is not None:
            _check_address(r, "nodes[].ip", f"{label}.ip", ip, _places(network))
        if None not in (name, ip, mac, nodeid):
            nodes.append(Node(name, ip, mac, nodeid))
    _unique(r, "nodes", "name", [n.name for n in nodes])
    _unique(r, "nodes", "ip", [str(n.ip) for n in nodes])
    _unique(r, "nodes", "mac", [n.mac for n in nodes])
    seen: dict[int, str] = {}
    for n in nodes:
        if n.nodeid in seen and seen[n.nodeid] != n.name:
            r.fail("nodes", f"duplicate nodeid {n.nodeid} (nodes {seen[n.nodeid]} and {n.name}): "
                            "give one of them an explicit nodeid")
        seen[n.nodeid] = n.name
    return tuple(nodes)


def _unique(r: _Reader, key: str, attr: str, values: list[str]) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            r.fail(key, f"duplicate {attr} {value!r}")
        seen.add(value)


def _masters(r: _Reader, places: _Places) -> tuple[Master, ...]:
    masters = []
    for label, item in _items(r, "masters"):
        name = r.value("masters[].name", item, f"{label}.name")
        address = r.value("masters[].address", item, f"{label}.address", default=name)
        if address is not None:
            address = _master_address(r, f"{label}.address", address, places)
        port = r.value("masters[].port", item, f"{label}.port")
        if None not in (name, address, port):
            masters.append(Master(name, address, port))
    _unique(r, "masters", "name", [m.name for m in masters])
    _unique(r, "masters", "endpoint", [m.endpoint for m in masters])
    return tuple(masters)


def _master_address(r: _Reader, label: str, address: str, places: _Places) -> Optional[str]:
    try:
        value: Any = ipaddress.IPv4Address(address)
    except ValueError:
        # The C resolver HAProxy uses reads 10.1, 0x7f000001 or 010.0.0.1 as IPv4 addresses,
        # and no top-level domain is numeric: such a "name" would slip past the address rules.
        if not re.fullmatch(spec.DNS_NAME, address) or re.fullmatch(r"[0-9]+|0x[0-9a-f]+",
                                                                    address.rsplit(".", 1)[-1], re.I):
            r.fail(label, f"is neither an IPv4 address nor a host name: {address!r}")
            return None
        value = address
    return address if _check_address(r, "masters[].address", label, value, places) else None


@dataclass(frozen=True)
class _Places:
    """The stack's own addresses, as far as they are read: what Setting.not_at names."""

    cidr: Optional[ipaddress.IPv4Network] = None
    gateway: Optional[ipaddress.IPv4Address] = None
    vip: Optional[ipaddress.IPv4Address] = None
    nodes: tuple[Node, ...] = ()
    domain: Optional[str] = None

    def node_named(self, name: str) -> Optional[Node]:
        """The node a host name is (its name, or its name in network.domain), if any."""
        name = name.lower()
        return next((n for n in self.nodes if name in (n.name, f"{n.name}.{self.domain}")), None)


def _places(network: Optional[Network], vip: Optional[ipaddress.IPv4Address] = None,
            nodes: tuple[Node, ...] = ()) -> _Places:
    if network is None:
        return _Places(vip=vip, nodes=nodes)
    return _Places(network.cidr, network.gateway, vip, nodes, network.domain)


def _check_address(r: _Reader, key: str, label: str, value: Any, places: _Places,
                   host: Optional[str] = None, host_label: str = "") -> bool:
    """Apply the rules spec names for key (Setting.not_at) to one address, or host name, given at
    label; host is the name it is the entry of (Setting.host_field). False after reporting a problem."""
    s = spec.setting(key)
    loop = f": {s.loop_doc}" if s.loop_doc else ""
    ok = True
    if host is not None and NODE in s.not_at:
        node = places.node_named(host)
        if node is not None and node.ip != value:
            r.fail(host_label, f"{host!r} is the name of node {node.name}, whose address is {node.ip}, not {value}")
            ok = False
    if isinstance(value, str):
        # A host name: the ones the stack itself gives meaning to (the nodes' /etc/hosts, localhost).
        node = places.node_named(value)
        if SELF in s.not_at and (value.lower() == "localhost" or value.lower().endswith(".localhost")):
            r.fail(label, f"{value!r} is the node itself{loop}")
        elif NODE in s.not_at and node is not None:
            r.fail(label, f"{value!r} is the name of node {node.name}{loop}")
        else:
            return ok
        return False
    cidr = places.cidr
    at_node = next((n for n in places.nodes if n.ip == value), None)
    if at_node is not None and host is not None and places.node_named(host) == at_node:
        at_node = None  # the node's own entry
    rules = (
        (OUTSIDE, cidr is not None and value not in cidr, f"{value} is outside network.cidr {cidr}"),
        (EDGE, cidr is not None and value in (cidr.network_address, cidr.broadcast_address),
         f"{value} is the network or broadcast address of {cidr}"),
        (SELF, value.is_loopback or value.is_unspecified, f"{value} is the node itself{loop}"),
        (NON_HOST, value.is_multicast or value.is_reserved or value == BROADCAST,
         f"{value} is not a host address (multicast, broadcast or reserved)"),
        (GATEWAY, value == places.gateway, f"{value} is the gateway address"),
        (VIP, value == places.vip, f"{value} is the VIP{loop}"),
        (NODE, at_node is not None, f"{value} is the address of node {at_node.name if at_node else ''}{loop}"),
    )
    problem = next((msg for place, bad, msg in rules if place in s.not_at and bad), None)
    if problem:
        r.fail(label, problem)
        return False
    return ok


def _vip(r: _Reader, network: Optional[Network], nodes: tuple[Node, ...]) -> Optional[ipaddress.IPv4Address]:
    vip = r.value("vip")
    if vip is not None:
        _check_address(r, "vip", "vip", vip, _places(network, nodes=nodes))
    return vip


def _corosync(r: _Reader, node_count: int) -> Optional[Corosync]:
    src = r.section("corosync")
    token = r.value("corosync.tokenMs", src) or DEFAULT_TOKEN_MS
    runtime = corosync_runtime_token_ms(token, node_count)
    interval_default, timeout_default = default_knet_ping_timers(token, node_count)
    values = r.section_values("corosync", src, consensus_ms=default_consensus_ms(runtime),
                              knet_ping_interval_ms=interval_default, knet_ping_timeout_ms=timeout_default)
    consensus = values["consensus_ms"]
    if consensus is not None and consensus <= runtime:
        extra = "" if runtime == token else (
            f" + {node_count - 2} x {COROSYNC_TOKEN_COEFFICIENT_MS} ms token_coefficient for {node_count} nodes")
        r.fail("corosync.consensusMs",
               f"must be greater than the runtime token ({runtime} ms: corosync.tokenMs {token}{extra}), "
               f"got {consensus}")
    ping_interval, ping_timeout = values["knet_ping_interval_ms"], values["knet_ping_timeout_ms"]
    if ping_interval is not None and ping_timeout is not None:
        _knet_rules(r, src, ping_interval, ping_timeout)
    if None in values.values():
        return None
    return Corosync(**values)


def _knet_rules(r: _Reader, src: Mapping[str, Any], ping_interval: int, ping_timeout: int) -> None:
    # corosync.conf(5): the two are a pair. One given alone is checked against the other's default.
    timeout_given = "knetPingTimeoutMs" in src
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


def _haproxy(r: _Reader) -> Optional[Haproxy]:
    values = r.section_values("haproxy", r.section("haproxy"))
    ports = (("frontend_port", "haproxy.frontendPort"), ("stats_port", "haproxy.statsPort"),
             ("metrics_port", "haproxy.metricsPort"))
    for i, (attr, key) in enumerate(ports):
        if values[attr] == SSH_PORT:
            r.fail(key, f"{SSH_PORT} is sshd's port on the nodes: HAProxy could not bind it")
        for other_attr, other_key in ports[:i]:
            if values[attr] is not None and values[attr] == values[other_attr]:
                r.fail(key, f"must differ from {other_key} ({values[other_attr]})")
    return None if None in values.values() else Haproxy(**values)


def _section(r: _Reader, section: str, cls: type) -> Any:
    values = r.section_values(section, r.section(section))
    return None if None in values.values() else cls(**values)


def _ssh_user(r: _Reader) -> Optional[str]:
    user = r.value("sshUser")
    if user == "root":
        r.fail("sshUser", "must not be root (root logins are disabled on the nodes)")
    elif user in SYSTEM_USERS or (user or "").startswith("systemd-"):
        r.fail("sshUser", f"{user!r} is a system account on the nodes; it must not get passwordless sudo")
    else:
        return user
    return None


def _interface(r: _Reader) -> Optional[str]:
    name = r.value("interface")
    if name in RESERVED_INTERFACES:
        r.fail("interface", f"{name!r} is reserved (the loopback or a kernel name), not the node's NIC")
        return None
    return name


def foreign_key_problems(config_keys: Iterable[str]) -> list[str]:
    """Problems for stack config keys that look like hapx settings under another namespace."""
    problems = []
    for full in sorted(config_keys):
        ns, _, key = full.partition(":")
        if ns not in (NAMESPACE, *spec.PROVIDER_NAMESPACES) and key.split(".")[0] in spec.TOP_LEVEL_KEYS:
            problems.append(f"{full}: not read: hapx reads its settings from the `{NAMESPACE}:` namespace "
                            f"(did you mean {NAMESPACE}:{key}?)")
    return problems


def local_problems(settings: Settings, base_dir: str) -> list[str]:
    """Problems only this machine can see: a local baseImage that is not a readable file."""
    image = settings.base_image
    if re.match(r"^[a-z][a-z0-9+]*://", image) and not image.startswith("file://"):
        return []
    path = os.path.join(base_dir, image.removeprefix("file://"))
    if not os.path.isfile(path) or not os.access(path, os.R_OK):
        return [f"{NAMESPACE}:baseImage: {image!r} is not a readable file (relative paths are from {base_dir})"]
    return []


def settings_from_dict(raw: Mapping[str, Any], other_keys: Iterable[str] = ()) -> Settings:
    """Build Settings from the stack's `hapx:` config (keys without the namespace); raise SettingsError.

    Secrets may be given as GivenSecret (a bare string is taken as set in plain text): they are
    checked, never kept. other_keys are the stack's config keys outside `hapx:`, for typos."""
    r = _Reader(raw)
    r.problems.extend(foreign_key_problems(other_keys))
    if not isinstance(raw, Mapping):
        raise SettingsError([f"{NAMESPACE}: the configuration must be an object, got {_kind_of(raw)}"])
    r.unknown(raw, "", "")
    network = _network(r)
    nodes = _nodes(r, network)
    vip = _vip(r, network, nodes)
    places = _places(network, vip, nodes)
    for key, label, value, host, host_label in r.later:
        _check_address(r, key, label, value, places, host, host_label)
    masters = _masters(r, places)
    top = dict(libvirt_uri=r.value("libvirtUri"), domain_type=r.value("domainType"),
               base_image=r.value("baseImage"), storage_pool=r.value("storagePool"),
               ssh_user=_ssh_user(r), interface=_interface(r))
    vm = _section(r, "vm", Vm)
    corosync = _corosync(r, max(2, len(nodes)))
    haproxy = _haproxy(r)
    pacemaker = _section(r, "pacemaker", Pacemaker)
    for key in spec.SECRET_KEYS:
        r.value(key)
    if r.problems:
        raise SettingsError(r.problems)
    # No problems: every section was read, so none of these is missing.
    assert vip is not None and network is not None and corosync is not None and haproxy is not None
    return Settings(vip=vip, nodes=nodes, masters=masters, network=network, vm=vm, corosync=corosync,
                    haproxy=haproxy, pacemaker=pacemaker, **top)


def load_stack_file(path: str) -> dict[str, Any]:
    """Read a Pulumi.<stack>.yaml and return its `hapx:` config without the namespace prefix."""
    from hapx import stackfile

    return stackfile.read(path).hapx
