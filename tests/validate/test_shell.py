"""The bootstrap steps: every script and command line that runs on a node parses in bash and
passes shellcheck (0.9, `-s bash`), with no code excluded."""

import pytest

from hapx import bootstrap
from tests.validate.tools.procs import CheckFailed
from tests.validate.tools.shell import check_shell


def test_step_files_pass_bash_n_and_shellcheck(stack):
    """steps/NN-<id>.sh as written by hapx.cli.render (shebang + the step's script)."""
    files = stack.step_files()
    assert len(files) == len(stack.steps) and all(f.is_file() for f in files)
    for path in files:
        assert path.read_text().startswith("#!/usr/bin/env bash\n")
        check_shell(path)


def test_step_scripts_pass_bash_n_and_shellcheck(stack, work):
    """Each Step.script exactly as the Command resources run it (`bash -c SCRIPT`, no shebang),
    the drains (run before a node's VM is rebuilt) too."""
    for step in [*stack.steps, *bootstrap.drains(stack.settings)]:
        path = work / f"{step.id}.bash"
        path.write_text(step.script)
        check_shell(path, shell="bash")


def test_step_command_lines_pass_bash_n_and_shellcheck(stack, work):
    """The command line each Command runs over SSH (`sudo bash -c '<script>' hapx-<kind>`)
    parses, quotes the script as one word, and carries no secret."""
    import shlex

    secrets = [stack.secrets.corosync_authkey, stack.secrets.stats_password]
    for step in [*stack.steps, *bootstrap.drains(stack.settings)]:
        path = work / f"{step.id}.command"
        path.write_text(step.command + "\n")
        check_shell(path, shell="bash")
        assert shlex.split(step.command) == ["sudo", "bash", "-c", step.script, f"hapx-{step.kind}"]
        assert not any(secret in step.command for secret in secrets)


# --- the check can fail -------------------------------------------------------------------

@pytest.mark.parametrize("script, words", [
    ("set -euo pipefail\nif true; then\n  echo missing fi\n", "bash -n rejected"),
    ("set -euo pipefail\ndir=$1\ncd $dir\nrm -rf $dir/*\n", "SC2086"),
    ("set -euo pipefail\nfor f in $(ls /etc/corosync); do echo \"$f\"; done\n", "SC2045"),
    ("set -euo pipefail\nkey=$(mktemp)\ntrap \"rm -f $key\" EXIT\n", "SC2064"),
], ids=["syntax", "unquoted", "ls-loop", "trap-quoting"])
def test_shell_check_rejects_broken_scripts(work, script, words):
    path = work / "broken.sh"
    path.write_text(script)
    with pytest.raises(CheckFailed) as err:
        check_shell(path)
    assert words in str(err.value)
