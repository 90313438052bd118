"""Pulumi ComponentResources of hapx: the node VMs, the cluster, the generated secrets."""

from components.cluster import HaproxyCluster, HaproxyClusterArgs
from components.node import HaproxyNode, HaproxyNodeArgs

__all__ = ["HaproxyCluster", "HaproxyClusterArgs", "HaproxyNode", "HaproxyNodeArgs"]
