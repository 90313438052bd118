"""The container tier: the pair at native speed, each node a systemd-nspawn container booted
from the lab image's tree, cloud-init seeded with the rendered files, the plan's steps over SSH.
One lab for the session (test_cluster.py, test_faults.py, then test_teardown.py takes it down).

HAPX_LAB_REUSE=1 uses a container lab that is already up; HAPX_LAB_KEEP=1 leaves it up afterwards.
"""

from __future__ import annotations

import pytest

from tests.labtier import lab_session

UP_TIMEOUT_S = 1800  # a cold image build comes first when nothing is cached


@pytest.fixture(scope="session")
def lab():
    with lab_session("containers", UP_TIMEOUT_S) as lab:
        yield lab
