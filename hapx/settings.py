"""Typed, validated stack settings: the reader of the stack's `hapx:` configuration and its cross-setting rules.

The keys, defaults and single-value rules come from hapx.spec (checked by hapx.checks), the
types from hapx.model, the timer arithmetic from hapx.timers; the rules that tie several
settings together are written below. Every problem is collected, each naming its `hapx:` key,
and reported at once, before anything is created.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Optional

from hapx import scores, spec
from hapx.checks import Reader, check_ipv4, kind_of
from hapx.model import (
    Corosync,
    DnsHost,
    Haproxy,
    Master,
    Network,
    Node,
    Pacemaker,
    Settings,
    SettingsError,
    Vm,
    default_mac,
    default_nodeid,
)
from hapx.spec import EDGE, GATEWAY, NAMESPACE, NODE, NON_HOST, OUTSIDE, SELF, VIP
from hapx.timers import (
    COROSYNC_TOKEN_COEFFICIENT_MS,
    DEFAULT_TOKEN_MS,
    KNET_JITTER_MARGIN_MS,
    KNET_TICK_MS,
    corosync_runtime_token_ms,
    default_consensus_ms,
    default_knet_ping_timers,
    min_knet_ping_timeout_ms,
)

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


def _network(r: Reader) -> Optional[Network]:
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
        addr = item if isinstance(item, ipaddress.IPv4Address) else check_ipv4(r, None, item, label)
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


def _dns_hosts(r: Reader, src: Mapping[str, Any], mode: Optional[str]) -> tuple[DnsHost, ...]:
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


def _items(r: Reader, key: str, src: Optional[Mapping[str, Any]] = None) -> list[tuple[str, Mapping[str, Any]]]:
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


def _nodes(r: Reader, network: Optional[Network]) -> tuple[Node, ...]:
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


def _unique(r: Reader, key: str, attr: str, values: list[str]) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            r.fail(key, f"duplicate {attr} {value!r}")
        seen.add(value)


def _masters(r: Reader, places: _Places) -> tuple[Master, ...]:
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


def _master_address(r: Reader, label: str, address: str, places: _Places) -> Optional[str]:
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


def _check_address(r: Reader, key: str, label: str, value: Any, places: _Places,
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


def _vip(r: Reader, network: Optional[Network], nodes: tuple[Node, ...]) -> Optional[ipaddress.IPv4Address]:
    vip = r.value("vip")
    if vip is not None:
        _check_address(r, "vip", "vip", vip, _places(network, nodes=nodes))
    return vip


def _corosync(r: Reader, node_count: int) -> Optional[Corosync]:
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


def _knet_rules(r: Reader, src: Mapping[str, Any], ping_interval: int, ping_timeout: int) -> None:
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


def _haproxy(r: Reader) -> Optional[Haproxy]:
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


def _section(r: Reader, section: str, cls: type) -> Any:
    values = r.section_values(section, r.section(section))
    return None if None in values.values() else cls(**values)


def _ssh_user(r: Reader) -> Optional[str]:
    user = r.value("sshUser")
    if user == "root":
        r.fail("sshUser", "must not be root (root logins are disabled on the nodes)")
    elif user in SYSTEM_USERS or (user or "").startswith("systemd-"):
        r.fail("sshUser", f"{user!r} is a system account on the nodes; it must not get passwordless sudo")
    else:
        return user
    return None


def _interface(r: Reader) -> Optional[str]:
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
    r = Reader(raw)
    r.problems.extend(foreign_key_problems(other_keys))
    if not isinstance(raw, Mapping):
        raise SettingsError([f"{NAMESPACE}: the configuration must be an object, got {kind_of(raw)}"])
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
    settings = Settings(vip=vip, nodes=nodes, masters=masters, network=network, vm=vm, corosync=corosync,
                        haproxy=haproxy, pacemaker=pacemaker, **top)
    problem = _score_ceiling_problem(settings)
    if problem:
        raise SettingsError([problem])
    return settings


def _score_ceiling_problem(settings: Settings) -> Optional[str]:
    """Stickiness so high that the VIP's score on its node reaches Pacemaker's INFINITY: the
    drain's preference for the other nodes then only ties it, and neither a lost master nor a
    failed HAProxy moves the VIP (hapx/scores.py)."""
    def highest(stickiness: int) -> int:
        return scores.highest_vip_score(replace(settings, pacemaker=replace(settings.pacemaker, stickiness=stickiness)))

    p = settings.pacemaker
    total = highest(p.stickiness)
    if total < scores.PCMK_INFINITY:
        return None
    low, high = 0, p.stickiness  # the highest stickiness under the ceiling: highest() grows with it
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if highest(mid) < scores.PCMK_INFINITY else (low, mid - 1)
    return (f"{NAMESPACE}:pacemaker.stickiness: {p.stickiness} puts the VIP's score on its node at {total} "
            f"with {len(settings.masters)} masters and vipPlacement {p.vip_placement}, at or above Pacemaker's "
            f"INFINITY ({scores.PCMK_INFINITY}): a drain, a lost master or a failed HAProxy could no longer move "
            f"the VIP; at most {low} here")
