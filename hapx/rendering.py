"""Render every file that reaches a VM from the settings and the stack's secret values."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import jinja2

from hapx.crm import CRM as CRM  # part of this module's interface (bootstrap, tests)
from hapx.model import Node, Settings
from hapx.scores import backend_health, vip_off_dc_score


def shipped_dir(name: str) -> Path:
    """Where the files hapx ships (templates/, agents/) are: inside the package when it is
    installed (the wheel maps them there, see pyproject.toml), beside it in a checkout."""
    here = Path(__file__).resolve().parent
    installed = here / name
    return installed if installed.is_dir() else here.parent / name


TEMPLATES = shipped_dir("templates")
AGENTS = shipped_dir("agents")
# Where the VIP's resource agent (ocf:hapx:ipaddr) is installed on the nodes.
OCF_AGENT_PROVIDER = "hapx"
OCF_AGENT_NAME = "ipaddr"
# HAProxy's view of the masters as a node attribute (ocf:hapx:haproxy-health, same provider).
OCF_HEALTH_AGENT_NAME = "haproxy-health"
# nftables: the VIP agent's connection hand-off in a planned move (agents/ipaddr).
PACKAGES = ("corosync", "pacemaker", "crmsh", "resource-agents", "haproxy", "curl", "nftables")
DEFAULT_KEYFILE = "/etc/corosync/authkey"
# HAProxy's backend of masters: the metrics and the status command name it too.
BACKEND = "kubernetes-masters"
# HAProxy's admin socket on the nodes: the status command reads the servers' states there.
ADMIN_SOCKET = "/run/haproxy/admin.sock"

# What JSON leaves raw in a string but YAML would fold (NEL, LS, PS) or refuse (DEL, C1
# controls, surrogates, BOM, non-characters) inside a double-quoted scalar.
_YAML_RAW_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ud800-\udfff\ufeff\ufffe\uffff]")


def yaml_quote(value: object, key: bool = False) -> str:
    """str(value) as a double-quoted YAML scalar that YAML 1.1 and 1.2 readers read back exactly."""
    # A double-quoted scalar is never resolved to a bool, null or number, in either version,
    # and JSON's escapes are a subset of YAML's.
    text = _YAML_RAW_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(str(value), ensure_ascii=False))
    # Both versions end an implicit mapping key at 1024 characters.
    if key and len(text) > 1024:
        raise ValueError(f"{str(value)[:40]!r}... is too long for a YAML mapping key")
    return text


def shell_quote(value: object) -> str:
    """str(value) as one shell word (bare when it needs no quotes); NUL has no shell spelling."""
    text = str(value)
    if "\0" in text:
        raise ValueError(f"{text!r} cannot be passed to a shell (NUL)")
    return shlex.quote(text)


def haproxy_quote(value: object) -> str:
    """str(value) as one haproxy.cfg word: HAProxy 2.6 reads single quotes and \\' as a shell does."""
    text = str(value)
    # A line break ends the directive whatever the quoting; NUL ends HAProxy's line buffer.
    if any(c in text for c in "\0\r\n"):
        raise ValueError(f"{text!r} cannot be written into haproxy.cfg (line break or NUL)")
    return shlex.quote(text)


def corosync_value(value: object) -> str:
    """str(value) checked to read back as itself in corosync.conf, which has no quoting."""
    text = str(value)
    # corosync's parser (exec/coroparse.c) takes a line holding '{' anywhere as a section
    # start and trims each value; a line break would start another line.
    if not text or text != text.strip() or any(c in text for c in "{}\0\r\n"):
        raise ValueError(f"{text!r} cannot be written into corosync.conf")
    return text


_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATES)),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
    autoescape=False,
    # Shell's ${#array[@]} would open a Jinja comment; the templates need no comments.
    comment_start_string="{{#",
    comment_end_string="#}}",
)
# One filter per language a value is written into: the templates quote with these.
_env.filters.update(yaml=yaml_quote, sh=shell_quote, haproxy=haproxy_quote, corosync=corosync_value)


@dataclass(frozen=True)
class HostKey:
    """A node's SSH host key pair: OpenSSH private key text and `ssh-ed25519 AAAA...` public key."""

    private: str
    public: str

    @property
    def key(self) -> str:
        """The public key as `type base64`, without its comment: what known_hosts and pinning take."""
        return " ".join(self.public.split()[:2])


# What stands in for a node's private host key when its instance-id is computed: the
# public half identifies the pair, and the id never depends on a secret.
HOST_KEY_STAND_IN = "(the private half of the host key above)"


@dataclass(frozen=True)
class SecretValues:
    """The stack's secrets, as plain values: only ever handled inside Output.apply or the render CLI."""

    corosync_authkey: str  # base64 of the raw key bytes
    stats_password: str
    ssh_public_key: str
    host_keys: Mapping[str, HostKey]


def render_template(name: str, **context: object) -> str:
    """Render one template under templates/; a missing variable is an error."""
    return _env.get_template(name).render(**context)


def instance_id(settings: Settings, node: Node, ssh_public_key: str, host_public_key: str) -> str:
    """cloud-init's instance-id: a fingerprint of everything cloud-init applies to the node.

    cloud-init applies user-data and network-config once per instance, so any change to them
    must come with a new instance (a rebuilt VM); anything else reaches running nodes through
    the bootstrap steps. The private host key is stood in for by its public half."""
    stand_in = SecretValues("", "", ssh_public_key,
                            {node.name: HostKey(private=HOST_KEY_STAND_IN, public=host_public_key)})
    content = user_data(settings, node, stand_in) + network_config(settings, node)
    return f"{node.name}-{hashlib.sha256(content.encode()).hexdigest()[:12]}"


def user_data(settings: Settings, node: Node, secrets: SecretValues) -> str:
    """cloud-init user-data for one node: user, SSH keys, host name, packages."""
    return render_template(
        "cloud-init/user-data.yaml.j2",
        settings=settings,
        node=node,
        ssh_public_key=secrets.ssh_public_key.strip(),
        host_key=secrets.host_keys[node.name],
        packages=PACKAGES,
    )


def network_config(settings: Settings, node: Node) -> str:
    """cloud-init network-config (version 2) for one node: its fixed MAC and static address."""
    return render_template("cloud-init/network-config.yaml.j2", settings=settings, node=node)


def meta_data(node: Node, instance: str) -> str:
    """cloud-init meta-data for one node, with its instance-id (see instance_id)."""
    return render_template("cloud-init/meta-data.yaml.j2", node=node, instance_id=instance)


def corosync_conf(settings: Settings, keyfile: str = DEFAULT_KEYFILE) -> str:
    """corosync.conf: knet with crypto, the node list, two-node quorum when there are two."""
    return render_template("corosync.conf.j2", settings=settings, keyfile=keyfile)


@dataclass(frozen=True)
class Metrics:
    """Where HAProxy serves its Prometheus exporter on each node (haproxy.cfg's metrics section)."""

    path: str = "/metrics"
    frontend: str = "metrics"
    userlist: str = "stats-users"


METRICS = Metrics()


def metrics_urls(settings: Settings) -> dict[str, str]:
    """Each node's metrics URL (node name -> URL), on the node's own address."""
    return {n.name: f"http://{n.ip}:{settings.haproxy.metrics_port}{METRICS.path}" for n in settings.nodes}


def haproxy_cfg(settings: Settings, stats_password: str) -> str:
    """haproxy.cfg: the TCP frontend over the masters, the stats page and each node's metrics."""
    if any(c in stats_password for c in " \t\r\n#\\'\""):
        raise ValueError("hapx:statsPassword must not contain whitespace, quotes, '#' or '\\'")
    return render_template("haproxy.cfg.j2", settings=settings, stats_password=stats_password,
                           backend=BACKEND, admin_socket=ADMIN_SOCKET, metrics=METRICS,
                           servers=backend_servers(settings))


@dataclass(frozen=True)
class BackendServer:
    """One master as HAProxy's server line names it: the host it connects to, by name or address."""

    name: str
    host: str
    port: int
    by_name: bool


def backend_servers(settings: Settings) -> list[BackendServer]:
    """The masters as HAProxy reaches them. A name without a dot is qualified with network.domain,
    as the nodes' resolver would through its search domain: HAProxy's run-time resolvers send the
    name as written and apply no search list."""
    servers = []
    for m in settings.masters:
        by_name = not _is_ip(m.address)
        host = f"{m.address}.{settings.network.domain}" if by_name and "." not in m.address else m.address
        servers.append(BackendServer(m.name, host, m.port, by_name))
    return servers


# How long the DC waits after an event before it computes a transition (transition-delay):
# long enough for the CIB writes it has just sent to come back through corosync (a few ms, tens
# under load), short beside a failover. See templates/cluster.crm.j2.
TRANSITION_DELAY_MS = 100


def owned_crm_ids(settings: Settings) -> tuple[str, ...]:
    """The resources and constraints cluster_crm renders for these settings: the configure step
    retires any other (so switching vipPlacement to sticky removes the off-DC rule)."""
    return tuple(i for i in CRM.owned if i != CRM.vip_location or vip_off_dc_score(settings) is not None)


def cluster_crm(settings: Settings) -> str:
    """The crm configuration: properties, VIP, HAProxy, colocation, order (and the off-DC rule)."""
    return render_template("cluster.crm.j2", settings=settings, ids=CRM,
                           agent=f"{OCF_AGENT_PROVIDER}:{OCF_AGENT_NAME}",
                           transition_delay_ms=TRANSITION_DELAY_MS, off_dc_score=vip_off_dc_score(settings),
                           health_agent=f"{OCF_AGENT_PROVIDER}:{OCF_HEALTH_AGENT_NAME}",
                           health=backend_health(settings), backend=BACKEND, admin_socket=ADMIN_SOCKET)


def etc_hosts_block(settings: Settings) -> str:
    """The nodes' /etc/hosts lines for every cluster member (the join step keeps them current)."""
    return "".join(f"{n.ip} {n.name}.{settings.network.domain} {n.name}\n" for n in settings.nodes)


def ocf_agent(name: str = OCF_AGENT_NAME) -> str:
    """The text of one of hapx's resource agents (agents/NAME, by default the VIP's), shipped as it is."""
    return (AGENTS / name).read_text()


def _is_ip(value: str) -> bool:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return False
    return True
