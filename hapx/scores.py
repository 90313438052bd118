"""The scores that place the VIP (Pacemaker adds them per node; the highest wins): stickiness,
the off-DC bonus, backend health and the no-failure bonus, as templates/cluster.crm.j2 writes
them, and the ceiling they must stay under for every rule to keep its say."""

from __future__ import annotations

from dataclasses import dataclass

from hapx.crm import CRM
from hapx.model import Settings

# Pacemaker's INFINITY: a sum at or above it is INFINITY, so two such nodes tie. hapx.settings
# refuses a stack whose VIP scores could reach it (highest_vip_score), so none here is capped.
PCMK_INFINITY = 1000000


def vip_off_dc_score(settings: Settings) -> int | None:
    """The VIP's preference for a node that is not the DC with pacemaker.vipPlacement off-dc:
    above resource-stickiness, so the VIP leaves the DC when another node is up. None (no such
    rule: stickiness alone decides) when it is sticky."""
    if settings.pacemaker.vip_placement == "sticky":
        return None
    return settings.pacemaker.stickiness + 100


# How often ocf:hapx:haproxy-health asks HAProxy (Pacemaker counts whole seconds; below 2 s is unwise).
HEALTH_MONITOR_S = 2


@dataclass(frozen=True)
class BackendHealth:
    """The VIP's backend-health rule, as cluster_crm renders it (templates/cluster.crm.j2)."""

    multiplier: int
    dampen_s: int
    monitor_s: int
    failcount_attribute: str
    # The bonus of a node whose HAProxy has not failed: above every node's health score, so the
    # VIP leaves a failed HAProxy even for a node whose count attrd has not published yet (a
    # node just back in the cluster, for dampen_s); equal on every node that has not failed, so
    # it never outweighs the counts among those.
    working_bonus: int


def backend_health(settings: Settings) -> BackendHealth:
    """The multiplier beats stickiness plus the off-DC bonus, so one master's difference moves the
    VIP; attrd's dampening covers how far apart two nodes see one change (a check interval, a
    monitor interval and a margin), so a master lost by all is published for all at once."""
    multiplier = settings.pacemaker.stickiness + (vip_off_dc_score(settings) or 0) + 100
    dampen_s = HEALTH_MONITOR_S + -(-settings.haproxy.check_interval_ms // 1000) + 2
    failcount = f"fail-count-{CRM.haproxy}#monitor_{settings.pacemaker.haproxy_monitor_s * 1000}"
    working_bonus = multiplier * (len(settings.masters) + 1)
    return BackendHealth(multiplier, dampen_s, HEALTH_MONITOR_S, failcount, working_bonus)


def highest_vip_score(settings: Settings) -> int:
    """The VIP's score on its node when everything adds up there: stickiness, the off-DC bonus,
    every master UP and the no-failure bonus. At INFINITY or above, the drain's INFINITY for the
    other nodes only ties it, and losing a master or a failed HAProxy no longer moves the VIP."""
    health = backend_health(settings)
    return (settings.pacemaker.stickiness + (vip_off_dc_score(settings) or 0)
            + len(settings.masters) * health.multiplier + health.working_bonus)
