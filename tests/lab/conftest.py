"""The lab tier: real VMs. One session-scoped lab (render, `labctl up`), always `labctl down` at the end.

Environment:
  HAPX_LAB_RENDER=DIR   use this render output as it is (default: render the lab stack into
                        build/lab/render first)
  HAPX_LAB_REUSE=1      use the lab that is already up instead of bringing up a new one
  HAPX_LAB_KEEP=1       leave the lab up after the session (debugging); `lab/labctl down` removes it
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(PROJECT / "lab"))

import labclient  # noqa: E402

UP_TIMEOUT_S = 900


def _missing_prerequisites() -> str | None:
    if os.geteuid() != 0:
        return "the lab needs root (network namespaces, libvirtd)"
    for tool in ("libvirtd", "virsh", "qemu-system-x86_64", "qemu-img", "mmdebstrap", "genisoimage",
                 "nsenter", "unshare", "ip", "ssh", "openssl", "curl"):
        if not shutil.which(tool):
            return f"{tool} is missing: scripts/install-deps lab"
    return None


# Figures the lab tests measured, printed in pytest's summary (they are not pass/fail bounds).
FIGURES: list[str] = []


@pytest.fixture
def figure():
    """Record one measured figure for the end-of-run summary (and print it for -s)."""
    def record(line: str) -> None:
        FIGURES.append(line)
        print(f"\n{line}", flush=True)
    return record


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.section("hapx lab figures")
        for line in FIGURES:
            terminalreporter.write_line(line)


# One lab for the whole tier: the service checks, then the fault suite, then the teardown.
LAB_FILE_ORDER = ("test_lab.py", "test_faults.py", "test_teardown.py")


def pytest_collection_modifyitems(config, items):
    def rank(item):
        name = Path(str(item.fspath)).name
        in_lab = "tests/lab" in str(item.fspath)
        return (in_lab, LAB_FILE_ORDER.index(name) if in_lab and name in LAB_FILE_ORDER else len(LAB_FILE_ORDER))

    items.sort(key=rank)  # stable: each file keeps its own order
    reason = _missing_prerequisites()
    if reason:
        skip = pytest.mark.skip(reason=reason)
        for item in items:
            if "tests/lab" in str(item.fspath):
                item.add_marker(skip)


def render_dir() -> Path:
    """The render output the lab boots: $HAPX_LAB_RENDER, or the lab stack rendered afresh."""
    given = os.environ.get("HAPX_LAB_RENDER")
    if given:
        return Path(given).resolve()
    out = PROJECT / "build" / "lab" / "render"
    subprocess.run([sys.executable, "-m", "hapx.render", "--stack", "lab", "--out", str(out)],
                   cwd=PROJECT, check=True, timeout=120)
    return out


@pytest.fixture(scope="session")
def lab():
    """The lab, up with every plan step applied; torn down at the end whatever happened."""
    try:
        if os.environ.get("HAPX_LAB_REUSE") and labclient.STATE_FILE.exists():
            yield labclient.Lab()
            return
        # Its output (progress, phase timings) goes to pytest's capture: shown with -s or on failure.
        res = subprocess.run([sys.executable, str(labclient.LABCTL), "up", "--render", str(render_dir())],
                             timeout=UP_TIMEOUT_S)
        if res.returncode != 0:
            pytest.fail(f"labctl up failed ({res.returncode}); its output is above", pytrace=False)
        yield labclient.Lab()
    finally:
        if not os.environ.get("HAPX_LAB_KEEP"):
            subprocess.run([sys.executable, str(labclient.LABCTL), "down"], timeout=300)
