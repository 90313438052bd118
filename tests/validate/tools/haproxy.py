"""HAProxy 2.6: `haproxy -c` on the rendered configuration, and HAProxy really started with it
in a network namespace as a node without the VIP (with the sysctls the user-data sets)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from tests.validate.tools.netns import netns
from tests.validate.tools.procs import CheckFailed, ToolResult, private_mounts, run

# haproxy -c warns for a master given by name that the validating host cannot resolve; the
# configuration starts such a server disabled (init-addr last,libc,none) and resolves it later.
HAPROXY_TOLERATED_WARNINGS = (re.compile(r"could not resolve address '[^']+', disabling server"),)


def check_haproxy_cfg(path: Path) -> ToolResult:
    """`haproxy -c -f FILE` accepts the file, with no warning but the tolerated ones."""
    result = run(["haproxy", "-c", "-f", path])
    if result.returncode != 0 or "Configuration file is valid" not in result.output:
        raise CheckFailed(f"haproxy rejected {path}:\n{result.describe()}")
    warnings = [line for line in result.output.splitlines()
                if "[WARNING]" in line and not any(p.search(line) for p in HAPROXY_TOLERATED_WARNINGS)]
    if warnings:
        raise CheckFailed(f"haproxy accepted {path} with warnings:\n" + "\n".join(warnings))
    return result


def sysctl_settings(user_data: Path) -> dict[str, str]:
    """The kernel settings the user-data writes under /etc/sysctl.d/*.conf (which its runcmd
    applies with `sysctl --system`): key -> value, in sysctl.d(5)'s `key = value` syntax."""
    import yaml

    settings: dict[str, str] = {}
    doc = yaml.safe_load(user_data.read_text())
    for item in (doc or {}).get("write_files") or []:
        path = str(item.get("path", ""))
        if not (path.startswith("/etc/sysctl.d/") and path.endswith(".conf")):
            continue
        for raw in str(item.get("content", "")).splitlines():
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            key, sep, value = line.partition("=")
            if not sep:
                raise CheckFailed(f"{user_data}: {path}: cannot read sysctl line {raw!r}")
            settings[key.strip().lstrip("-")] = value.strip()
    return settings


HAPROXY_RUNTIME_DIR = "/run/haproxy"  # the stats socket's directory (Debian's tmpfiles.d/haproxy.conf)


def check_haproxy_starts(path: Path, local_address: str, sysctls: Mapping[str, str]) -> ToolResult:
    """HAProxy 2.6 really starts with FILE on a node that does not hold the VIP: in a throwaway
    network namespace whose only address is `local_address`, with `sysctls` applied there
    (net.* settings are per network namespace), HAProxy runs as the file says (`daemon`: the
    parent exits 0 only once every listener is bound and the worker runs, 1 when a bind fails).
    /run/haproxy is a private tmpfs, and HAProxy runs in a PID namespace of its own whose init
    is the shell below: when the shell exits, the kernel kills the daemon with it."""
    if not os.path.isdir(HAPROXY_RUNTIME_DIR):
        raise RuntimeError(f"{HAPROXY_RUNTIME_DIR} is missing (Debian package haproxy: systemd-tmpfiles --create)")
    script = ('set -e\n'
              'cfg=$1; shift\n'
              'for kv in "$@"; do sysctl -q -w "$kv"; done\n'
              'haproxy -f "$cfg" -p /run/haproxy/hapx-val.pid\n')
    with netns(local_address) as ns:
        result = run(private_mounts(["ip", "netns", "exec", ns, "unshare", "--pid", "--fork", "--kill-child",
                                     "sh", "-c", script, "hapx-val-haproxy-start", str(path),
                                     *(f"{k}={v}" for k, v in sysctls.items())],
                                    tmpfs=[HAPROXY_RUNTIME_DIR]))
    if result.returncode != 0 or "[ALERT]" in result.output:
        raise CheckFailed(f"haproxy did not start with {path} on {local_address} "
                          f"(sysctls {dict(sysctls) or 'none'}):\n{result.describe()}")
    return result
