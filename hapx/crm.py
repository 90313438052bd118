"""The ids of the objects hapx puts into the CIB: one place for the templates, the steps and the lab."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CrmIds:
    """Ids of the objects hapx puts into the CIB; templates and step scripts take them from here."""

    vip: str = "vip"
    haproxy: str = "haproxy"
    haproxy_clone: str = "haproxy-clone"
    colocation: str = "vip-with-haproxy"
    order: str = "haproxy-before-vip"
    vip_location: str = "vip-off-the-dc"
    # Backend health: HAProxy's count of masters UP on each node (ocf:hapx:haproxy-health, a clone)
    # as a node attribute, the VIP's rule scored with it, and the VIP's penalty on a node whose
    # HAProxy has failed recently.
    backend_health: str = "backend-health"
    backend_health_clone: str = "backend-health-clone"
    masters_up_attribute: str = "hapx-masters-up"
    vip_backends: str = "vip-follows-backends"
    vip_haproxy_failed: str = "vip-on-unfailed-haproxy"
    cluster_options: str = "cib-bootstrap-options"
    rsc_options: str = "rsc-options"
    # A drain's location rule for node N is DRAIN_PREFIX + N: not rendered, never retired; the
    # node's next join lifts it.
    drain_prefix: str = "hapx-drain-"

    def drain_rule(self, node: str) -> str:
        """The id of the location rule a drain puts on `node`."""
        return self.drain_prefix + node

    @property
    def owned(self) -> tuple[str, ...]:
        """Every top-level resource and constraint hapx owns: those it may render (rendering.owned_crm_ids:
        those it does) and, when an id is renamed, the old one. The configure step retires owned
        objects it no longer renders and never touches any other."""
        return (self.vip, self.haproxy_clone, self.colocation, self.order, self.vip_location,
                self.backend_health_clone, self.vip_backends, self.vip_haproxy_failed)


CRM = CrmIds()
# A drain's score for the VIP on every node but the one drained. A preference for the others,
# not a ban of that node: Pacemaker places a resource only where its score is not negative, so
# a ban (any negative score) would leave the VIP nowhere should the others fail mid-drain, while
# a preference still lets the drained node run it when no other can.
DRAIN_SCORE = "INFINITY"
