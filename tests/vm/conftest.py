"""The VM tier: the program itself through the real engine (`pulumi up --stack lab`) against a
private libvirtd in the lab's namespaces. One lab for the session, always taken down at the end.

HAPX_LAB_REUSE=1 uses a VM lab that is already up; HAPX_LAB_KEEP=1 leaves it up afterwards.
"""

from __future__ import annotations

import pytest

from tests.labtier import lab_session

UP_TIMEOUT_S = 3600  # a cold engine build and image come first when nothing is cached


@pytest.fixture(scope="session")
def lab():
    with lab_session("vm", UP_TIMEOUT_S) as lab:
        yield lab
