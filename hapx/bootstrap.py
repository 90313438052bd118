"""The bootstrap plan: the ordered steps that turn booted VMs into a cluster, as data."""

from __future__ import annotations

import hashlib
import shlex
from dataclasses import dataclass
from typing import Optional

from hapx import rendering
from hapx.crm import DRAIN_SCORE
from hapx.model import Node, Settings
from hapx.rendering import SecretValues

# Bounds for the waits inside the steps (seconds). cloud-init may install packages from a
# mirror on first boot; software-emulated VMs are slow.
WAIT_READY_S = 1200
WAIT_MEMBERS_S = 300
WAIT_RESOURCES_S = 180
WAIT_DRAIN_S = 120
# How long a drain's ban keeps the VIP off its node: longer than the drain's wait plus the
# moment Pulumi takes to destroy the VM after it.
DRAIN_HOLD_S = 600

STDIN_AUTHKEY = "corosync-authkey"
STDIN_HAPROXY_CFG = "haproxy-cfg"


@dataclass(frozen=True)
class Step:
    """One bootstrap step: a script run as root on one node, after the steps named in `after`."""

    id: str
    kind: str
    node: str
    script: str
    after: tuple[str, ...] = ()
    stdin: Optional[str] = None  # which secret-bearing input the step reads on stdin
    target: Optional[str] = None  # the node the step acts on, where that is not the node it runs on

    @property
    def command(self) -> str:
        """The exact command line run over SSH; it never contains a secret."""
        return f"sudo bash -c {shlex.quote(self.script)} hapx-{self.kind}"


def _script(kind: str, **context: object) -> str:
    return rendering.render_template(f"steps/{kind}.sh.j2", **context)


def peer_wait_s(settings: Settings) -> int:
    """How long a joining node looks for another member before it concludes it is the first.

    A live peer is in the membership within a token and a consensus timeout of corosync's
    start; twice that and a margin, since every node built later depends on this answer."""
    return 5 + -(-2 * (settings.corosync.token_ms + settings.corosync.consensus_ms) // 1000)


def membership_settle_s(settings: Settings) -> int:
    """How long after a reload a member that cannot follow it has surely left the membership:
    a token and a consensus timeout, rounded up, and a second."""
    return 1 + -(-(settings.corosync.token_ms + settings.corosync.consensus_ms) // 1000)


def plan(settings: Settings) -> list[Step]:
    """Every bootstrap step for the stack, in an order that respects each step's `after`.

    Each node gets its files (hapx's agents, haproxy.cfg) before it joins, so a node that
    joins a running cluster can run whatever Pacemaker gives it at once; the nodes join one
    after another, so a change that restarts corosync never takes two down together."""
    first = settings.nodes[0]
    corosync_conf = rendering.corosync_conf(settings)
    members = rendering.etc_hosts_block(settings)
    steps = [
        Step(f"wait-ready-{n.name}", "wait-ready", n.name,
             _script("wait-ready", node=n, timeout_s=WAIT_READY_S))
        for n in settings.nodes
    ]
    steps += [
        Step(f"install-agent-{n.name}", "install-agent", n.name,
             _script("install-agent", node=n, provider=rendering.OCF_AGENT_PROVIDER,
                     agents=[(name, rendering.ocf_agent(name))
                             for name in (rendering.OCF_AGENT_NAME, rendering.OCF_HEALTH_AGENT_NAME)]),
             after=(f"wait-ready-{n.name}",))
        for n in settings.nodes
    ]
    steps += [
        Step(f"install-haproxy-{n.name}", "install-haproxy", n.name,
             _script("install-haproxy", node=n),
             after=(f"wait-ready-{n.name}",), stdin=STDIN_HAPROXY_CFG)
        for n in settings.nodes
    ]
    previous: tuple[str, ...] = ()
    for n in settings.nodes:
        steps.append(Step(
            f"join-{n.name}", "join", n.name,
            _script("join", node=n, corosync_conf=corosync_conf, members=members, ids=rendering.CRM,
                    peer_wait_s=peer_wait_s(settings), timeout_s=WAIT_MEMBERS_S),
            after=(f"install-agent-{n.name}", f"install-haproxy-{n.name}") + previous,
            stdin=STDIN_AUTHKEY))
        previous = (f"join-{n.name}",)
    steps.append(Step(
        "wait-members", "wait-members", first.name,
        _script("wait-members", node=first, settings=settings, timeout_s=WAIT_MEMBERS_S),
        after=tuple(f"join-{n.name}" for n in settings.nodes)))
    steps.append(Step(
        "rekey", "rekey", first.name,
        _script("rekey", node=first, settle_s=membership_settle_s(settings)),
        after=("wait-members",), stdin=STDIN_AUTHKEY))
    steps.append(Step(
        "configure", "configure", first.name,
        _script("configure", node=first, settings=settings, ids=rendering.CRM,
                owned=rendering.CRM.owned, rendered=rendering.owned_crm_ids(settings),
                cluster_crm=rendering.cluster_crm(settings), timeout_s=WAIT_RESOURCES_S),
        after=("rekey",)))
    return steps


def drains(settings: Settings) -> list[Step]:
    """One drain per node, run when its VM is about to be rebuilt: it moves the VIP away first.

    Each runs on the next node in the list (the first for the last), never on the node that
    goes: a VM that is already dead can still be replaced, and the node that takes the VIP is
    the one that judges whether it can."""
    names = [n.name for n in settings.nodes]
    steps = []
    for i, n in enumerate(settings.nodes):
        peer = settings.node(names[(i + 1) % len(names)])
        steps.append(Step(
            f"drain-{n.name}", "drain", peer.name,
            _script("drain", node=peer, target=n, ids=rendering.CRM, rule=rendering.CRM.drain_rule(n.name),
                    score=DRAIN_SCORE, timeout_s=WAIT_DRAIN_S, hold_s=DRAIN_HOLD_S,
                    allow_outage=settings.pacemaker.drain_without_peer == "outage"),
            target=n.name))
    return steps


def build_after(settings: Settings, node: Node) -> tuple[str, ...]:
    """The steps a node's VM waits for before it is built or rebuilt: the node before it back
    in the cluster. Pulumi then rebuilds nodes one at a time, never two at once."""
    names = [n.name for n in settings.nodes]
    i = names.index(node.name)
    return (f"join-{names[i - 1]}",) if i else ()


def stdin_for(step: Step, settings: Settings, secrets: SecretValues) -> Optional[str]:
    """What the step reads on stdin: a secret, so only call this inside Output.apply or the render CLI."""
    if step.stdin is None:
        return None
    if step.stdin == STDIN_AUTHKEY:
        return secrets.corosync_authkey + "\n"
    if step.stdin == STDIN_HAPROXY_CFG:
        return rendering.haproxy_cfg(settings, secrets.stats_password)
    raise ValueError(f"unknown stdin kind {step.stdin!r} for step {step.id}")


def digest(text: str) -> str:
    """A short content fingerprint for a Command's triggers."""
    return hashlib.sha256(text.encode()).hexdigest()
