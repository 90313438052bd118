"""The lab's backends: what makes a lab's nodes, declared once, and the registry labctl and
labclient look them up in. A backend is a module (lab/ctlab.py: systemd-nspawn containers;
lab/vmlab.py: VMs through `pulumi up` against a private libvirtd); another one (hosts of
their own) registers by adding its module to BACKENDS. Standard library only.

Besides the interface, a backend may offer labctl's backend-specific commands: steps and
dns_host (containers), pulumi, refresh_facts, UP_TIMEOUT_S, virsh and in_libvirtd (vm);
labctl asks for them with hasattr.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol, cast, runtime_checkable

from lab.labnet import LabError

# Imported when asked for: a backend's module is loaded only by the programs that use it.
BACKENDS = {"containers": "lab.ctlab", "vm": "lab.vmlab"}


@runtime_checkable
class Backend(Protocol):
    """What labctl and labclient call on a backend. Every `state` is the lab's state.json as a dict
    (its "ns", "lab" with the pair's facts, and the backend's own keys)."""

    NAME: str  # its name in BACKENDS, `labctl --backend NAME`
    NS: str    # the network namespace the lab lives in
    DIR: Path  # where it keeps its state (DIR/state.json), logs and disks

    def load(self) -> dict:
        """The lab's state, or {} when it has none."""
        ...

    def up(self, keep_on_failure: bool = False) -> dict:
        """Bring the lab up (after a down() of what was left) and return its state."""
        ...

    def down(self, quiet: bool = False) -> int:
        """Remove everything up() made (idempotent); a count of what was removed."""
        ...

    def kill(self, state: dict, node: str) -> None:
        """Power loss of a node: it dies at once and vanishes from the link."""
        ...

    def start(self, state: dict, node: str) -> None:
        """Power a killed node on again."""
        ...

    def running(self, state: dict, node: str) -> bool:
        """Whether a node is powered on."""
        ...

    def ports(self, state: dict) -> dict[str, str]:
        """Each node's port on the lab's bridge (to cut the link between them)."""
        ...

    def change_args(self, render: Path | None, timeout: float) -> list[str]:
        """The labctl arguments that apply a changed configuration to the running lab."""
        ...


def backend(name: str) -> Backend:
    """The backend registered as name."""
    if name not in BACKENDS:
        raise LabError(f"unknown backend {name!r} ({' or '.join(BACKENDS)})")
    return cast(Backend, importlib.import_module(BACKENDS[name]))
