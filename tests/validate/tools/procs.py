"""Running a tool, shared by every module of the tier: `run` with a bounded wait, the
`ToolResult` it returns, `CheckFailed` for a tool's rejection, a private mount namespace for
tools that write logs or state, threads for tools that mostly wait, and the broken copy a
negative test writes."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

TIMEOUT_S = 60
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PRIVATE_MOUNTS_TAG = "hapx-val-private-mounts"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class CheckFailed(AssertionError):
    """A real tool rejected a rendered file (or a harness check on its output failed)."""


def plain(text: str) -> str:
    """Text without terminal colour codes (crmsh colours ERROR/WARNING even without a tty)."""
    return _ANSI.sub("", text)


@dataclass(frozen=True)
class ToolResult:
    """What one tool run returned."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        """stdout and stderr together, without colour codes."""
        return plain(self.stdout + ("\n" if self.stdout and self.stderr else "") + self.stderr)

    def command_line(self) -> str:
        """The command, with private_mounts' wrapper shown as a short prefix."""
        argv = list(self.argv)
        if argv[:2] == ["unshare", "--mount"] and PRIVATE_MOUNTS_TAG in argv:
            rest = argv[argv.index(PRIVATE_MOUNTS_TAG) + 1:]
            dirs, inner = rest[:rest.index("--")], rest[rest.index("--") + 1:]
            return f"[private mounts, tmpfs over {' '.join(dirs) or 'nothing'}] {' '.join(inner)}"
        return " ".join(argv)

    def describe(self) -> str:
        return f"$ {self.command_line()}\nexit status {self.returncode}\n{self.output.rstrip()}"


def run(argv: Sequence[str], *, env: Optional[Mapping[str, str]] = None, input: Optional[str] = None,
        cwd: Optional[Path] = None, timeout: float = TIMEOUT_S) -> ToolResult:
    """Run a command with a bounded wait and capture its output (never raises on exit status)."""
    argv = tuple(str(a) for a in argv)
    try:
        proc = subprocess.run(argv, input=input, capture_output=True, text=True, env=dict(env) if env else None,
                              cwd=str(cwd) if cwd else None, timeout=timeout)
    except subprocess.TimeoutExpired as err:
        raise CheckFailed(f"$ {' '.join(argv)}\ntimed out after {timeout}s\n{err.stdout or ''}{err.stderr or ''}") from err
    return ToolResult(argv, proc.returncode, proc.stdout, proc.stderr)


def run_ok(argv: Sequence[str], **kw) -> ToolResult:
    """Run a command that must succeed (harness plumbing, not a check)."""
    result = run(argv, **kw)
    if result.returncode != 0:
        raise RuntimeError(f"harness command failed:\n{result.describe()}")
    return result


def parallel(fn, items: Sequence) -> list:
    """fn over items on as many threads as cores (each call mostly waits for a tool); the
    first exception is raised after all calls have finished."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, min(len(items), os.cpu_count() or 1))) as pool:
        futures = [pool.submit(fn, item) for item in items]
    return [f.result() for f in futures]


def private_mounts(argv: Sequence[str], tmpfs: Iterable[str] = ()) -> list[str]:
    """argv wrapped to run in a private mount namespace with a tmpfs over each existing dir in
    `tmpfs`, and /dev/log (if any) hidden, so the tool's log files and state stay off the host."""
    script = (
        'set -e\n'
        'while [ "$1" != -- ]; do\n'
        '  if [ -d "$1" ]; then mount -t tmpfs -o mode=0755,size=64m hapx-val "$1"; fi\n'
        '  shift\n'
        'done\n'
        'shift\n'
        'if [ -S /dev/log ]; then mount --bind /dev/null /dev/log; fi\n'
        'exec "$@"\n'
    )
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, PRIVATE_MOUNTS_TAG,
            *tmpfs, "--", *argv]


def write_broken(directory: Path, name: str, text: str, breakage) -> Path:
    """Write `breakage(text)` to directory/name for a negative test; the breakage must change it."""
    broken = breakage(text)
    assert broken != text, f"the breakage did not change {name}"
    path = directory / name
    path.write_text(broken)
    return path
