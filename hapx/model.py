"""The stack's settings as typed values: what the rest of the program reads, and the defaults derived per node.

hapx.settings builds a Settings from the stack's configuration; everything else takes it from here.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from typing import Optional

from hapx import spec


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


@dataclass(frozen=True)
class Corosync:
    """Totem timers (ms). consensus must exceed the runtime token; knet's ping timers default to
    corosync's derivation from the token, floored (see hapx.timers)."""

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

