"""Run `pulumi` with a bound that leaves the stack usable: on timeout (or when the caller is
interrupted) pulumi gets Ctrl-C as a terminal would send it, then SIGKILL, and a lock it
left on a file-backend stack is removed. Its full output goes to a log file. Standard library only.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

# How long pulumi may take to cancel after Ctrl-C: it lets running operations finish and writes
# the state, then unlocks the stack. A Command running over SSH can take longer: it is killed.
INTERRUPT_GRACE_S = 30.0
KILL_WAIT_S = 10.0
TAIL_LINES = 40


class PulumiTimeout(RuntimeError):
    """pulumi did not finish within its bound; the message says what was done about it."""


def interrupt_group(proc: subprocess.Popen, grace_s: float = INTERRUPT_GRACE_S) -> str:
    """End proc's process group: SIGINT (pulumi cancels, and its plugins see Ctrl-C too), wait
    up to grace_s, then SIGKILL; returns how it ended ("exited", "interrupted" or "killed")."""
    if proc.poll() is not None:
        return "exited"
    pgid = proc.pid  # the caller started it with start_new_session=True
    try:
        os.killpg(pgid, signal.SIGINT)
        proc.wait(timeout=grace_s)
        how = "interrupted"
    except subprocess.TimeoutExpired:
        how = "killed"
    except ProcessLookupError:
        how = "exited"
    # Plugins that outlived the CLI (it was killed, or left them behind) go too.
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=KILL_WAIT_S)
    return how


def lock_files(state_dir: Path) -> list[Path]:
    """Every stack lock in a file backend (`STATE/.pulumi/locks/organization/PROJECT/STACK/ID.json`)."""
    return sorted((state_dir / ".pulumi" / "locks").glob("**/*.json"))


def clear_locks_of(state_dir: Path, pid: int) -> list[Path]:
    """Remove the locks that process pid of this host left (it has ended); the paths removed."""
    removed = []
    host = socket.gethostname()
    for path in lock_files(state_dir):
        try:
            owner = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if owner.get("pid") == pid and owner.get("hostname") == host:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def tail(path: Path, lines: int = TAIL_LINES) -> str:
    """The last lines of a text file ("" when it does not exist)."""
    try:
        with open(path, errors="replace") as f:
            return "".join(deque(f, maxlen=lines))
    except FileNotFoundError:
        return ""


def run_bounded(argv: list[str], timeout: float, log_path: Path | None, state_dir: Path | None = None,
                echo: bool = False, grace_s: float = INTERRUPT_GRACE_S, **popen) -> subprocess.CompletedProcess:
    """argv in a process group of its own, bounded by timeout; stdout (and stderr, merged when
    echo) appended to log_path (None: output with secrets, not logged) and, with echo, streamed
    to stdout. On timeout raise PulumiTimeout, after interrupting the group and removing the
    stack lock it left in state_dir, with the log's tail in the message."""
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
    logfile = open(log_path, "a") if log_path is not None else None
    out: list[str] = []
    err: list[str] = []
    write = threading.Lock()

    def pump(stream, sink: list[str], to_stdout: bool) -> None:
        for line in stream:
            sink.append(line)
            with write:
                if logfile:
                    logfile.write(line)
                    logfile.flush()
                if to_stdout:
                    sys.stdout.write(line)
                    sys.stdout.flush()

    try:
        if logfile:
            logfile.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(argv)}\n")
            logfile.flush()
        proc = subprocess.Popen(argv, text=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT if echo else subprocess.PIPE, start_new_session=True,
                                **popen)
        readers = [threading.Thread(target=pump, args=(proc.stdout, out, echo), daemon=True)]
        if proc.stderr is not None:
            readers.append(threading.Thread(target=pump, args=(proc.stderr, err, False), daemon=True))
        for r in readers:
            r.start()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired as expired:
            how = interrupt_group(proc, grace_s)
            removed = clear_locks_of(state_dir, proc.pid) if state_dir is not None else []
            note = (f"; removed the stack lock it left: {', '.join(map(str, removed))}" if removed
                    else "; it left no stack lock")
            last = f"\n--- last lines of {log_path}:\n{tail(log_path)}" if log_path else ""
            raise PulumiTimeout(f"timed out after {timeout:.0f}s ({how}{note}): {' '.join(argv)}{last}") from expired
        finally:
            # Interrupted ourselves (Ctrl-C, SIGTERM): the child must not outlive us holding the lock.
            if proc.poll() is None:
                interrupt_group(proc, grace_s)
                if state_dir is not None:
                    clear_locks_of(state_dir, proc.pid)
            for r in readers:
                r.join(timeout=KILL_WAIT_S)
    finally:
        if logfile:
            logfile.close()
    return subprocess.CompletedProcess(argv, proc.returncode, "".join(out), "".join(err))
