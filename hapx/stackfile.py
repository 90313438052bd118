"""Read a Pulumi stack file (Pulumi.<stack>.yaml) as Pulumi reads it: YAML 1.2, clear errors.

Pulumi parses stack files with a YAML 1.2 parser, PyYAML implements YAML 1.1: there an
unquoted MAC such as 52:54:00:12:34:56 is a base-60 integer, `on`/`no` are booleans and
017 is octal. The loader below resolves plain scalars by YAML 1.2's core schema instead, so
`make check` sees the values `pulumi up` sees.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from hapx.model import GivenSecret
from hapx.spec import NAMESPACE, SECRET_KEYS


class StackFileError(ValueError):
    """The stack file cannot be read; the message says where and why."""


class Yaml12Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 core-schema scalars (no yes/no/on/off, base 60 or dates)."""


Yaml12Loader.yaml_implicit_resolvers = {}
for _tag, _pattern, _first in (
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", list("~nN") + [""]),
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", list("-+0123456789")),
    ("tag:yaml.org,2002:float",
     r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
     list("-+.0123456789")),
    ("tag:yaml.org,2002:merge", r"^<<$", ["<"]),
):
    Yaml12Loader.add_implicit_resolver(_tag, re.compile(_pattern), _first)


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = loader.construct_scalar(node)
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text, 10)  # YAML 1.2: a leading zero is not octal


Yaml12Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


@dataclass
class StackFile:
    """A stack file's `hapx:` settings (namespace removed) and its other config keys."""

    hapx: dict[str, Any] = field(default_factory=dict)
    other_keys: list[str] = field(default_factory=list)


def _line(err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None)
    return f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""


def parse(text: bytes, name: str) -> StackFile:
    """The settings in a stack file's bytes; raise StackFileError naming the file and the problem."""
    try:
        doc = yaml.load(text.decode("utf-8"), Loader=Yaml12Loader)  # noqa: S506 (a safe loader)
    except UnicodeDecodeError as err:
        raise StackFileError(f"{name}: not UTF-8 text (at byte offset {err.start})") from None
    except yaml.YAMLError as err:
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise StackFileError(f"{name}: not valid YAML: {problem}{_line(err)}") from None
    if doc is None:
        return StackFile()
    if not isinstance(doc, dict):
        raise StackFileError(f"{name}: must be a YAML object (config: ...), got a {type(doc).__name__}")
    config = doc.get("config") or {}
    if not isinstance(config, dict):
        raise StackFileError(f"{name}: config: must be an object of `namespace:key: value`, "
                             f"got a {type(config).__name__}")
    out = StackFile()
    for key, value in config.items():
        if not isinstance(key, str):
            raise StackFileError(f"{name}: config: key {key!r} is not a string (write `{NAMESPACE}:key`)")
        ns, sep, short = key.partition(":")
        if not sep:
            ns, short = NAMESPACE, key  # Pulumi puts a key without a namespace in the project's
        if ns != NAMESPACE:
            out.other_keys.append(key)
            continue
        if isinstance(value, dict) and set(value) == {"secure"}:
            if short not in SECRET_KEYS:
                raise StackFileError(f"{name}: {key}: is encrypted, so it cannot be checked here; only "
                                     f"{', '.join(SECRET_KEYS)} are secrets")
            value = GivenSecret(None, encrypted=True)
        out.hapx[short] = value
    return out


def read(path: str) -> StackFile:
    """The settings in the stack file at path."""
    with open(path, "rb") as fh:
        return parse(fh.read(), path.rsplit("/", 1)[-1])


def load_stack_file(path: str) -> dict[str, Any]:
    """Read a Pulumi.<stack>.yaml and return its `hapx:` config without the namespace prefix."""
    return read(path).hapx
