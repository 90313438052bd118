"""crmsh 4.4 against an offline CIB: its environment (a HOME of its own, and a crm_resource shim
answering the meta-data questions a build host cannot), `crm configure load update` and
whether loading again changes nothing."""

from __future__ import annotations

import functools
import glob
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from tests.validate.tools.agents import HAPX_AGENTS
from tests.validate.tools.pacemaker import cib_state
from tests.validate.tools.procs import BASE_PATH, CheckFailed, ToolResult, private_mounts, run

_SYSTEMD_META = re.compile(
    rb'<\?xml version="1\.0"\?>\n<!DOCTYPE resource-agent[^\x00]*?<special tag="systemd"/>\n</resource-agent>\n')


@functools.lru_cache(maxsize=1)
def systemd_metadata_template() -> str:
    """The meta-data Pacemaker generates for a `systemd:` agent, read from the installed
    libcrmservice (a printf format: unit name, unit description, unit name)."""
    for lib in sorted(glob.glob("/usr/lib/*/libcrmservice.so*") + glob.glob("/usr/lib*/libcrmservice.so*")):
        m = _SYSTEMD_META.search(Path(lib).read_bytes())
        if m:
            template = m.group(0).decode()
            if template.count("%s") == 3 and template.count("%") == 3:
                return template
    raise RuntimeError("cannot find the systemd meta-data template in libcrmservice (package libcrmservice28)")


_CRM_RESOURCE_SHIM = '''#!/usr/bin/python3
"""crm_resource, as crmsh sees it on a node (hapx validate tier).

Pacemaker answers `--show-metadata systemd:UNIT` through systemd's D-Bus, which a build host
does not run; on the VMs it returns the fixed text in libcrmservice for any installed unit.
This shim returns that same text when UNIT.service is installed here; for `ocf:hapx:AGENT` it
runs the project's own agent (agents/AGENT meta-data), which the install-agent step installs on
the nodes but not on this host. Every other call (and every unknown unit or agent) goes to the
real crm_resource, so crmsh's checks stay strict.
"""
import os
import sys
from pathlib import Path

REAL = {real!r}
HAPX_AGENTS = Path({agents!r})
TEMPLATE = Path(__file__).with_name("systemd-metadata.fmt")
UNIT_DIRS = ("/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system")

args = sys.argv[1:]
if len(args) == 2 and args[0] == "--show-metadata" and args[1].startswith("systemd:"):
    unit = args[1][len("systemd:"):]
    for d in UNIT_DIRS:
        unit_file = Path(d, unit + ".service")
        if unit_file.is_file():
            lines = unit_file.read_text(errors="replace").splitlines()
            desc = next((l.split("=", 1)[1].strip() for l in lines if l.startswith("Description=")), unit)
            sys.stdout.write(TEMPLATE.read_text() % (unit, desc, unit))
            sys.exit(0)
if len(args) == 2 and args[0] == "--show-metadata" and args[1].startswith("ocf:hapx:"):
    agent = HAPX_AGENTS / args[1][len("ocf:hapx:"):]
    if agent.is_file():
        os.execv(str(agent), [str(agent), "meta-data"])
os.execv(REAL, [REAL] + args)
'''


@dataclass(frozen=True)
class CrmEnv:
    """Where crmsh runs: a HOME of its own and the crm_resource shim first on PATH."""

    home: Path
    shim_dir: Path

    def env(self, cib: Path) -> dict[str, str]:
        # SETUPTOOLS_USE_DISTUTILS=stdlib: crmsh imports distutils; where python3-setuptools is
        # installed (this host) its .pth hook swaps in setuptools' copy, which imports setuptools
        # and pkg_resources: about 0.3 s of CPU per crm run. The nodes have no python3-setuptools
        # (crmsh does not depend on it; the lab image lacks it), so there crmsh gets the standard
        # library's distutils, as it does here with this setting.
        return {"PATH": f"{self.shim_dir}:{BASE_PATH}", "HOME": str(self.home), "CIB_file": str(cib),
                "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "SETUPTOOLS_USE_DISTUTILS": "stdlib"}


def make_crm_env(workdir: Path) -> CrmEnv:
    home = workdir / "crm-home"
    shim_dir = workdir / "crm-shim"
    home.mkdir(parents=True, exist_ok=True)
    shim_dir.mkdir(parents=True, exist_ok=True)
    (shim_dir / "systemd-metadata.fmt").write_text(systemd_metadata_template())
    real = shutil.which("crm_resource", path=BASE_PATH)
    if real is None:
        raise RuntimeError("crm_resource is missing (Debian package pacemaker-cli-utils)")
    shim = shim_dir / "crm_resource"
    shim.write_text(_CRM_RESOURCE_SHIM.format(real=real, agents=str(HAPX_AGENTS)))
    shim.chmod(0o755)
    return CrmEnv(home, shim_dir)


def crm_errors(result: ToolResult) -> list[str]:
    """The lines of crmsh's output that report an error (colour codes removed)."""
    return [line for line in result.output.splitlines()
            if re.match(r"^\s*(ERROR\b|Traceback \(most recent call last\)|Call failed)", line)]


def crm_load(cib: Path, crm_file: Path, crm_env: CrmEnv) -> ToolResult:
    """`CIB_file=cib crm configure load update FILE` exits 0 with no ERROR line."""
    result = run(private_mounts(["crm", "configure", "load", "update", str(crm_file)], tmpfs=["/var/log/crmsh"]),
                 env=crm_env.env(cib))
    errors = crm_errors(result)
    if result.returncode != 0 or errors:
        raise CheckFailed(f"crm configure load update {crm_file} failed:\n{result.describe()}")
    return result


def check_reload_is_noop(cib: Path, crm_file: Path, crm_env: CrmEnv) -> ToolResult:
    """Loading `crm_file` again changes nothing: same epoch counters, same configuration."""
    before = cib_state(cib)
    result = crm_load(cib, crm_file, crm_env)
    after = cib_state(cib)
    if after != before:
        raise CheckFailed(f"loading {crm_file} again changed the CIB (admin_epoch, epoch, num_updates "
                          f"{before[0]} -> {after[0]}):\n{result.describe()}")
    return result
