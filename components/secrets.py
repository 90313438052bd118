"""Per-stack generated secrets as dynamic resources: created once, stable across `pulumi up`."""

from __future__ import annotations

import uuid
from typing import Any, Optional

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider


class _SshKeyPairProvider(ResourceProvider):
    """Creates an ed25519 key pair; a new comment replaces it, nothing else does."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        from hapx import keys

        pair = keys.ssh_keypair(props["comment"])
        return CreateResult(
            id_=uuid.uuid4().hex,
            outs={"comment": props["comment"], "private_key": pair.private, "public_key": pair.public},
        )

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = olds.get("comment") != news.get("comment")
        return DiffResult(changes=changed, replaces=["comment"] if changed else [])


class SshKeyPair(Resource, module="hapx", name="SshKeyPair"):
    """An ed25519 SSH key pair generated once per stack; the private key is a secret."""

    private_key: pulumi.Output[str]
    public_key: pulumi.Output[str]

    def __init__(self, name: str, comment: str, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(
            _SshKeyPairProvider(),
            name,
            {"comment": comment, "private_key": None, "public_key": None},
            pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["private_key"])),
        )


class _RandomSecretProvider(ResourceProvider):
    """Creates a random value of a kind: `authkey` (base64 corosync key) or `password`."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        from hapx import keys

        value = keys.corosync_authkey() if props["kind"] == "authkey" else keys.password()
        return CreateResult(id_=uuid.uuid4().hex, outs={"kind": props["kind"], "value": value})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = olds.get("kind") != news.get("kind")
        return DiffResult(changes=changed, replaces=["kind"] if changed else [])


class RandomSecret(Resource, module="hapx", name="RandomSecret"):
    """A random secret generated once per stack: a corosync authkey or a password."""

    value: pulumi.Output[str]

    def __init__(self, name: str, kind: str, opts: Optional[pulumi.ResourceOptions] = None):
        if kind not in ("authkey", "password"):
            raise ValueError(f"RandomSecret kind must be 'authkey' or 'password', got {kind!r}")
        super().__init__(
            _RandomSecretProvider(),
            name,
            {"kind": kind, "value": None},
            pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["value"])),
        )
