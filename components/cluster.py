"""The HAProxy pair: network, base image, nodes, secrets, the bootstrap Commands and the outputs."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional

import pulumi
import pulumi_command as command
import pulumi_libvirt as libvirt

from hapx import bootstrap, keys, outputs, rendering
from hapx.model import GivenSecret, Node, Settings
from hapx.rendering import HostKey, SecretValues

from .config import SECRET_ARGS, checked_settings
from .node import HaproxyNode, HaproxyNodeArgs
from .secrets import RandomSecret, SshKeyPair

# pulumi-command gives up after dial_error_limit failed dials; its default (10) is about
# 7.5 s. 60 is about four minutes of backoff: enough for a VM that is still booting.
DIAL_ERROR_LIMIT = 60
# A drain dials a peer in a running cluster, not a booting VM: an unreachable peer (which could
# not take the VIP anyway) fails the `up` after a quarter of the dials a booting VM is given.
DRAIN_DIAL_ERROR_LIMIT = 15


@dataclass
class HaproxyClusterArgs:
    """The validated settings and, optionally, secrets given in the stack config instead of generated."""

    settings: Settings
    ssh_private_key: Optional[pulumi.Input[str]] = None
    corosync_authkey: Optional[pulumi.Input[str]] = None  # base64 of the raw key
    stats_password: Optional[pulumi.Input[str]] = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **secrets: Optional[pulumi.Input[str]]) -> HaproxyClusterArgs:
        """Args from a mapping shaped like a stack's `hapx:` config (the README's settings table,
        keys without `hapx:`), checked as `pulumi up` checks a stack: raise SettingsError listing
        every problem. secrets: ssh_private_key, corosync_authkey, stats_password (None: generated);
        one given as a string is checked by its setting's rule too (an Output cannot be, yet)."""
        given = {key: GivenSecret(value) for key, arg in SECRET_ARGS.items()
                 if isinstance(value := secrets.get(arg), str)}
        return cls(checked_settings({**config, **given}), **secrets)


class HaproxyCluster(pulumi.ComponentResource):
    """Two or more Debian VMs joined by Corosync/Pacemaker, holding a VIP served by HAProxy."""

    provider: libvirt.Provider
    nodes: dict[str, HaproxyNode]
    steps: dict[str, command.remote.Command]  # the bootstrap steps and the drains, by id
    network: Optional[libvirt.Network]
    base_volume: libvirt.Volume
    # One attribute per stack output (hapx.outputs.OUTPUTS names them), typed for a program
    # that uses the component.
    vip: pulumi.Output[str]
    node_ips: pulumi.Output[dict]
    backend_masters: pulumi.Output[list]
    api_endpoint: pulumi.Output[str]
    stats_url: pulumi.Output[str]
    metrics_urls: pulumi.Output[dict]
    stats_user: pulumi.Output[str]
    ssh_user: pulumi.Output[str]
    node_host_keys: pulumi.Output[dict]
    ssh_private_key: pulumi.Output[str]
    stats_password: pulumi.Output[str]

    def __init__(self, name: str, args: HaproxyClusterArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("hapx:index:HaproxyCluster", name, None, opts)
        s = args.settings
        stack = pulumi.get_stack()

        self.provider = libvirt.Provider(f"{name}-libvirt", uri=s.libvirt_uri, opts=pulumi.ResourceOptions(parent=self))
        on_libvirt = pulumi.ResourceOptions(parent=self, providers=[self.provider])

        secrets = self._secrets(name, args)

        self.network = None
        network_id = None
        if s.network.creates:
            self.network = libvirt.Network(
                f"{name}-network",
                name=s.network.name,
                mode="nat",
                domain=s.network.domain,
                addresses=[str(s.network.cidr)],
                autostart=True,
                # The nodes' addresses are static: without DHCP no other guest on the network
                # can be handed a node's address or the VIP.
                dhcp=libvirt.NetworkDhcpArgs(enabled=False),
                # libvirt's dnsmasq answers the host entries by name and, with the domain, by
                # name.domain (expand-hosts); with local_only it forwards nothing in the domain.
                # No entries: no `hosts` at all, as before (an empty list could read back as a diff).
                dns=libvirt.NetworkDnsArgs(enabled=True, local_only=True, hosts=[
                    libvirt.NetworkDnsHostArgs(hostname=h.name, ip=str(h.address))
                    for h in s.network.dns_hosts] or None),
                opts=on_libvirt,
            )
            network_id = self.network.id

        # Named after its source, so a new base image is uploaded beside the old one and the
        # nodes move to it one at a time.
        self.base_volume = libvirt.Volume(
            f"{name}-base",
            name=f"hapx-{stack}-base-{hashlib.sha256(s.base_image.encode()).hexdigest()[:12]}.qcow2",
            pool=s.storage_pool,
            source=s.base_image,
            format="qcow2",
            opts=on_libvirt,
        )

        self.nodes, self.steps = self._build(name, s, secrets, network_id, on_libvirt)

        host_keys = pulumi.Output.all(**secrets["host_public_keys"]).apply(
            lambda keys_: {n: HostKey(private="", public=k).key for n, k in keys_.items()})
        values: dict[str, pulumi.Output] = {
            **{k: pulumi.Output.from_input(v) for k, v in outputs.plain_outputs(s).items()},
            "nodeHostKeys": host_keys,
            "sshPrivateKey": secrets["ssh_private_key"],
            "statsPassword": secrets["stats_password"],
        }
        for out in outputs.OUTPUTS:
            setattr(self, out.attr, values[out.name])
        self.register_outputs(values)

    def stack_outputs(self) -> dict[str, pulumi.Output]:
        """Every output (hapx.outputs.OUTPUTS) by its stack output name, for `pulumi.export`."""
        return {out.name: getattr(self, out.attr) for out in outputs.OUTPUTS}

    def _secrets(self, name: str, args: HaproxyClusterArgs) -> dict:
        """Each secret from the stack config when given, else generated once for the stack."""
        s = args.settings
        child = pulumi.ResourceOptions(parent=self)
        if args.ssh_private_key is not None:
            private = pulumi.Output.secret(args.ssh_private_key)
            public = private.apply(lambda k: keys.public_key_of(k, f"{s.ssh_user}@hapx"))
        else:
            pair = SshKeyPair(f"{name}-ssh-key", comment=f"{s.ssh_user}@hapx", opts=child)
            private, public = pair.private_key, pair.public_key
        authkey = args.corosync_authkey
        if authkey is None:
            authkey = RandomSecret(f"{name}-corosync-authkey", kind="authkey", opts=child).value
        password = args.stats_password
        if password is None:
            password = RandomSecret(f"{name}-stats-password", kind="password", opts=child).value
        host_keys, host_public_keys = {}, {}
        for node in s.nodes:
            pair = SshKeyPair(f"{node.name}-host-key", comment=f"root@{node.name}", opts=child)
            host_keys[node.name] = pulumi.Output.all(pair.private_key, pair.public_key).apply(
                lambda v: HostKey(private=v[0], public=v[1]))
            host_public_keys[node.name] = pair.public_key
        return {
            "ssh_private_key": pulumi.Output.secret(private),
            "ssh_public_key": pulumi.Output.from_input(public),
            "corosync_authkey": pulumi.Output.secret(authkey),
            "stats_password": pulumi.Output.secret(password),
            "host_keys": {k: pulumi.Output.secret(v) for k, v in host_keys.items()},
            "host_public_keys": host_public_keys,
        }

    def _build(self, name: str, s: Settings, secrets: dict, network_id: Optional[pulumi.Input[str]],
               on_libvirt: pulumi.ResourceOptions) -> tuple[dict[str, HaproxyNode], dict[str, command.remote.Command]]:
        """The nodes and one remote Command per bootstrap step, each made once what it waits for exists."""
        values = pulumi.Output.all(
            secrets["corosync_authkey"], secrets["stats_password"]
        ).apply(lambda v: SecretValues(corosync_authkey=v[0], stats_password=v[1],
                                       ssh_public_key="", host_keys={}))
        nodes: dict[str, HaproxyNode] = {}
        steps: dict[str, command.remote.Command] = {}
        pending_nodes = list(s.nodes)
        pending_steps = bootstrap.plan(s)
        while pending_nodes or pending_steps:
            progress = False
            for node in [n for n in pending_nodes if set(bootstrap.build_after(s, n)) <= set(steps)]:
                nodes[node.name] = self._node(s, node, secrets, network_id, on_libvirt,
                                              [steps[a] for a in bootstrap.build_after(s, node)])
                pending_nodes.remove(node)
                progress = True
            for step in [st for st in pending_steps if st.node in nodes and set(st.after) <= set(steps)]:
                steps[step.id] = self._command(name, s, step, nodes[step.node], secrets, values,
                                               [steps[a] for a in step.after])
                pending_steps.remove(step)
                progress = True
            if not progress:
                raise RuntimeError(f"bootstrap plan cannot be built: {[st.id for st in pending_steps]}")
        for drain in bootstrap.drains(s):
            assert drain.target is not None, "a drain names the node it drains"
            steps[drain.id] = self._drain(name, s, drain, nodes[drain.target], secrets)
        return nodes, steps

    def _node(self, s: Settings, node: Node, secrets: dict, network_id: Optional[pulumi.Input[str]],
              on_libvirt: pulumi.ResourceOptions, build_after: list[pulumi.Resource]) -> HaproxyNode:
        """One node VM, with its cloud-init content and instance-id."""
        user_data = pulumi.Output.all(
            secrets["ssh_public_key"], secrets["host_keys"][node.name]
        ).apply(lambda v: rendering.user_data(s, node, SecretValues("", "", v[0], {node.name: v[1]})))
        instance_id = pulumi.Output.all(
            secrets["ssh_public_key"], secrets["host_public_keys"][node.name]
        ).apply(lambda v: rendering.instance_id(s, node, v[0], v[1]))
        return HaproxyNode(
            node.name,
            HaproxyNodeArgs(settings=s, node=node, base_volume=self.base_volume,
                            user_data=pulumi.Output.secret(user_data), instance_id=instance_id,
                            network_id=network_id, build_after=build_after),
            opts=on_libvirt,
        )

    def _connection(self, s: Settings, step: bootstrap.Step, secrets: dict,
                    dial_error_limit: int = DIAL_ERROR_LIMIT) -> command.remote.ConnectionArgs:
        """SSH to the step's node with the stack's key, pinned to the node's host key."""
        return command.remote.ConnectionArgs(
            host=str(s.node(step.node).ip),
            user=s.ssh_user,
            private_key=secrets["ssh_private_key"],
            host_key=secrets["host_keys"][step.node].apply(lambda k: k.key),
            dial_error_limit=dial_error_limit,
        )

    def _drain(self, name: str, s: Settings, step: bootstrap.Step, target: HaproxyNode,
               secrets: dict) -> command.remote.Command:
        """A Command that only acts on delete: when the target node's VM is about to be replaced
        (its triggers follow that domain, and Pulumi deletes it before the domain, which is
        deleted before it is replaced), it moves the VIP away, from a peer (step.node), so a dead
        VM can be replaced too. `pulumi destroy` skips it (deleted with the provider), so a
        destroy never waits on a node."""
        return command.remote.Command(
            f"{name}-{step.id}",
            connection=self._connection(s, step, secrets, DRAIN_DIAL_ERROR_LIMIT),
            delete=step.command,
            triggers=[target.domain.id],
            add_previous_output_in_env=False,
            logging=command.remote.Logging.STDOUT_AND_STDERR,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[target.domain], deleted_with=self.provider),
        )

    def _command(self, name: str, s: Settings, step: bootstrap.Step, node: HaproxyNode, secrets: dict,
                 values: pulumi.Output, after: list[command.remote.Command]) -> command.remote.Command:
        """The remote Command that runs one bootstrap step over SSH, pinned to the node's host key."""
        connection = self._connection(s, step, secrets)
        stdin: Optional[pulumi.Output[str]] = None
        triggers: list = [bootstrap.digest(step.command), node.domain.id]
        if step.stdin is not None:
            # stdin_for gives None only for a step that reads no stdin.
            stdin = pulumi.Output.secret(values.apply(lambda v: bootstrap.stdin_for(step, s, v) or ""))
            # The digest of a secret is kept secret too.
            triggers.append(pulumi.Output.secret(stdin.apply(bootstrap.digest)))
        return command.remote.Command(
            f"{name}-{step.id}",
            connection=connection,
            create=step.command,
            stdin=stdin,
            triggers=triggers,
            add_previous_output_in_env=False,
            logging=command.remote.Logging.STDOUT_AND_STDERR,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[node.domain, *after],
                # Nothing to undo on a VM that destroy removes anyway; never SSH into it then.
                deleted_with=node.domain,
            ),
        )
