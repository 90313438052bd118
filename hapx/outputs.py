"""The stack's outputs, written once: their names, what they hold, which are secret. The
component sets one attribute per output and registers them, the program exports them, and
the README's Outputs table is printed from them (`python -m hapx.outputs`; a unit test holds
it). The lab hands the settings-derived part (plain_outputs, with its own secrets) to the
status command."""

from __future__ import annotations

import re
from dataclasses import dataclass

from hapx.model import Settings
from hapx.rendering import metrics_urls


@dataclass(frozen=True)
class StackOutput:
    """One stack output: its name as `pulumi stack output` shows it, and what it holds."""

    name: str
    doc: str
    secret: bool = False
    # From the settings alone (plain_outputs), or from what the stack generates (keys, passwords).
    from_settings: bool = True

    @property
    def attr(self) -> str:
        """The HaproxyCluster attribute that holds it: the name in snake_case."""
        return re.sub(r"(?<!^)(?=[A-Z])", "_", self.name).lower()


OUTPUTS: tuple[StackOutput, ...] = (
    StackOutput("vip", "the floating address"),
    StackOutput("nodeIps", "name → address"),
    StackOutput("backendMasters", "`name host:port` of each master"),
    StackOutput("apiEndpoint", "`VIP:port` of the API frontend (haproxy.frontendPort)"),
    StackOutput("statsUrl", "HAProxy's stats page through the VIP"),
    StackOutput("metricsUrls", "name → the node's Prometheus metrics URL"),
    StackOutput("statsUser", "the stats page's user"),
    StackOutput("sshUser", "the nodes' admin user"),
    StackOutput("nodeHostKeys", "name → the host key the Commands pin, for a `known_hosts` line `IP KEY`",
                from_settings=False),
    StackOutput("sshPrivateKey", "the nodes' admin key", secret=True, from_settings=False),
    StackOutput("statsPassword", "the stats page's password", secret=True, from_settings=False),
)


def plain_outputs(settings: Settings) -> dict:
    """Every output that follows from the settings alone, by output name."""
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


def markdown_table() -> str:
    """The README's outputs table."""
    rows = ["| output | holds |", "| --- | --- |"]
    rows += [f"| `{o.name}` | {o.doc}{' (secret)' if o.secret else ''} |" for o in OUTPUTS]
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
