"""Bad and tricky values in the settings: the settings refuse them, or every file rendered from
them passes the real tools (cloud-init 22.4's schema and converter, haproxy -c, corosync -t,
bash -n) and reads back with the values it was given.

The property test puts seeded random strings into every string setting of the dev stack.
HAPX_PROPERTY_SEED replays a run (the seed is printed and named in every failure);
HAPX_PROPERTY_TRIALS sets how many stacks are tried (default below, sized to the tier's budget).
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import functools
import hashlib
import os
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from hapx import keys, rendering
from hapx.cli.render import render_all, sample_secrets
from hapx.model import Settings, SettingsError
from hapx.settings import settings_from_dict
from tests.validate.tools.cloud_init import (
    NetworkExpectation,
    check_network_config_structure,
    check_user_data_batch,
    check_user_data_keys,
    cloud_config_keys,
    net_convert_batch,
)
from tests.validate.tools.corosync import check_corosync_conf
from tests.validate.tools.haproxy import check_haproxy_cfg
from tests.validate.tools.procs import CheckFailed, parallel, run
from tests.validate.variants import dev

# About a quarter of the stacks get past the settings (most random strings are refused there).
DEFAULT_TRIALS = 60
NET_KINDS = ("eni", "netplan", "networkd")


@dataclasses.dataclass(frozen=True)
class Rendered:
    """One stack rendered for the checks, with what was put into it."""

    label: str
    settings: Settings
    root: Path


def _expectation(settings: Settings, node) -> NetworkExpectation:
    return NetworkExpectation(
        interface=settings.interface, mac=node.mac, address=f"{node.ip}/{settings.prefix_len}",
        gateway=str(settings.network.gateway), dns=tuple(str(d) for d in settings.network.dns_servers),
        search=(settings.network.domain,))


def _read_back(r: Rendered, known_keys: set[str]) -> list[str]:
    """The cloud-init files parse (as cloud-init parses them) to exactly the values given."""
    problems = []
    s = r.settings
    for node in s.nodes:
        d = r.root / "nodes" / node.name
        try:
            check_user_data_keys(d / "user-data", known_keys)
            check_network_config_structure(d / "network-config", _expectation(s, node))
            ud = yaml.safe_load((d / "user-data").read_text())
            md = yaml.safe_load((d / "meta-data").read_text())
        except (CheckFailed, yaml.YAMLError) as err:
            problems.append(f"{r.label}: {node.name}: {err}")
            continue
        want = {"hostname": node.name, "fqdn": f"{node.name}.{s.network.domain}",
                "user": s.ssh_user, "local-hostname": node.name}
        got = {"hostname": ud.get("hostname"), "fqdn": ud.get("fqdn"),
               "user": (ud.get("users") or [{}])[0].get("name"), "local-hostname": md.get("local-hostname")}
        if got != want or not str(md.get("instance-id", "")).startswith(f"{node.name}-"):
            problems.append(f"{r.label}: {node.name}: read back {got} / {md}, want {want}")
    return problems


def _distinct(paths: Sequence[Path]) -> dict[str, Path]:
    """One path per distinct content: the same file is checked once."""
    return {hashlib.sha256(p.read_bytes()).hexdigest(): p for p in reversed(paths)}


@functools.lru_cache(maxsize=1)
def _known_keys() -> frozenset:
    return frozenset(cloud_config_keys())


def check_renders(renders: Sequence[Rendered], work: Path, net_kinds: Sequence[str] = NET_KINDS) -> list[str]:
    """Every problem the real tools find in the rendered stacks, each named by its stack's label.
    Each tool runs once per batch where it can (cloud-init), else once per distinct file."""
    problems: list[str] = []
    label_of: dict[Path, str] = {}
    for r in renders:
        for path in r.root.rglob("*"):
            label_of[path] = r.label
    known = set(_known_keys())
    for r in renders:
        problems += _read_back(r, known)

    user_data = [r.root / "nodes" / n.name / "user-data" for r in renders for n in r.settings.nodes]
    for path, message in check_user_data_batch(list(_distinct(user_data).values())).items():
        problems.append(f"{label_of[path]}: cloud-init schema rejected {path.name}: {message}")

    nets = list(_distinct([r.root / "nodes" / n.name / "network-config" for r in renders for n in r.settings.nodes])
                .items())
    errors = net_convert_batch([(p, kind, work / "net" / h / kind) for h, p in nets for kind in net_kinds])
    problems += [f"net-convert: {where}: {error}" for where, error in errors.items()]
    for h, path in nets:
        networkd = "".join(f.read_text() for f in (work / "net" / h / "networkd").rglob("*") if f.is_file())
        mac = yaml.safe_load(path.read_text())["ethernets"]
        mac = next(iter(mac.values()))["match"]["macaddress"]
        if f"MACAddress={mac}" not in networkd:
            problems.append(f"{label_of[path]}: net-convert -O networkd of {path} lost the MAC {mac}:\n{networkd}")

    def tool(check: Callable[[], Any], path: Path) -> str:
        try:
            check()
        except CheckFailed as err:
            return f"{label_of[path]}: {err}"
        return ""

    haproxy = _distinct([r.root / "haproxy.cfg" for r in renders])
    problems += parallel(lambda p: tool(lambda: check_haproxy_cfg(p), p), list(haproxy.values()))
    # corosync -t wants the keyfile the conf names: the deployed file with a test key's path.
    key = work / "authkey"
    key.write_bytes(base64.b64decode(keys.corosync_authkey()))
    key.chmod(0o400)
    first_ip = {}
    for h, deployed in _distinct([r.root / "corosync.conf" for r in renders]).items():
        conf = work / f"corosync-{h[:16]}.conf"
        conf.write_text(deployed.read_text().replace(f"keyfile: {rendering.DEFAULT_KEYFILE}\n", f"keyfile: {key}\n"))
        label_of[conf] = label_of[deployed]
        first_ip[conf] = str(next(r for r in renders if r.root / "corosync.conf" == deployed).settings.nodes[0].ip)
    problems += parallel(lambda p: tool(lambda: check_corosync_conf(p, first_ip[p]), p),
                         list(first_ip))
    scripts = _distinct([p for r in renders for p in sorted((r.root / "steps").glob("*.sh"))])

    def bash_n(path: Path) -> str:
        result = run(["bash", "-n", path])
        return f"{label_of[path]}: bash -n rejected {path.name}:\n{result.describe()}" if result.returncode else ""

    problems += [bash_n(p) for p in scripts.values()]
    return [p for p in problems if p]


def _render(label: str, settings: Settings, root: Path, stats_password: str | None = None) -> Rendered:
    secrets, private_key = sample_secrets(settings)
    if stats_password is not None:
        secrets = dataclasses.replace(secrets, stats_password=stats_password)
    render_all(settings, secrets, private_key, root)
    return Rendered(label, settings, root)


def _get(cfg: Any, path: tuple) -> Any:
    for key in path:
        cfg = cfg[key] if not isinstance(cfg, dict) or key in cfg else None
        if cfg is None:
            return None
    return cfg


def _set(cfg: Any, path: tuple, value: Any) -> None:
    for key in path[:-1]:
        if isinstance(cfg, dict) and key not in cfg:
            cfg[key] = [] if isinstance(path[path.index(key) + 1], int) else {}
        cfg = cfg[key]
    if isinstance(cfg, list) and path[-1] >= len(cfg):
        cfg.append(value)
    else:
        cfg[path[-1]] = value


# --- the issue's cases --------------------------------------------------------------------

def _with(**changes) -> dict:
    cfg = dev()
    for path, value in changes.items():
        _set(cfg, tuple(int(k) if k.isdigit() else k for k in path.split("__")), value)
    return cfg


ISSUE_CASES = {
    "interface-on": _with(interface="on"),
    "domain-on": _with(network__domain="on"),
    "names-null-on": _with(nodes__0__name="null", nodes__1__name="on"),
    "names-0x1f-yes": _with(nodes__0__name="0x1f", nodes__1__name="yes"),
    "ssh-user-null": _with(sshUser="null"),
    "fqdn-numeric-domain": _with(nodes__0__name="1e3", network__domain="5"),
}


def test_issue_cases_pass_cloud_init_and_read_back(work):
    """interface 'on', domain 'on', node names "null", "on", "0x1f", "yes", sshUser 'null' (and a
    node "1e3" in domain "5"; all-digit names such as "1" are refused by the settings): settings
    accept each, and every rendered file passes the tools and reads back as given."""
    renders = [_render(label, settings_from_dict(cfg), work / label) for label, cfg in ISSUE_CASES.items()]
    problems = check_renders(renders, work / "checks")
    assert not problems, "\n\n".join(problems)


def test_the_checks_catch_a_retyped_value(work):
    """The same checks fail on the files the templates rendered before quoting: `on:` read as
    True (the NIC renamed True), `hostname: null`, `fqdn: 1.5`."""
    r = _render("interface-on", settings_from_dict(ISSUE_CASES["interface-on"]), work / "broken")
    node = r.settings.nodes[0]
    d = r.root / "nodes" / node.name
    (d / "network-config").write_text((d / "network-config").read_text().replace('"on"', "on"))
    (d / "user-data").write_text((d / "user-data").read_text()
                                 .replace(f'hostname: "{node.name}"', "hostname: null"))
    problems = "\n".join(check_renders([r], work / "checks"))
    assert "ethernets must hold exactly 'on', got {True:" in problems
    assert "cloud-init schema rejected user-data: Cloud config schema errors: hostname: None is not of type 'string'" \
        in problems


def test_batched_tools_reject_broken_files(dev_stack, work):
    """The batched cloud-init checks fail like the single ones: schema and converter."""
    node = dev_stack.settings.nodes[0]
    ud = work / "user-data"
    ud.write_text((dev_stack.node_dir(node) / "user-data").read_text().replace("ssh_pwauth: false", "ssh_pwauth: 5"))
    assert "ssh_pwauth: 5 is not valid" in check_user_data_batch([ud])[ud]
    nc = work / "network-config"
    nc.write_text((dev_stack.node_dir(node) / "network-config").read_text().replace("/24", ".5/24", 1))
    (error,) = net_convert_batch([(nc, "networkd", work / "out")]).values()
    assert "is not a valid ip address" in error


# --- the property -------------------------------------------------------------------------

# Every string setting of the dev stack (addresses too: a string the settings take for one must
# still render), as paths into the config.
STRING_SETTINGS = [
    ("vip",), ("nodes", 0, "name"), ("nodes", 1, "name"), ("nodes", 0, "ip"), ("nodes", 1, "mac"),
    ("masters", 0, "name"), ("masters", 1, "address"), ("network", "mode"), ("network", "name"),
    ("network", "cidr"), ("network", "gateway"), ("network", "dnsServers", 0), ("network", "domain"),
    ("libvirtUri",), ("domainType",), ("baseImage",), ("storagePool",), ("sshUser",), ("interface",),
    ("corosync", "clusterName"), ("haproxy", "statsUser"), ("haproxy", "healthCheck"),
    ("haproxy", "healthCheckPath"),
]
DEFAULTS = {("network", "dnsServers", 0): "192.168.4.1", ("nodes", 1, "mac"): "52:54:00:12:34:56",
            ("libvirtUri",): "qemu:///system", ("domainType",): "kvm", ("baseImage",): "/var/lib/img.qcow2",
            ("storagePool",): "default", ("sshUser",): "debian", ("interface",): "eth0",
            ("corosync", "clusterName"): "hapx", ("haproxy", "statsUser"): "admin",
            ("haproxy", "healthCheck"): "https", ("haproxy", "healthCheckPath"): "/readyz"}
YAML_WORDS = ["on", "off", "yes", "no", "y", "n", "true", "false", "True", "NO", "null", "Null", "~", "nan",
              "inf", ".inf", ".nan", "<<", "="]
NASTY_CHARS = " :#\"'{}[]&*!%@`|>,?-\\$;()<=\n\t\r\0\x7f\x85\u2028\ufeffé日\U0001f600"


def _number(rng: random.Random) -> str:
    n = rng.randrange(1, 100000)
    return rng.choice([str(n), f"0x{n:x}", f"0o{n:o}", f"0{n}", f"{n % 60}:{n % 59:02d}", f"{n}.{n % 7}",
                       f"{n}e{n % 9}", f"1_{n}", f"-{n}", f"{n % 256}.{n % 255}.{n % 254}.{n % 253}"])


def nasty(rng: random.Random, original: str) -> str:
    """A random string of one of the classes that break files: YAML's specials, numbers and their
    look-alikes, the original with a special character or spaces, random specials, unicode,
    host-name-like words and very long strings."""
    kind = rng.randrange(10)
    if kind == 0:
        return rng.choice(YAML_WORDS)
    if kind == 1:
        return _number(rng)
    if kind == 2:
        i = rng.randrange(len(original) + 1)
        return original[:i] + rng.choice(NASTY_CHARS) + original[i:]
    if kind == 3:
        return rng.choice([" ", "\t", "\n", ""]) + original + rng.choice([" ", "\n", "\t", "", "#x"])
    if kind == 4:
        return "".join(rng.choice(NASTY_CHARS + "abc019") for _ in range(rng.randrange(1, 12)))
    if kind == 5:
        return rng.choice(["ñode", "节点", "node\u200b", "Node01", "NODE", "a.b", "-x", "x-", "_x", "x_y"])
    if kind == 6:
        return rng.choice(["a", "a-", "1", "x."]) * rng.randrange(20, 3000)
    if kind == 7:
        return rng.choice(YAML_WORDS[:11]) + rng.choice(["", "-1", "1", ".local"])
    if kind == 8:
        return "".join(rng.choice("abcxyz0123456789-") for _ in range(rng.randrange(1, 20)))
    return rng.choice(["0x1f", "1e3", "017", "1", "12", "0", "0o7", "1-2", "1.5", "08", "1e-3"])


def test_random_strings_in_every_string_setting(work, capsys):
    """Seeded random strings in one to three string settings (and the stats password) at a time:
    the settings (or, for the password, haproxy_cfg) refuse the stack, or every rendered file
    passes the tools and reads back as given."""
    seed = int(os.environ.get("HAPX_PROPERTY_SEED") or random.SystemRandom().randrange(2 ** 32))
    trials = int(os.environ.get("HAPX_PROPERTY_TRIALS") or DEFAULT_TRIALS)
    with capsys.disabled():
        print(f"\nproperty test: HAPX_PROPERTY_SEED={seed} HAPX_PROPERTY_TRIALS={trials}", flush=True)
    rng = random.Random(seed)
    base = dev()
    renders, refused, problems = [], 0, []
    for trial in range(trials):
        cfg = copy.deepcopy(base)
        changes = {}
        for path in rng.sample(STRING_SETTINGS, rng.choice((1, 1, 1, 1, 2, 2, 3))):
            value = nasty(rng, str(_get(cfg, path) or DEFAULTS[path]))
            _set(cfg, path, value)
            changes[".".join(map(str, path))] = value
        password = nasty(rng, "s3cretPassw0rd") if rng.random() < 0.3 else "s3cretPassw0rd"
        label = f"seed {seed} trial {trial}: {changes!r}, statsPassword {password!r}"
        try:
            settings = settings_from_dict(cfg)
            rendering.haproxy_cfg(settings, password)
        except (SettingsError, ValueError):
            refused += 1
            continue
        try:
            renders.append(_render(label, settings, work / f"t{trial}", password))
        except Exception as err:  # accepted, then refused by a renderer: a traceback under `pulumi up`
            problems.append(f"{label}: the settings accepted it, rendering raised {err!r}")
    with capsys.disabled():
        print(f"property test: {trials} stacks, {refused} refused, {len(renders)} rendered and checked", flush=True)
    # networkd and eni: the renderers of Debian's cloud images and of images with ifupdown.
    problems += check_renders(renders, work / "checks", net_kinds=("networkd", "eni"))
    assert not problems, f"HAPX_PROPERTY_SEED={seed}\n\n" + "\n\n".join(problems)
    assert renders, f"HAPX_PROPERTY_SEED={seed}: no stack got past the settings: the test checked nothing"
