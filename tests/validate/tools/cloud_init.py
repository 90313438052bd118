"""cloud-init 22.4 on the rendered user-data and network-config: its schema check, the top-level
keys it knows, the structure of the network-config and its converter for each Debian renderer,
one interpreter per tool for many files (`run_cloud_init`)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from tests.validate.tools.procs import TIMEOUT_S, CheckFailed, ToolResult, parallel, run, run_ok

SYSTEM_PYTHON = "/usr/bin/python3"  # cloud-init's own interpreter (its modules are not in the venv)


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
