"""One cluster node on libvirt: a disk cloned from the shared base volume, a cloud-init disk, the VM."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_libvirt as libvirt

from hapx import rendering
from hapx.settings import Node, Settings

GIB = 1024**3


@dataclass
class HaproxyNodeArgs:
    """What a node needs: the settings, its own entry, the base volume, the network and its user-data."""

    settings: Settings
    node: Node
    base_volume: libvirt.Volume
    user_data: pulumi.Input[str]  # secret: it carries the node's SSH host key
    network_id: Optional[pulumi.Input[str]] = None  # a network the stack created, else by name


class HaproxyNode(pulumi.ComponentResource):
    """A Debian VM provisioned by cloud-init, with a fixed MAC and address."""

    disk: libvirt.Volume
    cloudinit: libvirt.CloudInitDisk
    domain: libvirt.Domain
    ip: pulumi.Output[str]

    def __init__(self, name: str, args: HaproxyNodeArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("hapx:index:HaproxyNode", name, None, opts)
        s, node = args.settings, args.node
        child = pulumi.ResourceOptions(parent=self)
        stack = pulumi.get_stack()

        self.disk = libvirt.Volume(
            f"{name}-disk",
            name=f"hapx-{stack}-{node.name}.qcow2",
            pool=s.storage_pool,
            base_volume_id=args.base_volume.id,
            size=s.vm.disk_gib * GIB,
            format="qcow2",
            opts=child,
        )
        instance_id = rendering.instance_id(s, node)
        # The ISO's name carries the instance-id: a changed identity gets a new ISO, and the
        # old one (fixed name) must go first or libvirt refuses the new one.
        self.cloudinit = libvirt.CloudInitDisk(
            f"{name}-cloudinit",
            name=f"hapx-{stack}-{instance_id}-cloudinit.iso",
            pool=s.storage_pool,
            user_data=pulumi.Output.secret(args.user_data),
            meta_data=rendering.meta_data(s, node),
            network_config=rendering.network_config(s, node),
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
        )
        interface = libvirt.DomainNetworkInterfaceArgs(
            mac=node.mac,
            # A DHCP reservation on a libvirt-managed network; the guest's own config is static.
            addresses=[str(node.ip)],
            hostname=node.name,
            wait_for_lease=False,
            **({"network_id": args.network_id} if args.network_id is not None
               else {"network_name": s.network.name}),
        )
        self.domain = libvirt.Domain(
            f"{name}-domain",
            name=f"hapx-{stack}-{node.name}",
            type=s.domain_type,
            vcpu=s.vm.vcpus,
            memory=s.vm.memory_mib,
            autostart=True,
            running=True,
            cloudinit=self.cloudinit.id,
            disks=[libvirt.DomainDiskArgs(volume_id=self.disk.id)],
            network_interfaces=[interface],
            consoles=[libvirt.DomainConsoleArgs(type="pty", target_port="0", target_type="serial")],
            opts=child,
        )
        self.ip = pulumi.Output.from_input(str(node.ip))
        self.register_outputs({"domainId": self.domain.id, "ip": self.ip, "mac": node.mac})
