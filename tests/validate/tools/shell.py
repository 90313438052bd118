"""Shell scripts: `bash -n`/`sh -n` and shellcheck 0.9, the here-documents steps carry, and a
bootstrap step run on this host against an offline CIB."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tests.validate.tools.procs import CheckFailed, ToolResult, private_mounts, run

if TYPE_CHECKING:
    from tests.validate.tools.crmsh import CrmEnv


def check_shell(path: Path, *, shell: str = "bash", exclude: Sequence[str] = ()) -> ToolResult:
    """`bash -n` (or `sh -n`) parses the script and `shellcheck -s SHELL` finds nothing.
    `exclude` lists shellcheck codes deliberately allowed; callers say why next to it."""
    if shell not in ("bash", "sh"):
        raise ValueError(shell)
    syntax = run([shell, "-n", path])
    if syntax.returncode != 0:
        raise CheckFailed(f"{shell} -n rejected {path}:\n{syntax.describe()}")
    argv = ["shellcheck", "-s", shell, "--norc"]
    if exclude:
        argv += ["-e", ",".join(exclude)]
    result = run([*argv, path])
    if result.returncode != 0:
        raise CheckFailed(f"shellcheck rejected {path}:\n{result.describe()}")
    return result


def heredoc(script: str, delimiter: str) -> str:
    """The body of the quoted here-document `<<'DELIMITER'` in a script, as bash reads it."""
    m = re.search(rf"<<'{re.escape(delimiter)}'\n(.*?)^{re.escape(delimiter)}$", script, re.DOTALL | re.MULTILINE)
    if not m:
        raise CheckFailed(f"no here-document <<'{delimiter}' in the script")
    return m.group(1)


def run_step_offline(script: Path, cib: Path, crm_env: CrmEnv, timeout: float = 30) -> ToolResult:
    """Run a bootstrap step script on this host against an offline CIB (`CIB_file`), in a
    private mount namespace with a tmpfs over /var/lib (where steps keep state) and
    /var/log/crmsh; bounded by `timeout` seconds."""
    argv = private_mounts(["timeout", "--kill-after=5", str(int(timeout)), "bash", str(script)],
                          tmpfs=["/var/lib", "/var/log/crmsh"])
    return run(argv, env=crm_env.env(cib), timeout=timeout + 15)
