"""Shared test fixtures: the project on sys.path and the stack files as plain dicts."""

import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
if str(PROJECT) not in sys.path:
    sys.path.insert(0, str(PROJECT))

from hapx.settings import load_stack_file  # noqa: E402


@pytest.fixture
def dev_config() -> dict:
    """The dev stack's `hapx:` config, without the namespace."""
    return load_stack_file(str(PROJECT / "Pulumi.dev.yaml"))


@pytest.fixture
def three_node_config(dev_config) -> dict:
    """The dev stack with a third node."""
    cfg = dict(dev_config)
    cfg["nodes"] = list(cfg["nodes"]) + [{"name": "hapx-node03", "ip": "192.168.4.23"}]
    return cfg
