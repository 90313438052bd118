"""What the tier needs on the host: each tool and agent, and the Debian package that provides it."""

from __future__ import annotations

import os
import shutil

from tests.validate.tools.agents import OCF_AGENTS
from tests.validate.tools.cloud_init import SYSTEM_PYTHON
from tests.validate.tools.procs import BASE_PATH

# The tools the tier runs and the Debian package that provides each.
TOOLS = {
    "haproxy": "haproxy",
    "cloud-init": "cloud-init",
    "corosync": "corosync",
    "cibadmin": "pacemaker-cli-utils",
    "crm_verify": "pacemaker-cli-utils",
    "crm_simulate": "pacemaker-cli-utils",
    "crm_mon": "pacemaker-cli-utils",
    "crm_resource": "pacemaker-cli-utils",
    "crm": "crmsh",
    "shellcheck": "shellcheck",
    "ocf-tester": "resource-agents",
    "xmllint": "libxml2-utils",
    "ip": "iproute2",
    "nft": "nftables",
    "unshare": "util-linux",
    "virsh": "libvirt-clients",
    "mount": "mount",
    "timeout": "coreutils",
    "sysctl": "procps",
    "bash": "bash",
    "sh": "dash",
}


def missing_tools() -> list[str]:
    """Each missing tool or agent, with the Debian package that provides it."""
    missing = [f"{tool} (Debian package {pkg})" for tool, pkg in TOOLS.items()
               if shutil.which(tool, path=BASE_PATH) is None]
    missing += [f"{agent} (Debian package resource-agents)" for agent in OCF_AGENTS if not os.path.exists(agent)]
    if not os.path.exists(SYSTEM_PYTHON):
        missing.append(f"{SYSTEM_PYTHON} (Debian package python3)")
    return missing
