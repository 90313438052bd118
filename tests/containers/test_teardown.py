"""Last in the container tier: `labctl down` removes everything the lab made."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from labclient import labctl, state_file


def test_teardown_leaves_nothing(lab):
    state = lab.state
    ns, net_ino = state["ns"], state.get("net_ino")
    lab_dir = Path(state["dir"])
    res = labctl(lab.backend, "down", timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr

    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert not re.search(rf"^{re.escape(ns)}\b", netns, re.M), netns
    leftovers = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            ino = os.stat(f"/proc/{pid}/ns/net").st_ino
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if ino == net_ino or str(lab_dir) in cmdline or "lab/responder.py" in cmdline:
            leftovers.append(f"{pid}: {cmdline}")
    assert not leftovers, leftovers
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(lab_dir) not in mounts and f"/run/netns/{ns}" not in mounts
    assert not state_file(lab.backend).exists() and not lab_dir.exists()
    # And `down` again is a no-op.
    assert labctl(lab.backend, "down", timeout=60).returncode == 0
