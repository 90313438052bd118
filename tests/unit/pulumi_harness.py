"""Run __main__.py under Pulumi mocks and capture the resource graph and the stack outputs."""

from __future__ import annotations

import asyncio
import json
import runpy
from dataclasses import dataclass, field
from typing import Any

import pulumi

from components.testing import DYNAMIC_TYPE, generated_outputs
from tests.conftest import PROJECT

# How the SDK marks a secret value when it serializes inputs for the (mock) engine.
SECRET_SIG = "4dabf18193072939515e22adb298388d"
SECRET_VALUE = "1b47061264138c4ac30d75fd1eb44270"


def is_secret_value(value: Any) -> bool:
    """True when a serialized input value is marked secret."""
    return isinstance(value, dict) and value.get(SECRET_SIG) == SECRET_VALUE


def unwrap(value: Any) -> Any:
    """A serialized input with every secret marker removed."""
    if is_secret_value(value):
        return unwrap(value["value"])
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


# Generated secrets survive from run to run, as they do in a stack's state.
_STATE: dict[tuple, dict[str, str]] = {}


def _generated(args: pulumi.runtime.MockResourceArgs) -> dict[str, str]:
    """What the dynamic providers' create() would return (it does not run under mocks)."""
    ident = (args.typ, args.name, args.inputs.get("comment"), args.inputs.get("kind"))
    if ident not in _STATE:
        _STATE[ident] = generated_outputs(args.inputs)
    return _STATE[ident]


class GraphMocks(pulumi.runtime.Mocks):
    """Records each registered resource; fakes what providers would compute."""

    def __init__(self) -> None:
        self.resources: dict[str, pulumi.runtime.MockResourceArgs] = {}
        self.serialized: dict[str, dict] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.serialized[args.name] = args.inputs
        args.inputs = unwrap(args.inputs)
        outputs = dict(args.inputs)
        if args.typ.startswith(DYNAMIC_TYPE):
            outputs.update(_generated(args))
        self.resources[args.name] = args
        return [f"{args.name}-id", outputs]

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}


@dataclass
class Graph:
    """What one program run registered and exported."""

    resources: dict[str, pulumi.runtime.MockResourceArgs]
    serialized: dict[str, dict] = field(default_factory=dict)  # inputs with their secret markers
    types: dict[str, str] = field(default_factory=dict)
    depends_on: dict[str, set[str]] = field(default_factory=dict)
    parents: dict[str, str] = field(default_factory=dict)
    opts: dict[str, pulumi.ResourceOptions] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    secret_outputs: set[str] = field(default_factory=set)
    secret_inputs: dict[str, set[str]] = field(default_factory=dict)
    objects: dict[str, Any] = field(default_factory=dict)

    def of_type(self, token: str) -> dict[str, pulumi.runtime.MockResourceArgs]:
        return {n: r for n, r in self.resources.items() if r.typ == token}


def _config_values(config: dict[str, Any]) -> dict[str, str]:
    return {f"hapx:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}


def run_program(config: dict[str, Any], stack: str = "dev", secret_config: dict[str, str] | None = None,
                mocks: GraphMocks | None = None, plain_config: dict[str, str] | None = None) -> Graph:
    """Run the real __main__.py under mocks with the given `hapx:` config (secret_config: set with
    --secret; plain_config: full `namespace:key` values as given, not secret)."""
    mocks = mocks or GraphMocks()
    pulumi.runtime.set_mocks(mocks, project="hapx", stack=stack, preview=False)
    values = _config_values(config)
    values.update(plain_config or {})
    secret_keys = []
    for k, v in (secret_config or {}).items():
        values[f"hapx:{k}"] = v
        secret_keys.append(f"hapx:{k}")
    pulumi.runtime.set_all_config(values, secret_keys)

    graph = Graph(resources=mocks.resources, serialized=mocks.serialized)
    exported: dict[str, Any] = {}
    inputs_to_check: dict[str, dict[str, Any]] = {}

    active = [True]

    def record(args: pulumi.ResourceTransformationArgs):
        # Stack transformations outlive a run: a finished run's recorder must not record.
        if not active[0]:
            return None
        graph.types[args.name] = args.type_
        graph.opts[args.name] = args.opts
        graph.objects[args.name] = args.resource
        graph.depends_on[args.name] = {d._name for d in (args.opts.depends_on or [])}
        if args.opts.parent is not None:
            graph.parents[args.name] = args.opts.parent._name
        inputs_to_check[args.name] = dict(args.props or {})
        return None

    async def settle() -> None:
        for name, value in exported.items():
            out = pulumi.Output.from_input(value)
            graph.outputs[name] = await out.future()
            if await out.is_secret():
                graph.secret_outputs.add(name)
        for rname, props in inputs_to_check.items():
            for key, value in props.items():
                if isinstance(value, pulumi.Output) and await value.is_secret():
                    graph.secret_inputs.setdefault(rname, set()).add(key)

    original_export = pulumi.export

    @pulumi.runtime.test
    def run():
        pulumi.runtime.register_stack_transformation(record)
        pulumi.export = lambda name, value: exported.__setitem__(name, value)
        try:
            runpy.run_path(str(PROJECT / "__main__.py"), run_name="__pulumi_main__")
        finally:
            pulumi.export = original_export
        return asyncio.ensure_future(settle())

    try:
        run()
    finally:
        active[0] = False
    return graph
