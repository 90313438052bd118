"""A Pulumi program of its own that adds the hapx pair to its stack: it makes the libvirt network
the pair lives on, and gives hapx that network as an existing one."""

import pulumi
import pulumi_libvirt as libvirt
from hapx.components import HaproxyCluster, HaproxyClusterArgs

network = libvirt.Network(
    "lb-net",
    name="lb-net",
    mode="nat",
    addresses=["10.20.0.0/24"],
    autostart=True,
    # The pair's addresses are static: no DHCP, so no other guest can be handed one of them.
    dhcp=libvirt.NetworkDhcpArgs(enabled=False),
)

# The keys are those of the settings table in hapx's README, without the `hapx:` prefix, and
# they are checked as `pulumi up` checks a stack of hapx's own: a bad value raises SettingsError
# naming the key, before any resource is registered.
args = HaproxyClusterArgs.from_config({
    "vip": "10.20.0.20",
    "network": {"mode": "existing", "name": "lb-net", "cidr": "10.20.0.0/24", "gateway": "10.20.0.1"},
    "nodes": [{"name": "lb-1", "ip": "10.20.0.21"}, {"name": "lb-2", "ip": "10.20.0.22"}],
    "masters": [{"name": "cp-1", "address": "10.30.0.11", "port": 6443},
                {"name": "cp-2", "address": "10.30.0.12", "port": 6443}],
})
cluster = HaproxyCluster("lb", args, opts=pulumi.ResourceOptions(depends_on=[network]))

pulumi.export("apiEndpoint", cluster.api_endpoint)
pulumi.export("nodeIps", cluster.node_ips)
