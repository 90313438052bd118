"""Fixtures of the VALIDATE tier: the rendered stacks, per-test work directories, and the
host checks (root for `ip netns`, the Debian tools present, no namespace left behind)."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from hapx import bootstrap
from hapx.bootstrap import Step
from hapx.cli.render import render_all, sample_secrets
from hapx.model import Node, Settings
from hapx.rendering import SecretValues
from hapx.settings import settings_from_dict
from tests.validate.tools.crmsh import CrmEnv, make_crm_env
from tests.validate.tools.host import missing_tools
from tests.validate.tools.netns import delete_netns, own_netns, stale_netns
from tests.validate.variants import VARIANTS


@pytest.fixture(scope="session", autouse=True)
def validate_host():
    """Fail (never skip) when the host cannot run the tier; clear namespaces a crashed run left."""
    if os.geteuid() != 0:
        pytest.fail("the validate tier needs root (ip netns, unshare --mount): run it as root", pytrace=False)
    missing = missing_tools()
    if missing:
        pytest.fail("the validate tier needs: " + "; ".join(missing)
                    + " (scripts/install-deps validate)", pytrace=False)
    for name in stale_netns():
        delete_netns(name)
    yield
    for name in own_netns():
        delete_netns(name)


@pytest.fixture(autouse=True)
def no_namespace_left_behind():
    """Every test deletes the network namespaces it made, also when it fails."""
    yield
    left = own_netns()
    for name in left:
        delete_netns(name)
    assert not left, f"network namespaces left behind: {left}"


@dataclass(frozen=True)
class RenderedStack:
    """One stack rendered by hapx.cli.render.render_all into a temporary directory."""

    name: str
    settings: Settings
    secrets: SecretValues
    root: Path
    plan: dict
    steps: tuple[Step, ...]

    def node_dir(self, node: Node) -> Path:
        return self.root / "nodes" / node.name

    def step_files(self) -> list[Path]:
        return [self.root / s["script"] for s in self.plan["steps"]]


def render_stack(name: str, out: Path) -> RenderedStack:
    """The variant `name` rendered into `out` with fresh test secrets."""
    settings = settings_from_dict(VARIANTS[name]())
    secrets, private_key = sample_secrets(settings)
    plan = render_all(settings, secrets, private_key, out)
    return RenderedStack(name, settings, secrets, out, plan, tuple(bootstrap.plan(settings)))


@pytest.fixture(scope="session")
def all_stacks(tmp_path_factory) -> dict[str, RenderedStack]:
    """Every variant rendered once, by name; removed at the end of the session. Rendered
    together so that a tool can check every variant's files in one process (see
    test_cloud_init.cloud_init_runs): a tool's start-up dominates one file's check."""
    base = tmp_path_factory.mktemp("stacks")
    yield {name: render_stack(name, base / name / "out") for name in VARIANTS}
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session", params=list(VARIANTS), ids=list(VARIANTS))
def stack(request, all_stacks) -> RenderedStack:
    """Each variant, rendered once (see all_stacks)."""
    return all_stacks[request.param]


@pytest.fixture(scope="session")
def dev_stack(tmp_path_factory) -> RenderedStack:
    """The dev stack alone, for tests that break one of its files on purpose."""
    base = tmp_path_factory.mktemp("stack-dev-negative")
    yield render_stack("dev", base / "out")
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def work(request, tmp_path_factory) -> Path:
    """A scratch directory for one test, removed afterwards (pass or fail)."""
    path = tmp_path_factory.mktemp("work")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def crm_env(work) -> CrmEnv:
    """crmsh's environment for one test: its own HOME, and the crm_resource shim for systemd: agents."""
    return make_crm_env(work)
