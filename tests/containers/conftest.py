"""The container tier: the pair at native speed, each node a systemd-nspawn container booted
from the lab image's tree, cloud-init seeded with the rendered files, the plan's steps over SSH.
One lab for the session (test_cluster.py, test_faults.py, then test_teardown.py takes it down).

HAPX_LAB_REUSE=1 uses a container lab that is already up; HAPX_LAB_KEEP=1 leaves it up afterwards.
HAPX_LAB_BACKEND=vm runs the fault suite (test_faults.py, `make faults-vm`) on the VM lab instead.
"""

from __future__ import annotations

import os

import pytest

from tests.labtier import lab_session

UP_TIMEOUT_S = 3600  # a cold image build (and, for the VM lab, the engine) comes first when nothing is cached
BACKEND = os.environ.get("HAPX_LAB_BACKEND", "containers")  # labctl's own switch


@pytest.fixture(scope="session")
def lab():
    with lab_session(BACKEND, UP_TIMEOUT_S) as lab:
        yield lab
