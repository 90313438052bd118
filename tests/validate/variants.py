"""The stacks the VALIDATE tier renders: the real stack files and variants built as dicts.

Each variant changes what the templates branch on or interpolate: node count (two_node or
not), masters by name (resolvers section) or by address, https or tcp health checks,
ports, subnet, interface name, DNS, totem timers, Pacemaker timers, stickiness and the VIP's
placement (sticky by default, off-dc in two variants).
"""

from __future__ import annotations

import copy

from hapx.stackfile import load_stack_file
from tests.conftest import PROJECT


def dev() -> dict:
    """The dev stack (Pulumi.dev.yaml): two nodes, masters by name, https checks."""
    return load_stack_file(str(PROJECT / "Pulumi.dev.yaml"))


def lab() -> dict:
    """The lab stack (Pulumi.lab.yaml): masters by address, fixed MACs, token 1000 ms."""
    return load_stack_file(str(PROJECT / "Pulumi.lab.yaml"))


def three_nodes() -> dict:
    """Three nodes: no two_node, a majority of two survives one failure."""
    cfg = copy.deepcopy(dev())
    cfg["nodes"] = list(cfg["nodes"]) + [{"name": "hapx-node03", "ip": "192.168.4.23"}]
    return cfg


def other_masters_https() -> dict:
    """Other masters (by address, mixed ports), an https check on /healthz, other ports, another
    subnet and interface name, two DNS servers, an existing network."""
    return {
        "vip": "10.30.7.100",
        "network": {"mode": "existing", "name": "lb-net", "cidr": "10.30.7.0/24", "gateway": "10.30.7.254",
                    "dnsServers": ["10.30.7.2", "10.30.7.3"], "domain": "example.internal"},
        "interface": "ens3",
        "sshUser": "ops",
        "nodes": [
            {"name": "lb-a", "ip": "10.30.7.11", "mac": "52:54:00:30:07:11"},
            {"name": "lb-b", "ip": "10.30.7.12", "mac": "52:54:00:30:07:12"},
        ],
        "masters": [
            {"name": "cp-1", "address": "10.40.0.11", "port": 6443},
            {"name": "cp-2", "address": "10.40.0.12", "port": 6443},
            {"name": "cp-3", "address": "10.40.0.13", "port": 16443},
            {"name": "cp-4", "address": "10.40.0.14", "port": 6443},
        ],
        "haproxy": {"healthCheck": "https", "healthCheckPath": "/healthz", "frontendPort": 8443,
                    "statsPort": 9000, "statsUser": "lb-ops", "checkIntervalMs": 1000, "checkFall": 2,
                    "checkRise": 3, "timeoutCheckMs": 1500},
    }


def tcp_check() -> dict:
    """A plain TCP health check, masters mixing names and addresses, a single master by FQDN."""
    cfg = copy.deepcopy(dev())
    cfg["masters"] = [
        {"name": "kube-mast01", "address": "kube-mast01.kube.local", "port": 6443},
        {"name": "kube-mast02", "address": "192.168.10.12", "port": 6443},
        {"name": "kube-mast03", "address": "kube-mast03", "port": 6444},
    ]
    cfg["haproxy"] = {"statsPort": 32700, "healthCheck": "tcp", "checkIntervalMs": 3000,
                      "timeoutConnectMs": 2000, "timeoutClientMs": 3600000, "timeoutServerMs": 3600000}
    return cfg


def fast_token() -> dict:
    """Tuned totem timers (token 1000 ms, consensus 1500 ms), another cluster name, faster
    monitors, a higher stickiness and the VIP placed off the DC."""
    cfg = copy.deepcopy(dev())
    cfg["corosync"] = {"tokenMs": 1000, "consensusMs": 1500, "clusterName": "edge_lb-1"}
    cfg["pacemaker"] = {"vipMonitorSeconds": 5, "haproxyMonitorSeconds": 3, "stickiness": 500,
                        "vipPlacement": "off-dc"}
    return cfg


def short_token() -> dict:
    """The shortest token (300 ms): the knet ping timers stay above their floor (150/300 ms),
    where corosync would derive 75/150 ms; three nodes, so the token coefficient counts too
    (runtime token 950 ms, consensus by default 1.2 x that); the VIP placed off the DC."""
    cfg = three_nodes()
    cfg["corosync"] = {"tokenMs": 300}
    cfg["pacemaker"] = {"vipPlacement": "off-dc"}
    return cfg


def knet_timers() -> dict:
    """knet ping timers set explicitly beside a tuned token."""
    cfg = copy.deepcopy(dev())
    cfg["corosync"] = {"tokenMs": 500, "consensusMs": 600, "knetPingIntervalMs": 200, "knetPingTimeoutMs": 450}
    return cfg


VARIANTS = {
    "dev": dev,
    "lab": lab,
    "three-nodes": three_nodes,
    "other-masters-https": other_masters_https,
    "tcp-check": tcp_check,
    "fast-token": fast_token,
    "short-token": short_token,
    "knet-timers": knet_timers,
}
