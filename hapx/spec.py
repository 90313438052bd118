"""The stack's settings, each written once: its key, default, rule and documentation.

hapx.settings reads and checks the configuration from this table; the known keys, the
secrets, the structured keys and the README's settings table all come from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

NAMESPACE = "hapx"
DEBIAN_12_IMAGE = (
    "https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-generic-amd64.qcow2"
)

# Kinds of value. The reader checks each kind the same way; rules that involve several
# settings (a node's address inside the network, consensus above the token) are in
# hapx.settings.
STRING, INTEGER, CHOICE, IPV4, NETWORK, LIST, SECRET = (
    "string", "integer", "choice", "ipv4", "network", "list", "secret")


class Required:
    """The default of a setting that has none: it must be given."""

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = Required()

# Places an address setting must not point at (Setting.not_at): where nothing answers as the
# setting means. hapx.settings checks every address setting against its own places, one rule each.
OUTSIDE, EDGE, GATEWAY, VIP, NODE, SELF, NON_HOST = (
    "outside", "edge", "gateway", "vip", "node", "self", "non-host")
PLACE_DOC = {
    OUTSIDE: "outside `network.cidr`",
    SELF: "the node itself (loopback, `0.0.0.0`, `localhost`)",
    VIP: "the VIP",
    NODE: "a node",
    GATEWAY: "the gateway",
    EDGE: "the cidr's network or broadcast address",
    NON_HOST: "a multicast, broadcast or reserved address",
}
# Where a client connects (HAProxy to a master, a node to its resolver, a name to its host): the
# address must be another host's.
ANOTHER_HOST = (SELF, NON_HOST, EDGE, VIP, NODE)


@dataclass(frozen=True)
class Setting:
    """One configuration key: `section.name`, `list[].field` or a top-level name."""

    key: str
    kind: str
    default: Any
    doc: str
    attr: str = ""  # the Settings field it fills ("" where the reader builds it by hand)
    lo: Optional[int] = None
    hi: Optional[int] = None
    choices: tuple[str, ...] = ()
    pattern: Optional[str] = None  # a regular expression the whole value must match
    pattern_doc: str = ""  # what the pattern allows, in words, for the error message
    default_doc: Optional[str] = None  # the README's default, where the value alone says too little
    not_at: tuple[str, ...] = ()  # for an address (or a list of them): the places it must not point at
    loop_doc: str = ""  # what follows when it points at the pair itself (the VIP, a node, the node itself)
    host_field: str = ""  # the item's field the address is the host entry of: a node's own entry is its address

    @property
    def section(self) -> str:
        """The object the key sits in ("" at the top, "nodes[]" for a list item's field)."""
        return self.key.rpartition(".")[0]

    @property
    def name(self) -> str:
        """The key inside its section."""
        return self.key.rpartition(".")[2]

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def full_doc(self) -> str:
        """The documentation with the places the address must not point at (the README's meaning)."""
        if not self.not_at:
            return self.doc
        places = [PLACE_DOC[p] for p in PLACE_DOC if p in self.not_at and p != OUTSIDE]
        if NODE in self.not_at and self.host_field:
            places[places.index(PLACE_DOC[NODE])] = "a node (but for the node's own entry)"
        rules = ["inside `network.cidr`"] if OUTSIDE in self.not_at else []
        if places:
            rules.append("not " + (", ".join(places[:-1]) + " or " if places[1:] else "") + places[-1])
        return f"{self.doc}; {', '.join(rules)}"


# Patterns shared by several settings.
HOST_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
HOST_LABEL_DOC = "lower-case letters, digits and '-', at most 63, not starting or ending with '-'"
DNS_NAME = r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
LIBVIRT_NAME = r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}"
LIBVIRT_NAME_DOC = "up to 64 letters, digits, '_', '.', '+' or '-', starting with a letter or digit"
MIN_TOKEN_MS, MIN_CONSENSUS_MS = 300, 360
# libknet's node id is 16 bits wide (corosync refuses larger ones with knet, corosync#651).
MAX_NODEID = 65535
# corosync-keygen's allowed range (corosync-keygen(8)).
AUTHKEY_MIN_BYTES, AUTHKEY_MAX_BYTES = 128, 4096

SPEC: tuple[Setting, ...] = (
    Setting("vip", IPV4, REQUIRED, "the floating address", not_at=(OUTSIDE, EDGE, GATEWAY, NODE)),
    Setting("nodes", LIST, REQUIRED, "the cluster's members, at least two (fields below)"),
    Setting("nodes[].name", STRING, REQUIRED, "host name (and Pacemaker node name); not `localhost`",
            pattern=HOST_LABEL, pattern_doc=HOST_LABEL_DOC),
    Setting("nodes[].ip", IPV4, REQUIRED, "fixed address", not_at=(OUTSIDE, EDGE, GATEWAY)),
    Setting("nodes[].mac", STRING, None, "fixed MAC of the NIC (unicast, not all zero)",
            default_doc="a stable `52:54:00:…` derived from the name"),
    Setting("nodes[].nodeid", INTEGER, None, "corosync node id; stable, so removing a node renumbers nothing",
            lo=1, hi=MAX_NODEID, default_doc="derived from the name (1-65535)"),
    Setting("masters", LIST, REQUIRED, "the Kubernetes API servers HAProxy balances (fields below)"),
    Setting("masters[].name", STRING, REQUIRED, "server name in HAProxy",
            pattern=HOST_LABEL, pattern_doc=HOST_LABEL_DOC),
    Setting("masters[].address", STRING, None,
            "IPv4 address or host name resolved on the nodes", default_doc="the name",
            not_at=ANOTHER_HOST, loop_doc="HAProxy would proxy to itself"),
    Setting("masters[].port", INTEGER, 6443, "API server port", lo=1, hi=65535),
    Setting("network.mode", CHOICE, "create",
            "`create` a NAT libvirt network, or use an `existing` one by `network.name` "
            "(keep the nodes' addresses and the VIP out of its DHCP range)",
            choices=("create", "existing")),
    Setting("network.name", STRING, "hapx", "libvirt network name (required with `existing`)",
            pattern=LIBVIRT_NAME, pattern_doc=LIBVIRT_NAME_DOC),
    Setting("network.cidr", NETWORK, REQUIRED,
            "the node subnet, e.g. `192.168.4.0/24`: /8 to /29, not loopback, link-local or multicast"),
    Setting("network.gateway", IPV4, None, "default route for the nodes",
            default_doc="first host of the cidr", not_at=(OUTSIDE, EDGE)),
    Setting("network.dnsServers", LIST, None, "resolvers for the nodes", default_doc="`[gateway]`",
            not_at=ANOTHER_HOST, loop_doc="nothing answers DNS there"),
    Setting("network.domain", STRING, "hapx.local", "DNS domain of the nodes",
            pattern=DNS_NAME, pattern_doc="a DNS domain name"),
    Setting("network.dnsHosts", LIST, None,
            "host entries the DNS of the network the stack creates serves, as NAME and "
            "NAME.`domain` (e.g. the masters' names; only with `create`)", default_doc="none"),
    Setting("network.dnsHosts[].name", STRING, REQUIRED, "a host name",
            pattern=DNS_NAME, pattern_doc="a DNS name"),
    Setting("network.dnsHosts[].address", IPV4, REQUIRED, "its IPv4 address",
            not_at=ANOTHER_HOST, loop_doc="a master given by this name would make HAProxy proxy to itself",
            host_field="name"),
    Setting("libvirtUri", STRING, "qemu:///system", "libvirt connection",
            pattern=r"[a-z][a-z0-9]*(\+[a-z0-9]+)?://[^\s'\"\\]*",
            pattern_doc="a libvirt URI such as qemu:///system or qemu+ssh://host/system"),
    Setting("domainType", CHOICE, "kvm", "`kvm`, or `qemu` for hosts without usable KVM (software emulation)",
            choices=("kvm", "qemu")),
    Setting("baseImage", STRING, DEBIAN_12_IMAGE,
            "http(s) URL or local path (which must exist) of a qcow2 image",
            pattern=r"[^\s'\"\\]+", pattern_doc="a URL or path without white space, quotes or '\\'",
            default_doc="Debian 12 generic cloud image URL"),
    Setting("storagePool", STRING, "default", "libvirt pool for every volume",
            pattern=LIBVIRT_NAME, pattern_doc=LIBVIRT_NAME_DOC),
    Setting("sshUser", STRING, "debian",
            "the user created on the nodes (with sudo); not root or a system account",
            pattern=r"[a-z_][a-z0-9_-]{0,31}",
            pattern_doc="a user name: lower-case letters, digits, '_' or '-', at most 32"),
    Setting("interface", STRING, "eth0", "the name the nodes give their NIC (matched by MAC); not `lo`",
            pattern=r"[a-z][a-z0-9]{0,14}", pattern_doc="lower-case letters and digits, at most 15"),
    Setting("vm.vcpus", INTEGER, 1, "virtual CPUs of each VM", attr="vcpus", lo=1, hi=64),
    Setting("vm.memoryMiB", INTEGER, 1024, "memory of each VM", attr="memory_mib", lo=384, hi=262144),
    Setting("vm.diskGiB", INTEGER, 10, "disk of each VM", attr="disk_gib", lo=3, hi=4096),
    Setting("corosync.tokenMs", INTEGER, 1000, "totem token timeout (corosync's own default is 3000)",
            attr="token_ms", lo=MIN_TOKEN_MS, hi=60000),
    Setting("corosync.consensusMs", INTEGER, None,
            "totem consensus timeout (must exceed the runtime token: see below)",
            attr="consensus_ms", lo=MIN_CONSENSUS_MS, hi=72000, default_doc="1.2 × runtime token"),
    Setting("corosync.clusterName", STRING, "hapx", "cluster name", attr="cluster_name",
            pattern=r"[A-Za-z0-9_-]{1,32}", pattern_doc="up to 32 letters, digits, '-' or '_'"),
    Setting("corosync.knetPingIntervalMs", INTEGER, None, "how often knet pings the link",
            attr="knet_ping_interval_ms", lo=150, hi=60000, default_doc="from the token (see below)"),
    Setting("corosync.knetPingTimeoutMs", INTEGER, None,
            "after how long without an answer knet declares the link down",
            attr="knet_ping_timeout_ms", lo=300, hi=120000, default_doc="from the token (see below)"),
    Setting("haproxy.frontendPort", INTEGER, 6443, "API frontend on the VIP; not 22 (sshd)",
            attr="frontend_port", lo=1, hi=65535),
    Setting("haproxy.statsPort", INTEGER, 32700, "stats page on the VIP; not 22 or the frontend's",
            attr="stats_port", lo=1, hi=65535),
    Setting("haproxy.metricsPort", INTEGER, 8405,
            "Prometheus metrics (`/metrics`, the stats credentials) on each node's own address; "
            "not 22, the frontend's or the stats page's", attr="metrics_port", lo=1, hi=65535),
    Setting("haproxy.statsUser", STRING, "admin", "stats user", attr="stats_user",
            pattern=r"[A-Za-z0-9_.-]{1,32}", pattern_doc="up to 32 letters, digits, '.', '-' or '_'"),
    Setting("haproxy.healthCheck", CHOICE, "https",
            "`https` (`GET healthCheckPath`, `check-ssl verify none`) or `tcp` (connect only)",
            attr="health_check", choices=("https", "tcp")),
    Setting("haproxy.healthCheckPath", STRING, "/readyz", "path of the HTTPS check", attr="health_check_path",
            pattern=r"/[A-Za-z0-9/_.?=&-]*", pattern_doc="an absolute URL path"),
    Setting("haproxy.checkIntervalMs", INTEGER, 2000, "health check interval", attr="check_interval_ms",
            lo=100, hi=60000),
    Setting("haproxy.checkFall", INTEGER, 3, "failed checks before a master is down", attr="check_fall",
            lo=1, hi=100),
    Setting("haproxy.checkRise", INTEGER, 2, "passed checks before a master is up again", attr="check_rise",
            lo=1, hi=100),
    Setting("haproxy.timeoutConnectMs", INTEGER, 5000, "backend connect timeout", attr="timeout_connect_ms",
            lo=100, hi=120000),
    # API watches stay open for a long time: short client/server timeouts would cut them.
    Setting("haproxy.timeoutClientMs", INTEGER, 4 * 3600 * 1000, "long enough for API watches",
            attr="timeout_client_ms", lo=1000, hi=24 * 3600 * 1000, default_doc="4 h"),
    Setting("haproxy.timeoutServerMs", INTEGER, 4 * 3600 * 1000,
            "long enough for API watches (also `timeout tunnel`)",
            attr="timeout_server_ms", lo=1000, hi=24 * 3600 * 1000, default_doc="4 h"),
    Setting("haproxy.timeoutCheckMs", INTEGER, 2000, "health check timeout", attr="timeout_check_ms",
            lo=100, hi=120000),
    Setting("haproxy.dnsResolveIntervalSeconds", INTEGER, 10,
            "how often HAProxy asks DNS again for a master given by name (`timeout resolve`; "
            "`hold valid` is set the same)", attr="dns_resolve_interval_s", lo=1, hi=3600),
    Setting("pacemaker.vipMonitorSeconds", INTEGER, 10, "VIP monitor interval (whole seconds)",
            attr="vip_monitor_s", lo=2, hi=3600),
    # Bounded by the agent's stop timeout (20 s), which must also cover the rest of the stop.
    Setting("pacemaker.vipDrainMs", INTEGER, 2000,
            "in a planned move, how long the old node keeps the VIP for the connections it already "
            "has (the new node forwards their packets to it) before it resets those still open; "
            "0: no hand-off, they are reset at once (see Failover figures)",
            attr="vip_drain_ms", lo=0, hi=10000),
    Setting("pacemaker.haproxyMonitorSeconds", INTEGER, 5, "HAProxy monitor interval (whole seconds)",
            attr="haproxy_monitor_s", lo=2, hi=3600),
    Setting("pacemaker.stickiness", INTEGER, 100,
            "`rsc_defaults resource-stickiness`; refused where it lifts the VIP's score on its node to "
            "Pacemaker's INFINITY (the error names the highest the stack allows), since then neither a drain "
            "nor a lost master nor a failed HAProxy could move the VIP", attr="stickiness",
            lo=0, hi=1000000),
    Setting("pacemaker.vipPlacement", CHOICE, "sticky",
            "`sticky`: the VIP stays where it is, so a node that comes back does not take it "
            "(no fail-back, established connections kept); `off-dc`: the VIP prefers a node that "
            "is not the DC, so losing the VIP's node needs no DC election, and a node that comes "
            "back takes the VIP over, make-before-break (see Failover figures)",
            attr="vip_placement", choices=("sticky", "off-dc")),
    Setting("pacemaker.drainWithoutPeer", CHOICE, "refuse",
            "what the drain before a VM is rebuilt or redefined does when no other node can take "
            "the VIP (none online with HAProxy running, or the VIP does not move in time): `refuse` "
            "fails `pulumi up` with the node named and the VM untouched; `outage` rebuilds it anyway "
            "and the VIP is down until a node serves it again (see Day 2)",
            attr="drain_without_peer", choices=("refuse", "outage")),
    Setting("pacemaker.backendHealthHoldSeconds", INTEGER, 10,
            "hysteresis of the VIP's backend-health rule: how long a node's count of masters UP (in "
            "its HAProxy) must hold before it counts, so a master flapping faster moves nothing; "
            "0: at the next monitor (see Failover)", attr="backend_health_hold_s", lo=0, hi=3600),
    Setting("statsPassword", SECRET, None,
            "stats page password, given with `--secret`: 12 to 128 letters, digits or `-._~!%*+,/;=?@^`",
            pattern=r"[A-Za-z0-9._~!%*+,/;=?@^-]{12,128}",
            pattern_doc="12 to 128 letters, digits or -._~!%*+,/;=?@^ (no white space, quotes, '#', '$' or '\\')",
            default_doc="generated once per stack"),
    Setting("corosyncAuthkey", SECRET, None,
            f"corosync key, base64, {AUTHKEY_MIN_BYTES} to {AUTHKEY_MAX_BYTES} bytes, given with `--secret`",
            default_doc="generated once per stack"),
    Setting("sshPrivateKey", SECRET, None,
            "the nodes' SSH user key, unencrypted OpenSSH private key, given with `--secret`",
            default_doc="generated once per stack"),
)

BY_KEY = {s.key: s for s in SPEC}
SECTIONS = ("network", "vm", "corosync", "haproxy", "pacemaker")
LISTS = ("nodes", "masters")
# Pulumi gives these as YAML objects (require_object): the sections and the lists.
OBJECT_KEYS = SECTIONS + LISTS
SECRET_KEYS = tuple(s.key for s in SPEC if s.kind == SECRET)
TOP_LEVEL_KEYS = frozenset(s.key for s in SPEC if "." not in s.key and "[]" not in s.key) | set(SECTIONS)
# The config namespaces the program's providers read: a hapx key under any other is a typo.
PROVIDER_NAMESPACES = ("pulumi", "libvirt", "command")


def keys_in(section: str) -> frozenset[str]:
    """The keys known inside a section or list item ("network", "nodes[]"; "" for the top level)."""
    if not section:
        return TOP_LEVEL_KEYS
    return frozenset(s.name for s in SPEC if s.section == section)


def setting(key: str) -> Setting:
    """The spec of key."""
    return BY_KEY[key]


def default(key: str) -> Any:
    """The default value of key (None where it is derived from other settings)."""
    return BY_KEY[key].default


def _default_cell(s: Setting) -> str:
    if s.default_doc is not None:
        return s.default_doc
    if s.required:
        return "required"
    if isinstance(s.default, str):
        return f"`{s.default}`"
    return str(s.default)


def markdown_table() -> str:
    """The README's settings table."""
    rows = ["| key | default | meaning |", "| --- | --- | --- |"]
    rows += [f"| `{s.key}` | {_default_cell(s)} | {s.full_doc} |" for s in SPEC]
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
