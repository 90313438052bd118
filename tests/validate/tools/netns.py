"""The tier's network namespaces: a throwaway one per check (`netns`), named
`hapx-val-<pid>-<n>` so the conftest finds those a crashed run left (`stale_netns`)."""

from __future__ import annotations

import contextlib
import itertools
import os
import re
from collections.abc import Iterator
from pathlib import Path

from lab.labnet import pid_alive
from tests.validate.tools.procs import run, run_ok

NETNS_PREFIX = "hapx-val-"
NETNS_DIR = Path("/run/netns")  # where `ip netns add` mounts a named namespace (iproute2's NETNS_RUN_DIR)
_netns_seq = itertools.count()


def list_netns() -> list[str]:
    """The named network namespaces, as `ip netns list` reads them (the entries of /run/netns):
    read here directly, since every test's teardown asks (one `ip` process per test otherwise)."""
    try:
        return sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return []


def stale_netns() -> list[str]:
    """Namespaces of this tier whose creating process is gone (left by a crashed run)."""
    stale = []
    for name in list_netns():
        m = re.match(rf"^{re.escape(NETNS_PREFIX)}(\d+)-\d+$", name)
        if m and not pid_alive(int(m.group(1))):
            stale.append(name)
    return stale


def own_netns() -> list[str]:
    return [n for n in list_netns() if n.startswith(f"{NETNS_PREFIX}{os.getpid()}-")]


def delete_netns(name: str) -> None:
    if not name.startswith(NETNS_PREFIX):
        raise ValueError(f"refusing to delete network namespace {name!r}: not one of the tier's")
    run(["ip", "netns", "delete", name])


@contextlib.contextmanager
def netns(*addresses: str) -> Iterator[str]:
    """A throwaway network namespace with `addresses` (/32) on its loopback; always deleted."""
    name = f"{NETNS_PREFIX}{os.getpid()}-{next(_netns_seq)}"
    run_ok(["ip", "netns", "add", name])
    try:
        run_ok(["ip", "-n", name, "link", "set", "lo", "up"])
        for address in addresses:
            run_ok(["ip", "-n", name, "addr", "add", f"{address}/32", "dev", "lo"])
        yield name
    finally:
        delete_netns(name)
