"""hapx: a highly available HAProxy pair on libvirt (Corosync/Pacemaker, floating VIP)."""

import pulumi

from components import HaproxyCluster, HaproxyClusterArgs
from components.config import read_config

settings, given_secrets = read_config()
cluster = HaproxyCluster("hapx", HaproxyClusterArgs(settings=settings, **given_secrets))

pulumi.export("vip", cluster.vip)
pulumi.export("nodeIps", cluster.node_ips)
pulumi.export("backendMasters", cluster.backend_masters)
pulumi.export("apiEndpoint", cluster.api_endpoint)
pulumi.export("statsUrl", cluster.stats_url)
pulumi.export("metricsUrls", cluster.metrics_urls)
pulumi.export("statsUser", cluster.stats_user)
pulumi.export("sshUser", cluster.ssh_user)
pulumi.export("nodeHostKeys", cluster.node_host_keys)
pulumi.export("sshPrivateKey", cluster.ssh_private_key)
pulumi.export("statsPassword", cluster.stats_password)
