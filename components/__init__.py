"""Pulumi ComponentResources of hapx: the node VMs, the cluster, the generated secrets."""

from .cluster import HaproxyCluster, HaproxyClusterArgs
from .node import HaproxyNode, HaproxyNodeArgs

__all__ = ["HaproxyCluster", "HaproxyClusterArgs", "HaproxyNode", "HaproxyNodeArgs"]
