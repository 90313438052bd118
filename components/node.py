"""One cluster node on libvirt: a disk cloned from the shared base volume, a cloud-init disk, the VM."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_libvirt as libvirt

from hapx import rendering
from hapx.model import Node, Settings

GIB = 1024**3


@dataclass
class HaproxyNodeArgs:
    """What a node needs: the settings, its own entry, the base volume, its cloud-init content."""

    settings: Settings
    node: Node
    base_volume: libvirt.Volume
    user_data: pulumi.Input[str]  # secret: it carries the node's SSH host key
    instance_id: pulumi.Input[str]  # fingerprint of the user-data and network-config
    network_id: Optional[pulumi.Input[str]] = None  # a network the stack created, else by name
    # What must be done before this VM is built or rebuilt (the node before it back in the cluster).
    build_after: Sequence[pulumi.Resource] = ()


class HaproxyNode(pulumi.ComponentResource):
    """A Debian VM provisioned by cloud-init, with a fixed MAC and address.

    Everything cloud-init applies is in the instance-id, and the disk and the cloud-init disk
    are named after it: a change to any of it builds a new disk from the base image, and the
    VM is rebuilt on it (a running VM never keeps an old cloud-init configuration)."""

    disk: libvirt.Volume
    cloudinit: libvirt.CloudInitDisk
    domain: libvirt.Domain
    ip: pulumi.Output[str]

    def __init__(self, name: str, args: HaproxyNodeArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("hapx:index:HaproxyNode", name, None, opts)
        s, node = args.settings, args.node
        stack = pulumi.get_stack()
        child = pulumi.ResourceOptions(parent=self, depends_on=list(args.build_after))
        instance = pulumi.Output.from_input(args.instance_id)

        # A new disk for a new instance, a new base image or a new size; the name says which,
        # so the new volume is made before the old one goes.
        build = instance.apply(lambda iid: hashlib.sha256(
            f"{iid}|{s.base_image}|{s.vm.disk_gib}".encode()).hexdigest()[:12])
        self.disk = libvirt.Volume(
            f"{name}-disk",
            name=build.apply(lambda b: f"hapx-{stack}-{node.name}-{b}.qcow2"),
            pool=s.storage_pool,
            base_volume_id=args.base_volume.id,
            size=s.vm.disk_gib * GIB,
            format="qcow2",
            opts=child,
        )
        self.cloudinit = libvirt.CloudInitDisk(
            f"{name}-cloudinit",
            name=instance.apply(lambda iid: f"hapx-{stack}-{iid}-cloudinit.iso"),
            pool=s.storage_pool,
            user_data=pulumi.Output.secret(args.user_data),
            meta_data=instance.apply(lambda iid: rendering.meta_data(node, iid)),
            network_config=rendering.network_config(s, node),
            opts=child,
        )
        interface = libvirt.DomainNetworkInterfaceArgs(
            mac=node.mac,
            # The guest's address is static (its network-config); no DHCP lease to wait for.
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
            # The name is fixed, so the old VM goes first; build_after keeps the others serving.
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(delete_before_replace=True)),
        )
        self.ip = pulumi.Output.from_input(str(node.ip))
        self.register_outputs({"domainId": self.domain.id, "ip": self.ip, "mac": node.mac})
