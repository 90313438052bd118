"""Shared test fixtures: the stack files as plain dicts, the tiers'
order (unit, validate, containers, vm: cheapest first) and the lab figures' summary."""

from pathlib import Path

import pytest

from hapx.stackfile import load_stack_file

PROJECT = Path(__file__).resolve().parent.parent

TIERS = ("unit", "validate", "containers", "vm")
# Figures the lab tiers measured, printed in pytest's summary (they are not pass/fail bounds).
FIGURES: list[str] = []


def pytest_collection_modifyitems(config, items):
    """Run the tiers cheapest first; each file keeps its own order."""
    def rank(item):
        parts = Path(str(item.fspath)).relative_to(PROJECT / "tests").parts
        return TIERS.index(parts[0]) if parts[0] in TIERS else len(TIERS)

    items.sort(key=rank)


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.section("hapx lab figures")
        for line in FIGURES:
            terminalreporter.write_line(line)


@pytest.fixture
def figure():
    """Record one measured figure for the end-of-run summary (and print it for -s)."""
    def record(line: str) -> None:
        FIGURES.append(line)
        print(f"\n{line}", flush=True)
    return record


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
