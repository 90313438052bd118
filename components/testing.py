"""Pulumi mocks for a program that uses HaproxyCluster (pulumi.runtime.set_mocks): unit tests of
the program's resource graph, as hapx's own unit tier runs, with no engine and no hypervisor."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi

from hapx import keys

# How the type token of every resource a dynamic provider (components/secrets.py) manages begins.
DYNAMIC_TYPE = "pulumi-python:dynamic"


def generated_outputs(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """What hapx's secret providers would create for these inputs (their create() does not run
    under mocks): an SSH key pair for a `comment`, else a fresh value of its `kind`."""
    if "comment" in inputs:
        pair = keys.ssh_keypair(inputs["comment"])
        return {"private_key": pair.private, "public_key": pair.public}
    return {"value": keys.corosync_authkey() if inputs.get("kind") == "authkey" else keys.password()}


class HapxMocks(pulumi.runtime.Mocks):
    """Each resource's outputs are its inputs, plus the generated secrets; `resources` records
    every registration by name (type token and inputs)."""

    def __init__(self) -> None:
        self.resources: dict[str, pulumi.runtime.MockResourceArgs] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        """Record the resource and answer with its outputs."""
        self.resources[args.name] = args
        outputs = dict(args.inputs)
        if args.typ.startswith(DYNAMIC_TYPE):
            outputs.update(generated_outputs(args.inputs))
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, None]:
        """No provider function is called by the component."""
        return {}, None
