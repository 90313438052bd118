"""lab/pulumirun.py: a pulumi that overruns its bound is interrupted, then killed, and the stack
lock it left in a file backend is removed (only its own), with the log's tail in the message.

The stand-in for pulumi is a Python process that takes a stack lock the way pulumi's file
backend does (pkg/backend/diy/lock.go, pulumi 3.274: `.pulumi/locks/organization/PROJECT/STACK/
ID.json` holding pid, username, hostname and timestamp) and starts a child, as pulumi starts
its plugins, in its own process group.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path

import pytest

from lab.pulumirun import PulumiTimeout, lock_files, run_bounded

LOCK_DIR = Path(".pulumi/locks/organization/hapx/lab")
BOUND_S = 1.0
GRACE_S = 0.5

# argv[1]: the state directory; argv[2]: "cancels" (on SIGINT it unlocks and exits, as pulumi
# does when its operations finish) or "stuck" (it ignores SIGINT). It prints the plugin's pid.
STAND_IN = r"""
import datetime, getpass, json, os, signal, socket, subprocess, sys, time, uuid
state, mode = sys.argv[1], sys.argv[2]
lock = os.path.join(state, ".pulumi/locks/organization/hapx/lab", f"{uuid.uuid4()}.json")
os.makedirs(os.path.dirname(lock), exist_ok=True)
with open(lock, "w") as f:
    json.dump({"pid": os.getpid(), "username": getpass.getuser(), "hostname": socket.gethostname(),
               "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat()}, f)
plugin = subprocess.Popen([sys.executable, "-c",
                           "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep(60)"])
def cancel(*_):
    os.unlink(lock)
    plugin.kill()
    sys.exit(255)
signal.signal(signal.SIGINT, cancel if mode == "cancels" else signal.SIG_IGN)
print(f"plugin-pid {plugin.pid}", flush=True)
time.sleep(60)
"""


def foreign_lock(state: Path) -> Path:
    """A lock held by another process: never ours to remove."""
    path = state / LOCK_DIR / "other.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": 1, "username": "root", "hostname": socket.gethostname(),
                                "timestamp": "2026-01-01T00:00:00Z"}))
    return path


def overrun(tmp_path: Path, mode: str) -> tuple[str, Path]:
    """Run the stand-in past its bound; the PulumiTimeout's message and the log."""
    log = tmp_path / "build" / "pulumi.log"
    with pytest.raises(PulumiTimeout) as err:
        run_bounded([sys.executable, "-c", STAND_IN, str(tmp_path), mode], BOUND_S, log,
                    state_dir=tmp_path, grace_s=GRACE_S)
    return str(err.value), log


def plugin_gone(log: Path) -> bool:
    """The stand-in's plugin has ended (dead, or a zombie its new parent has not reaped yet)."""
    pid = int(log.read_text().split("plugin-pid ")[-1].split()[0])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def test_a_pulumi_that_cancels_on_ctrl_c_unlocks_the_stack_itself(tmp_path):
    other = foreign_lock(tmp_path)
    message, log = overrun(tmp_path, "cancels")
    assert "interrupted; it left no stack lock" in message
    assert lock_files(tmp_path) == [other]
    assert "plugin-pid " in message  # the log's tail
    assert plugin_gone(log)


def test_a_stuck_pulumi_is_killed_and_its_lock_removed(tmp_path):
    other = foreign_lock(tmp_path)
    message, log = overrun(tmp_path, "stuck")
    assert "killed; removed the stack lock it left" in message and str(LOCK_DIR) in message
    assert lock_files(tmp_path) == [other]
    assert plugin_gone(log)  # the plugin ignored SIGINT: it went with the group's SIGKILL


def test_output_within_the_bound_is_returned_and_logged(tmp_path):
    log = tmp_path / "pulumi.log"
    res = run_bounded([sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr)"],
                      10, log, state_dir=tmp_path)
    assert (res.returncode, res.stdout, res.stderr) == (0, "out\n", "err\n")
    assert "out\n" in log.read_text() and "err\n" in log.read_text()
