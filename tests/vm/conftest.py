"""The VM tier: the program itself through the real engine (`pulumi up --stack lab`) against a
private libvirtd in the lab's namespaces. One lab for the session, always taken down at the end.

While the VM lab's emulated VMs boot (a busy host: each takes a core), the container pair soaks
at the timers a user gets by default (`soak_on_a_loaded_host`): no fault injected, the host
loaded by the VM tier itself. test_engine.py reads its verdict.

HAPX_LAB_REUSE=1 uses a VM lab that is already up; HAPX_LAB_KEEP=1 leaves it up afterwards.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from lab.labclient import LAB_DIR, LABCTL
from tests.labtier import lab_session, require

UP_TIMEOUT_S = 3600  # a cold engine build and image come first when nothing is cached
SOAK_MINUTES = 10
CONTAINERS_UP_TIMEOUT_S = 900


class Soak:
    """`lab/soak` running on the container lab in the background; wait() for its verdict."""

    def __init__(self, proc: subprocess.Popen, minutes: float) -> None:
        self.proc, self.deadline = proc, time.monotonic() + minutes * 60 + 300

    def wait(self) -> tuple[int, str]:
        """The soak's exit code and output, once it ends (bounded); the container lab is then taken down."""
        try:
            out, _ = self.proc.communicate(timeout=max(1, self.deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
            return -1, out + "\n(soak killed: past its bound)"
        finally:
            containers_down()
        return self.proc.returncode, out


def containers_down() -> None:
    """Take the soak's container lab down (idempotent)."""
    subprocess.run([sys.executable, str(LABCTL), "--backend", "containers", "down"], timeout=300,
                   stdout=subprocess.DEVNULL)


@pytest.fixture(scope="session")
def soak_on_a_loaded_host():
    """The containers stack with corosync's timers left at hapx's defaults, up in the container lab
    and soaking for SOAK_MINUTES while the VM lab comes up beside it."""
    require("containers")
    up = subprocess.run([sys.executable, str(LABCTL), "--backend", "containers", "up", "--default-timers"],
                        timeout=CONTAINERS_UP_TIMEOUT_S)
    if up.returncode != 0:
        containers_down()
        pytest.fail("labctl --backend containers up --default-timers (the soak's pair) failed; its output is above",
                    pytrace=False)
    proc = subprocess.Popen([sys.executable, str(LAB_DIR / "soak"), "--minutes", str(SOAK_MINUTES)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    soak = Soak(proc, SOAK_MINUTES)
    try:
        yield soak
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        containers_down()


@pytest.fixture(scope="session")
def lab(soak_on_a_loaded_host):
    """The VM lab, brought up once the soak beside it has started."""
    with lab_session("vm", UP_TIMEOUT_S) as lab:
        yield lab
