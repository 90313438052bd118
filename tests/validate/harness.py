"""The VALIDATE tier's harness: run the real Debian tools on rendered files.

Every `check_*` function runs one real tool (the same versions the VMs run: haproxy 2.6,
cloud-init 22.4, corosync 3.1, pacemaker 2.1, crmsh 4.4, shellcheck 0.9) and raises
`CheckFailed` with the command line and the tool's own output when the tool rejects its
input; when the tool accepts, it returns the `ToolResult`. Positive and negative tests go
through these same functions, so a negative test proves that the check can fail.

Side effects are kept off the host: corosync and crmsh write log files and the configure
step writes under /var/lib, so those run in a private mount namespace with a tmpfs over the
directories they write; network namespaces are named `hapx-val-<pid>-<n>` and always
deleted (stale ones from a crashed run are removed by the tier's conftest). The HAProxy start
check runs HAProxy for real, in such a namespace and in a PID namespace of its own, so the
daemon dies with the check.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import itertools
import json
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

PROJECT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 60
NETNS_PREFIX = "hapx-val-"
SYSTEM_PYTHON = "/usr/bin/python3"  # cloud-init's own interpreter (its modules are not in the venv)
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

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
# Resource agents the crm configuration and the simulation use (package resource-agents).
OCF_AGENTS = ("/usr/lib/ocf/resource.d/heartbeat/Dummy",)
# hapx's own agents (the install-agent step puts them under /usr/lib/ocf/resource.d/hapx/).
HAPX_AGENTS = PROJECT / "agents"

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


def missing_tools() -> list[str]:
    """Each missing tool or agent, with the Debian package that provides it."""
    missing = [f"{tool} (Debian package {pkg})" for tool, pkg in TOOLS.items()
               if shutil.which(tool, path=BASE_PATH) is None]
    missing += [f"{agent} (Debian package resource-agents)" for agent in OCF_AGENTS if not os.path.exists(agent)]
    if not os.path.exists(SYSTEM_PYTHON):
        missing.append(f"{SYSTEM_PYTHON} (Debian package python3)")
    return missing


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


# ----------------------------------------------------------------------------- haproxy

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


# ----------------------------------------------------------------------------- cloud-init

def check_user_data(path: Path) -> ToolResult:
    """`cloud-init schema --config-file FILE` (cloud-init 22.4) accepts the user-data."""
    result = run(["cloud-init", "schema", "--config-file", path])
    if result.returncode != 0 or "Valid cloud-config" not in result.output:
        raise CheckFailed(f"cloud-init schema rejected {path}:\n{result.describe()}")
    return result


# What `cloud-init schema --config-file` runs (cloudinit/config/schema.py, handle_schema_args),
# over many files in one interpreter: cloud-init's start-up dominates one file's check.
_SCHEMA_BATCH = r"""
import json, sys
from cloudinit.config.schema import SchemaValidationError, get_schema, validate_cloudconfig_file
schema = get_schema()
errors = {}
for path in sys.argv[1:]:
    try:
        validate_cloudconfig_file(path, schema)
    except (SchemaValidationError, RuntimeError) as err:
        errors[path] = str(err)
print(json.dumps(errors))
"""


def check_user_data_batch(paths: Sequence[Path]) -> dict[Path, str]:
    """cloud-init 22.4's schema check of `cloud-init schema --config-file` on each file, in one
    process: each rejected file with cloud-init's message (empty when all pass)."""
    if not paths:
        return {}
    result = run_ok([SYSTEM_PYTHON, "-c", _SCHEMA_BATCH, *map(str, paths)], timeout=TIMEOUT_S * 2)
    # cloud-init prints its deprecation notes before the summary line.
    return {Path(path): message for path, message in json.loads(result.stdout.strip().splitlines()[-1]).items()}


# What `cloud-init devel net-convert` runs (cloudinit/cmd/devel/net_convert.py), over many
# (file, output kind, directory) in one interpreter. handle_args edits the distro class's
# renderer_configs in place (for netplan it trims a leading "/" off netplan_path, once per
# call): each call gets a fresh copy, as each CLI process does, or the second netplan file
# lands at tc/netplan/..., the third at c/netplan/...
_NET_CONVERT_BATCH = r"""
import copy, json, sys, traceback
from cloudinit import distros
from cloudinit.cmd.devel import net_convert
debian = distros.fetch("debian")
pristine = copy.deepcopy(debian.renderer_configs)
errors = {}
for path, kind, outdir in json.loads(sys.stdin.read()):
    debian.renderer_configs = copy.deepcopy(pristine)
    try:
        args = net_convert.get_parser().parse_args(["--network-data", path, "--kind", "yaml", "--directory",
                                                    outdir, "--distro", "debian", "--output-kind", kind])
        net_convert.handle_args("net-convert", args)
    except BaseException:
        errors[path + " -O " + kind] = traceback.format_exc(limit=2)
print(json.dumps(errors))
"""


def net_convert_batch(items: Sequence[tuple[Path, str, Path]]) -> dict[str, str]:
    """cloud-init's converter on each (network-config, output kind, directory), in one process:
    each failure (`PATH -O KIND`) with its error; the files are written into each directory."""
    if not items:
        return {}
    result = run_ok([SYSTEM_PYTHON, "-c", _NET_CONVERT_BATCH],
                    input=json.dumps([[str(p), kind, str(d)] for p, kind, d in items]), timeout=TIMEOUT_S * 2)
    # handle_args prints what it wrote before the summary line.
    return json.loads(result.stdout.strip().splitlines()[-1])


_SCHEMA_KEYS = r"""
import json
from cloudinit.config.schema import get_schema
schema = get_schema()
keys = set()
for item in schema.get("allOf", []):
    ref = item.get("$ref", "")
    if ref.startswith("#/$defs/"):
        keys |= set(schema["$defs"][ref[len("#/$defs/"):]].get("properties", {}))
keys |= set(schema.get("properties", {}))
print(json.dumps(sorted(keys)))
"""


# Keys cloud-init itself reads outside any module's schema (cloudinit/stages.py, distros).
CLOUD_INIT_BASE_KEYS = frozenset({
    "datasource", "datasource_list", "network", "system_info", "merge_how", "merge_type",
    "output", "log_cfgs", "syslog_fix_perms", "vendor_data2",
})


def cloud_config_keys() -> set[str]:
    """The top-level keys cloud-init's own schema knows (read from the installed cloud-init)."""
    result = run_ok([SYSTEM_PYTHON, "-c", _SCHEMA_KEYS])
    return set(json.loads(result.stdout))


def check_user_data_keys(path: Path, known: Optional[set[str]] = None) -> list[str]:
    """Every top-level key of the user-data is one cloud-init knows. cloud-init 22.4's schema
    allows unknown keys, so a misspelt module key would otherwise be silently ignored."""
    import yaml

    doc = yaml.safe_load(path.read_text())
    if not isinstance(doc, dict):
        raise CheckFailed(f"{path}: user-data is not a YAML mapping")
    known = (cloud_config_keys() if known is None else known) | CLOUD_INIT_BASE_KEYS
    unknown = sorted(set(doc) - known)
    if unknown:
        raise CheckFailed(f"{path}: keys cloud-init 22.4 does not know (would be ignored): {unknown}")
    return sorted(doc)


# Keys of a netplan/cloud-init v2 ethernet that cloud-init 22.4's parser reads
# (cloudinit/net/network_state.py, NetworkStateInterpreter.handle_ethernets and _v2_common).
V2_ETHERNET_KEYS = {
    "match", "set-name", "addresses", "gateway4", "gateway6", "routes", "nameservers", "dhcp4",
    "dhcp6", "dhcp4-overrides", "dhcp6-overrides", "mtu", "wakeonlan", "accept-ra", "optional",
    "critical", "link-local", "renderer",
}
V2_ROUTE_KEYS = {"to", "via", "metric", "on-link", "table", "from", "type", "scope", "mtu"}
NET_CONVERT_KINDS = ("eni", "netplan", "networkd")


@dataclass(frozen=True)
class NetworkExpectation:
    """What a node's network-config must configure."""

    interface: str
    mac: str
    address: str  # "ip/prefix"
    gateway: str
    dns: tuple[str, ...]
    search: tuple[str, ...]


def check_network_config_structure(path: Path, expect: NetworkExpectation) -> dict:
    """The network-config is version 2 with one ethernet matched by MAC, only keys cloud-init
    reads (a misspelt key is silently dropped by cloud-init), and the expected values."""
    import yaml

    problems = []
    doc = yaml.safe_load(path.read_text())
    if not isinstance(doc, dict):
        raise CheckFailed(f"{path}: network-config is not a YAML mapping")
    if doc.get("version") != 2:
        problems.append(f"version is {doc.get('version')!r}, not 2")
    extra = set(doc) - {"version", "ethernets"}
    if extra:
        problems.append(f"unexpected top-level keys {sorted(extra)}")
    eths = doc.get("ethernets")
    if not isinstance(eths, dict) or list(eths) != [expect.interface]:
        problems.append(f"ethernets must hold exactly {expect.interface!r}, got {eths!r}")
        raise CheckFailed(f"{path}:\n  " + "\n  ".join(problems))
    eth = eths[expect.interface]
    unknown = set(eth) - V2_ETHERNET_KEYS
    if unknown:
        problems.append(f"keys cloud-init does not read in an ethernet: {sorted(unknown)}")
    if (eth.get("match") or {}).get("macaddress") != expect.mac:
        problems.append(f"match.macaddress is {(eth.get('match') or {}).get('macaddress')!r}, want {expect.mac}")
    if eth.get("set-name") != expect.interface:
        problems.append(f"set-name is {eth.get('set-name')!r}, want {expect.interface}")
    if eth.get("addresses") != [expect.address]:
        problems.append(f"addresses is {eth.get('addresses')!r}, want [{expect.address}]")
    routes = eth.get("routes") or []
    for route in routes:
        if not isinstance(route, dict) or set(route) - V2_ROUTE_KEYS:
            problems.append(f"route {route!r} has keys cloud-init does not read")
    defaults = [r.get("via") for r in routes if isinstance(r, dict) and r.get("to") in ("0.0.0.0/0", "default")]
    if eth.get("gateway4"):
        defaults.append(eth["gateway4"])
    if defaults != [expect.gateway]:
        problems.append(f"default gateway(s) {defaults!r}, want [{expect.gateway}]")
    ns = eth.get("nameservers") or {}
    if set(ns) - {"addresses", "search"}:
        problems.append(f"nameservers has unknown keys {sorted(set(ns) - {'addresses', 'search'})}")
    if tuple(ns.get("addresses") or ()) != expect.dns:
        problems.append(f"nameservers.addresses is {ns.get('addresses')!r}, want {list(expect.dns)}")
    if tuple(ns.get("search") or ()) != expect.search:
        problems.append(f"nameservers.search is {ns.get('search')!r}, want {list(expect.search)}")
    if problems:
        raise CheckFailed(f"{path}:\n  " + "\n  ".join(problems))
    return doc


def net_convert(path: Path, outdir: Path, kind: str) -> dict[str, str]:
    """`cloud-init devel net-convert` itself (one process): parse the network-config as the
    VM's cloud-init does and render it for a Debian system in `kind` (eni, netplan, networkd)
    into `outdir`. Returns the files written."""
    result = run(["cloud-init", "devel", "net-convert", "--network-data", path, "--kind", "yaml",
                  "--directory", outdir, "--distro", "debian", "--output-kind", kind])
    files = {str(p.relative_to(outdir)): p.read_text() for p in sorted(outdir.rglob("*")) if p.is_file()}
    if result.returncode != 0 or not files:
        raise CheckFailed(f"cloud-init devel net-convert rejected {path} (-O {kind}):\n{result.describe()}")
    return files


def check_converted_network(path: Path, kind: str, files: Mapping[str, str], expect: NetworkExpectation) -> None:
    """What cloud-init's converter wrote for `kind` (eni, netplan, networkd) from the
    network-config at `path` carries the address, the MAC, the default gateway, the DNS servers
    and the search domain."""
    if not files:
        raise CheckFailed(f"cloud-init devel net-convert wrote nothing for {path} (-O {kind})")
    text = "\n".join(files.values())
    # The resolver's servers and search domain in each: netplan hands them to networkd, which
    # hands them to systemd-resolved (Debian's generic cloud image and the lab image).
    wanted = {
        "eni": [f"address {expect.address}", expect.gateway, expect.mac, f"dns-nameservers {' '.join(expect.dns)}",
                f"dns-search {' '.join(expect.search)}"],
        "netplan": [expect.address, expect.gateway, expect.mac] + list(expect.dns) + list(expect.search),
        "networkd": [f"Address={expect.address}", f"Gateway={expect.gateway}",
                     f"MACAddress={expect.mac}", f"DNS={' '.join(expect.dns)}", f"Domains={' '.join(expect.search)}"],
    }[kind]
    lost = [w for w in wanted if w not in text]
    if lost:
        raise CheckFailed(f"net-convert -O {kind} of {path} lost {lost}:\n{text}")


@dataclass(frozen=True)
class CloudInitRuns:
    """What cloud-init's schema check and converter said about many nodes' files, each tool
    run once over all of them (run_cloud_init)."""

    user_data: frozenset[Path]
    schema_errors: dict[Path, str]
    convert_errors: dict[str, str]  # "PATH -O KIND" -> error
    converted: dict[tuple[Path, str], dict[str, str]]  # (network-config, kind) -> files written

    def check_user_data(self, path: Path) -> None:
        """cloud-init's schema accepted the user-data at `path`."""
        if path not in self.user_data:
            raise RuntimeError(f"{path} was not in the batch")
        if path in self.schema_errors:
            raise CheckFailed(f"cloud-init schema rejected {path}:\n{self.schema_errors[path]}")

    def converted_network(self, path: Path, kind: str) -> dict[str, str]:
        """The files cloud-init's converter wrote for `kind` from the network-config at `path`."""
        error = self.convert_errors.get(f"{path} -O {kind}")
        if error is not None:
            raise CheckFailed(f"cloud-init devel net-convert rejected {path} (-O {kind}):\n{error}")
        if (path, kind) not in self.converted:
            raise RuntimeError(f"{path} (-O {kind}) was not in the batch")
        return self.converted[(path, kind)]

    def check_network_config(self, path: Path, expect: NetworkExpectation) -> None:
        """The network-config's structure (check_network_config_structure), then what the
        converter wrote for each Debian renderer carries the expected values."""
        check_network_config_structure(path, expect)
        for kind in NET_CONVERT_KINDS:
            check_converted_network(path, kind, self.converted_network(path, kind), expect)


def run_cloud_init(user_data: Sequence[Path], network_configs: Sequence[Path], workdir: Path) -> CloudInitRuns:
    """cloud-init's schema check on every user-data and its converter on every network-config
    for each Debian renderer (eni, netplan, networkd), in one process per tool (the two run
    side by side)."""
    outdir = {(p, kind): workdir / f"net-{i}" / kind for i, p in enumerate(network_configs)
              for kind in NET_CONVERT_KINDS}
    schema_errors, convert_errors = parallel(lambda job: job(), [
        lambda: check_user_data_batch(user_data),
        lambda: net_convert_batch([(p, kind, d) for (p, kind), d in outdir.items()]),
    ])
    converted = {key: {str(f.relative_to(d)): f.read_text() for f in sorted(d.rglob("*")) if f.is_file()}
                 for key, d in outdir.items() if d.is_dir()}
    return CloudInitRuns(frozenset(user_data), schema_errors, convert_errors, converted)


# ----------------------------------------------------------------------------- corosync

_netns_seq = itertools.count()


NETNS_DIR = Path("/run/netns")  # where `ip netns add` mounts a named namespace (iproute2's NETNS_RUN_DIR)


def list_netns() -> list[str]:
    """The named network namespaces, as `ip netns list` reads them (the entries of /run/netns):
    read here directly, since every test's teardown asks (one `ip` process per test otherwise)."""
    try:
        return sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return []


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_netns() -> list[str]:
    """Namespaces of this tier whose creating process is gone (left by a crashed run)."""
    stale = []
    for name in list_netns():
        m = re.match(rf"^{re.escape(NETNS_PREFIX)}(\d+)-\d+$", name)
        if m and not _pid_alive(int(m.group(1))):
            stale.append(name)
    return stale


def own_netns() -> list[str]:
    return [n for n in list_netns() if n.startswith(f"{NETNS_PREFIX}{os.getpid()}-")]


def delete_netns(name: str) -> None:
    if not name.startswith(NETNS_PREFIX):
        raise ValueError(f"refusing to delete network namespace {name!r}: not one of the tier's")
    run(["ip", "netns", "delete", name])


@contextlib.contextmanager
def netns(*addresses: str) -> Iterator[str]:
    """A throwaway network namespace with `addresses` (/32) on its loopback; always deleted."""
    name = f"{NETNS_PREFIX}{os.getpid()}-{next(_netns_seq)}"
    run_ok(["ip", "netns", "add", name])
    try:
        run_ok(["ip", "-n", name, "link", "set", "lo", "up"])
        for address in addresses:
            run_ok(["ip", "-n", name, "addr", "add", f"{address}/32", "dev", "lo"])
        yield name
    finally:
        delete_netns(name)


def check_corosync_conf(path: Path, local_address: str) -> ToolResult:
    """`corosync -t -c FILE` accepts the file, run as the node with `local_address`: in a
    throwaway network namespace holding that address (corosync insists that one nodelist
    address is local), with corosync's log directory on a private tmpfs."""
    with netns(local_address) as ns:
        result = run(private_mounts(["ip", "netns", "exec", ns, "corosync", "-t", "-c", str(path)],
                                    tmpfs=["/var/log/corosync"]))
    if result.returncode != 0:
        raise CheckFailed(f"corosync -t rejected {path} (as {local_address}):\n{result.describe()}")
    return result


@dataclass
class CorosyncSection:
    """One `name { ... }` block of corosync.conf: its key/value lines (keys may repeat) and sub-blocks."""

    name: str
    values: dict[str, list[str]] = field(default_factory=dict)
    sections: list[CorosyncSection] = field(default_factory=list)

    def value(self, key: str) -> Optional[str]:
        values = self.values.get(key)
        return values[-1] if values else None

    def section(self, name: str) -> CorosyncSection:
        found = [s for s in self.sections if s.name == name]
        if len(found) != 1:
            raise CheckFailed(f"corosync.conf: expected one {name} {{}} block in {self.name}, found {len(found)}")
        return found[0]

    def all(self, name: str) -> list[CorosyncSection]:
        return [s for s in self.sections if s.name == name]


def parse_corosync_conf(text: str) -> CorosyncSection:
    """A structural reading of corosync.conf (the syntax itself is corosync -t's job)."""
    root = CorosyncSection("<top>")
    stack = [root]
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("{"):
            section = CorosyncSection(line[:-1].strip())
            stack[-1].sections.append(section)
            stack.append(section)
        elif line == "}":
            if len(stack) == 1:
                raise CheckFailed(f"corosync.conf:{lineno}: unbalanced '}}'")
            stack.pop()
        elif ":" in line:
            key, value = line.split(":", 1)
            stack[-1].values.setdefault(key.strip(), []).append(value.strip())
        else:
            raise CheckFailed(f"corosync.conf:{lineno}: cannot read {raw!r}")
    if len(stack) != 1:
        raise CheckFailed(f"corosync.conf: block {stack[-1].name!r} is not closed")
    return root


# ----------------------------------------------------------------------------- pacemaker

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


def empty_cib(path: Path, *, cluster_name: Optional[str] = None, quorum: bool = True) -> Path:
    """`cibadmin --empty`, made to look like the live CIB the configure step loads into: marked
    quorate (the step runs after wait-members saw quorum) and, given `cluster_name`, with the
    properties the DC writes into cib-bootstrap-options when the cluster forms."""
    result = run_ok(["cibadmin", "--empty"])
    root = ET.fromstring(result.stdout)
    if quorum:
        root.set("have-quorum", "1")
    if cluster_name is not None:
        version = run_ok(["cibadmin", "--version"]).stdout.split()[1]
        props = ET.SubElement(root.find("configuration/crm_config"), "cluster_property_set",
                              id="cib-bootstrap-options")
        for name, value in dc_properties(version, cluster_name).items():
            ET.SubElement(props, "nvpair", id=f"cib-bootstrap-options-{name}", name=name, value=value)
    ET.ElementTree(root).write(path, encoding="unicode")
    return path


def dc_properties(version: str, cluster_name: str) -> dict[str, str]:
    """What Pacemaker's DC sets in cib-bootstrap-options on a corosync cluster."""
    return {"have-watchdog": "false", "dc-version": f"{version}-offline",
            "cluster-infrastructure": "corosync", "cluster-name": cluster_name}


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


def crm_verify(cib: Path) -> ToolResult:
    """`crm_verify -x cib.xml` finds no error."""
    result = run(["crm_verify", "-x", cib, "-V"])
    if result.returncode != 0 or re.search(r"\berror\b", result.output, re.IGNORECASE):
        raise CheckFailed(f"crm_verify rejected {cib}:\n{result.describe()}")
    return result


def parse_xml(path: Path) -> ET.ElementTree:
    """Parse keeping comments: crmsh stores the crm file's comments in the CIB, and a rewrite
    that dropped them would make the next `crm configure load update` a real change."""
    return ET.parse(path, parser=ET.XMLParser(target=ET.TreeBuilder(insert_comments=True)))


def cib_root(cib: Path) -> ET.Element:
    return parse_xml(cib).getroot()


def cib_state(cib: Path) -> tuple[tuple[str, str, str], str]:
    """(admin_epoch, epoch, num_updates) and the configuration section, serialised."""
    root = cib_root(cib)
    counters = tuple(root.get(k, "") for k in ("admin_epoch", "epoch", "num_updates"))
    return counters, ET.tostring(root.find("configuration"), encoding="unicode")


def simulation_copy(cib: Path, out: Path, *, agent: tuple[str, str, str] = ("ocf", "heartbeat", "Dummy")) -> Path:
    """A copy of the CIB for crm_simulate in which every `systemd:` resource (configuration and
    status) is `ocf:heartbeat:Dummy`: a build host has no systemd to describe systemd agents."""
    tree = parse_xml(cib)
    for el in tree.getroot().iter():
        if el.tag in ("primitive", "lrm_resource") and el.get("class") == "systemd":
            el.set("class", agent[0])
            el.set("provider", agent[1])
            el.set("type", agent[2])
    tree.write(out, encoding="unicode")
    return out


def restore_agents(original: Path, simulated: Path, out: Path) -> Path:
    """`simulated` (a simulation copy after crm_simulate) with each resource's agent set back to
    the one in `original`, in the configuration and in the status: the CIB a node would hold."""
    agents = {p.get("id"): {k: p.get(k) for k in ("class", "provider", "type")}
              for p in cib_root(original).iter("primitive")}
    tree = parse_xml(simulated)
    for el in tree.getroot().iter():
        if el.tag in ("primitive", "lrm_resource") and el.get("id") in agents:
            for key, value in agents[el.get("id")].items():
                if value is None:
                    el.attrib.pop(key, None)
                else:
                    el.set(key, value)
    tree.write(out, encoding="unicode")
    return out


def elect_dc(cib: Path, node: str) -> None:
    """Name `node` the DC in the CIB (crm_simulate leaves dc-uuid unset): crm_mon then reports
    a current DC and whether the cluster has quorum, as on a running cluster."""
    tree = parse_xml(cib)
    uuid = next((s.get("id") for s in tree.getroot().iter("node_state") if s.get("uname") == node), None)
    if uuid is None:
        raise RuntimeError(f"no node_state for {node} in {cib}")
    tree.getroot().set("dc-uuid", uuid)
    tree.write(cib, encoding="unicode")


def forget_node_history(cib: Path, node: str) -> None:
    """Clear a node's resource history and transient attributes, as happens when a node that
    died rejoins after a reboot (its history is replaced by what its executor reports: nothing).
    crm_simulate's --node-up alone keeps the stale history of resources it ran before it died."""
    tree = parse_xml(cib)
    found = False
    for state in tree.getroot().iter("node_state"):
        if state.get("uname") == node:
            found = True
            for lrm in state.findall("lrm"):
                for child in list(lrm):
                    lrm.remove(child)
            for attrs in state.findall("transient_attributes"):
                state.remove(attrs)
    if not found:
        raise RuntimeError(f"no node_state for {node} in {cib}")
    tree.write(cib, encoding="unicode")


def set_standby(cib: Path, out: Path, node: str) -> Path:
    """A copy of `cib` in which `node` is in standby, as `crm node standby NODE` leaves it
    (the permanent node attribute standby=on in the configuration's nodes section)."""
    tree = parse_xml(cib)
    found = [n for n in tree.getroot().iterfind("configuration/nodes/node") if n.get("uname") == node]
    if len(found) != 1:
        raise RuntimeError(f"{len(found)} nodes named {node} in {cib}, not one")
    (el,) = found
    attrs = el.find("instance_attributes")
    if attrs is None:
        attrs = ET.SubElement(el, "instance_attributes", id=f"nodes-{el.get('id')}")
    ET.SubElement(attrs, "nvpair", id=f"nodes-{el.get('id')}-standby", name="standby", value="on")
    tree.write(out, encoding="unicode")
    return out


def set_dc(cib: Path, out: Path, node: str) -> Path:
    """A copy of `cib` in which `node` is the DC (the cib element's dc-uuid names its node id,
    as the controller records it): the scheduler then gives `node` #is_dc=true."""
    tree = parse_xml(cib)
    found = [n for n in tree.getroot().iterfind("configuration/nodes/node") if n.get("uname") == node]
    if len(found) != 1:
        raise RuntimeError(f"{len(found)} nodes named {node} in {cib}, not one")
    tree.getroot().set("dc-uuid", found[0].get("id"))
    tree.write(out, encoding="unicode")
    return out


Placement = dict[str, tuple[str, ...]]


def instance_of(resource_id: str) -> str:
    """The resource an action or status entry belongs to: a clone instance (`haproxy:0`,
    `haproxy:1`, as crm_simulate names instances it creates) is its primitive (`haproxy`,
    the name the status and later transitions use for an anonymous clone's instances)."""
    return re.sub(r":\d+$", "", resource_id)


def _active_nodes(rsc: ET.Element) -> set[str]:
    if rsc.get("active") != "true" or rsc.get("role") not in ("Started", "Promoted", "Unpromoted"):
        return set()
    return {n.get("name") for n in rsc.findall("node")}


def _placement(resources: Optional[ET.Element]) -> Placement:
    """Resource id -> the nodes it runs on (sorted). A clone's instances all carry the
    primitive's id: the primitive and the clone both map to every node an instance runs on."""
    where: dict[str, set[str]] = {}
    if resources is None:
        return {}
    for rsc in resources.iter("resource"):
        where.setdefault(rsc.get("id"), set()).update(_active_nodes(rsc))
    for clone in resources.iter("clone"):
        nodes = where.setdefault(clone.get("id"), set())
        for rsc in clone.iter("resource"):
            nodes.update(_active_nodes(rsc))
    return {rsc: tuple(sorted(nodes)) for rsc, nodes in where.items()}


def crm_mon_placement(cib: Path) -> Placement:
    """Where each resource runs according to `CIB_file=cib crm_mon --one-shot --output-as=xml`."""
    env = {"PATH": BASE_PATH, "CIB_file": str(cib), "LANG": "C.UTF-8"}
    result = run(["crm_mon", "--one-shot", "--inactive", "--output-as=xml"], env=env)
    if result.returncode != 0:
        raise CheckFailed(f"crm_mon could not read {cib}:\n{result.describe()}")
    return _placement(ET.fromstring(result.stdout).find("resources"))


@dataclass
class Graph:
    """The transition graph: each action key (op@node) and the actions it waits for."""

    inputs: dict[str, set[str]]

    @staticmethod
    def parse(path: Path) -> Graph:
        inputs: dict[str, set[str]] = {}
        for synapse in parse_xml(path).getroot().iter("synapse"):
            action = synapse.find("action_set")[0]
            key = f"{action.get('operation_key')}@{action.get('on_node')}"
            deps = inputs.setdefault(key, set())
            for trigger in synapse.iterfind("inputs/trigger"):
                for item in trigger:
                    if item.get("operation_key"):
                        deps.add(f"{item.get('operation_key')}@{item.get('on_node')}")
        return Graph(inputs)

    def key(self, resource: str, op: str, node: str, interval_ms: int = 0) -> str:
        """The one action key of `resource` (or of one of its clone instances, `resource:N`)
        doing `op` on `node`; CheckFailed when the transition has none (or several)."""
        pattern = re.compile(rf"^{re.escape(resource)}(:\d+)?_{re.escape(op)}_{interval_ms}@{re.escape(node)}$")
        keys = sorted(k for k in self.inputs if pattern.match(k))
        if len(keys) != 1:
            raise CheckFailed(f"the transition has {len(keys)} {resource} {op} action(s) on {node}, not one: "
                              f"{keys or sorted(self.inputs)}")
        return keys[0]

    def waits_for(self, action: str, before: str) -> bool:
        """Whether `action` (directly or not) waits for `before` in this transition."""
        seen, todo = set(), [action]
        while todo:
            for dep in self.inputs.get(todo.pop(), ()):
                if dep == before:
                    return True
                if dep not in seen:
                    seen.add(dep)
                    todo.append(dep)
        return False


@dataclass
class Simulation:
    """One crm_simulate run: where resources run afterwards and what the cluster did."""

    result: ToolResult
    placement: Placement
    actions: list[tuple[str, str, str]]  # (resource, operation, node) in the transition
    graph: Graph
    cib_out: Path

    def ops(self, resource: str, node: Optional[str] = None) -> list[tuple[str, str]]:
        """(operation, node) of every action of `resource` or one of its clone instances,
        on `node` if given, probes and recurring monitors (and their cancelling) left out."""
        return [(op, where) for rsc, op, where in self.actions
                if instance_of(rsc) == resource and op not in ("monitor", "cancel") and node in (None, where)]

    def started(self, resource: str) -> list[str]:
        """The nodes `resource` (or one of its clone instances) starts on, sorted."""
        return sorted(where for op, where in self.ops(resource) if op == "start")

    def stopped(self, resource: str) -> list[str]:
        """The nodes `resource` (or one of its clone instances) stops on, sorted."""
        return sorted(where for op, where in self.ops(resource) if op == "stop")


def simulate(cib_in: Path, cib_out: Path, *, up: Sequence[str] = (), fail: Sequence[str] = (),
             inject: Sequence[str] = (), quorum: Optional[bool] = True) -> Simulation:
    """`crm_simulate -x IN -S -O OUT` with node events; the placement is read from its XML
    result and cross-checked with crm_mon on the saved CIB. `quorum` is passed as `-q`:
    corosync's two_node (which keeps a survivor of two quorate) is invisible to crm_simulate."""
    graph_path = cib_out.with_suffix(".graph.xml")
    if quorum is not None:
        # crm_simulate 2.1.5 applies -q only together with a node event: also set it in the input.
        tree = parse_xml(cib_in)
        tree.getroot().set("have-quorum", "1" if quorum else "0")
        cib_in = cib_out.with_suffix(".in.xml")
        tree.write(cib_in, encoding="unicode")
    argv = ["crm_simulate", "-x", cib_in, "-S", "-O", cib_out, "-G", graph_path, "--output-as=xml"]
    if quorum is not None:
        argv += ["-q", "1" if quorum else "0"]
    for node in up:
        argv += ["--node-up", node]
    for node in fail:
        argv += ["--node-fail", node]
    for spec in inject:
        argv += ["--op-inject", spec]
    result = run(argv)
    try:
        doc = ET.fromstring(result.stdout)
    except ET.ParseError:
        doc = None
    status = doc.find("status") if doc is not None else None
    if result.returncode != 0 or status is None or status.get("code") != "0":
        raise CheckFailed(f"crm_simulate failed on {cib_in}:\n{result.describe()}")
    revised = doc.find("revised_cluster_status")
    placement = _placement((revised if revised is not None else doc.find("cluster_status")).find("resources"))
    actions = [(a.get("resource"), a.get("op"), a.get("node")) for a in doc.iterfind("transition/rsc_action")]
    mon = crm_mon_placement(cib_out)
    if mon != placement:
        raise CheckFailed(f"crm_simulate reports {placement} but crm_mon reads {mon} from {cib_out}")
    return Simulation(result, placement, actions, Graph.parse(graph_path), cib_out)


def placed_with(placement: Placement, resource: str, clone: str) -> str:
    """The single node `resource` runs on, which must be one where an instance of `clone`
    runs; CheckFailed when it runs nowhere, on several nodes, or where `clone` does not run."""
    where = placement.get(resource, ())
    if len(where) != 1:
        raise CheckFailed(f"{resource} runs on {list(where) or 'no node'}, not on exactly one: {placement}")
    (node,) = where
    if node not in placement.get(clone, ()):
        raise CheckFailed(f"{resource} runs on {node}, where {clone} does not run "
                          f"({clone} runs on {list(placement.get(clone, ())) or 'no node'}): {placement}")
    return node


def running_on(placement: Placement, clone: str, nodes: Iterable[str]) -> tuple[str, ...]:
    """`clone` runs on exactly `nodes` (an instance on each, none elsewhere)."""
    want = tuple(sorted(nodes))
    if placement.get(clone, ()) != want:
        raise CheckFailed(f"{clone} runs on {list(placement.get(clone, ())) or 'no node'}, "
                          f"not on {list(want)}: {placement}")
    return want


def check_start_waits(sim: Simulation, then: str, first: str, node: str) -> None:
    """In the transition, `then`'s start on `node` waits (directly or through the clone's
    pseudo-actions) for the start of `first` (or its clone instance) on the same node."""
    then_key, first_key = sim.graph.key(then, "start", node), sim.graph.key(first, "start", node)
    if not sim.graph.waits_for(then_key, first_key):
        raise CheckFailed(f"{then_key} does not wait for {first_key}; it waits for "
                          f"{sorted(sim.graph.inputs.get(then_key, ()))}")


def check_untouched(sim: Simulation, resource: str, node: str) -> None:
    """The transition neither stops nor starts `resource` (or its clone instance) on `node`:
    it keeps running there. Probes and recurring monitors do not count."""
    ops = sim.ops(resource, node)
    if ops:
        raise CheckFailed(f"the transition does not leave {resource} running on {node}: {ops} "
                          f"(all actions: {sim.actions})")


# ----------------------------------------------------------------------------- shell

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


# ----------------------------------------------------------------------------- steps, offline

def run_step_offline(script: Path, cib: Path, crm_env: CrmEnv, timeout: float = 30) -> ToolResult:
    """Run a bootstrap step script on this host against an offline CIB (`CIB_file`), in a
    private mount namespace with a tmpfs over /var/lib (where steps keep state) and
    /var/log/crmsh; bounded by `timeout` seconds."""
    argv = private_mounts(["timeout", "--kill-after=5", str(int(timeout)), "bash", str(script)],
                          tmpfs=["/var/lib", "/var/log/crmsh"])
    return run(argv, env=crm_env.env(cib), timeout=timeout + 15)


def write_broken(directory: Path, name: str, text: str, breakage) -> Path:
    """Write `breakage(text)` to directory/name for a negative test; the breakage must change it."""
    broken = breakage(text)
    assert broken != text, f"the breakage did not change {name}"
    path = directory / name
    path.write_text(broken)
    return path
