"""Last in the container tier: `labctl down` removes everything the lab made."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from lab.labclient import labctl, state_file

RESPONDER = str(Path(__file__).resolve().parents[2] / "lab" / "responder.py")


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
        if ino == net_ino or str(lab_dir) in cmdline or RESPONDER in cmdline:
            leftovers.append(f"{pid}: {cmdline}")
    assert not leftovers, leftovers
    # Compare mount points exactly: another checkout's lab (hapx-ct4, /other/build/lab) may be up.
    points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    ours = [p for p in points if p == f"/run/netns/{ns}" or p == str(lab_dir) or p.startswith(f"{lab_dir}/")]
    assert not ours, ours
    assert not state_file(lab.backend).exists() and not lab_dir.exists()
    # And `down` again is a no-op.
    assert labctl(lab.backend, "down", timeout=60).returncode == 0
