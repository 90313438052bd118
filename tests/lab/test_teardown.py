"""Last in the lab tier (see conftest.py): `labctl down` removes everything the lab made."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import labclient


def test_teardown_leaves_nothing(lab):
    state = json.loads(labclient.STATE_FILE.read_text())
    ns, net_ino, mnt_ino = state["ns"], state.get("net_ino"), state.get("mnt_ino")
    res = labclient.labctl("down", timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr

    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert not re.search(rf"^{re.escape(ns)}\b", netns, re.M), netns
    leftovers = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            inos = {os.stat(f"/proc/{pid}/ns/{k}").st_ino for k in ("net", "mnt")}
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if inos & {net_ino, mnt_ino} or "guest=hapx-node" in cmdline or "lab/responder.py" in cmdline:
            leftovers.append(f"{pid}: {cmdline}")
    assert not leftovers, leftovers
    mounts = Path("/proc/self/mountinfo").read_text()
    assert "build/lab" not in mounts and f"/run/netns/{ns}" not in mounts
    assert not labclient.STATE_FILE.parent.exists(), "build/lab/state (domains, volumes) is still there"
    # And `down` again is a no-op.
    assert labclient.labctl("down", timeout=60).returncode == 0
