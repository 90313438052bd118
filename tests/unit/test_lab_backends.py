"""lab/backend.py: every registered backend offers the declared interface, and the lab's modules import as a package."""

import pytest

from lab.backend import BACKENDS, Backend, backend
from lab.labnet import LabError


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_every_registered_backend_offers_the_interface(name):
    b = backend(name)
    assert isinstance(b, Backend)
    assert b.NAME == name


def test_an_unknown_backend_is_refused_with_the_registered_names():
    with pytest.raises(LabError, match="containers or vm"):
        backend("hosts")
