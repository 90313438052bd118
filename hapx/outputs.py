"""The stack's outputs that follow from the settings alone: the program exports them, and the
lab hands the same shape (with its own secrets) to the status command."""

from __future__ import annotations

from hapx.model import Settings
from hapx.rendering import metrics_urls


def plain_outputs(settings: Settings) -> dict:
    """Every output but the generated ones (nodeHostKeys, sshPrivateKey, statsPassword), by output name."""
    s = settings
    return {
        "vip": str(s.vip),
        "nodeIps": {n.name: str(n.ip) for n in s.nodes},
        "backendMasters": [f"{m.name} {m.endpoint}" for m in s.masters],
        "apiEndpoint": f"{s.vip}:{s.haproxy.frontend_port}",
        "statsUrl": f"http://{s.vip}:{s.haproxy.stats_port}/",
        "metricsUrls": metrics_urls(s),
        "statsUser": s.haproxy.stats_user,
        "sshUser": s.ssh_user,
    }
