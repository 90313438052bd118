"""hapx: a highly available HAProxy pair on libvirt (Corosync/Pacemaker, floating VIP)."""

import pulumi

from components import HaproxyCluster, HaproxyClusterArgs
from components.config import read_config

settings, given_secrets = read_config()
cluster = HaproxyCluster("hapx", HaproxyClusterArgs(settings=settings, **given_secrets))

for name, value in cluster.stack_outputs().items():
    pulumi.export(name, value)
