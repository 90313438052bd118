"""What `pulumi up` needs of the host, checked before Pulumi starts: one clear message each.

Usage: python -m hapx.cli.preflight --stack dev [--config FILE]

Without it a host that is not ready (no libvirtd, no storage pool, no mkisofs) surfaces as
Python tracebacks from the program with the cause at the bottom, after Pulumi has started.
scripts/up runs it after the configuration check; the VM lab runs it on its own libvirtd.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Optional
from urllib.parse import urlsplit

from hapx import stackfile
from hapx.model import Settings, SettingsError
from hapx.settings import settings_from_dict
from hapx.spec import NAMESPACE

PROJECT = Path(__file__).resolve().parents[2]
# A libvirtd that answers at all answers within a second; an ssh URI may have to dial first.
VIRSH_TIMEOUT_S = 20
# libvirt starts dnsmasq from this path for every network it creates with DNS (Debian: dnsmasq-base).
DNSMASQ = "/usr/sbin/dnsmasq"


def _key(key: str) -> str:
    return f"{NAMESPACE}:{key}"


def virsh(uri: str, *args: str) -> tuple[bool, str]:
    """Run `virsh -c uri ARGS`, bounded: (whether it succeeded, its output or its error's last line)."""
    # A session of its own: on a timeout the whole group goes, an ssh that virsh started too
    # (it would otherwise hold the pipes open). The C locale: pool-info's labels are translated.
    proc = subprocess.Popen(["virsh", "-q", "-c", uri, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env=dict(os.environ, LC_ALL="C"))
    try:
        out, err = proc.communicate(timeout=VIRSH_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return False, f"no answer within {VIRSH_TIMEOUT_S:g} s"
    if proc.returncode != 0:
        lines = [ln.removeprefix("error: ").strip() for ln in err.splitlines() if ln.strip()]
        return False, lines[-1] if lines else f"virsh exited {proc.returncode}"
    return True, out


def is_local(uri: str) -> bool:
    """Whether the libvirt URI names this machine (no host part: qemu:///system, qemu+unix:///...)."""
    return not urlsplit(uri).netloc


def _field(output: str, name: str) -> Optional[str]:
    """A `Name: value` line of virsh's output (pool-info, net-info)."""
    for line in output.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == name:
            return value.strip()
    return None


def host_problems(settings: Settings, dnsmasq: str = DNSMASQ) -> tuple[list[str], list[str]]:
    """(problems, notes): what this host lacks for `up` of settings, and what it cannot check."""
    problems: list[str] = []
    notes: list[str] = []
    uri = settings.libvirt_uri
    if not shutil.which("mkisofs"):
        problems.append("mkisofs is not installed: apt-get install genisoimage "
                        "(pulumi-libvirt makes the nodes' cloud-init disks with it, on this machine)")
    if settings.network.creates:
        if not is_local(uri):
            notes.append(f"{_key('network.mode')}: create needs dnsmasq on the host of {uri} "
                         f"({DNSMASQ}, Debian's dnsmasq-base): not checked from here")
        elif not os.access(dnsmasq, os.X_OK):
            problems.append(f"{_key('network.mode')}: create needs dnsmasq, which libvirt starts for the "
                            f"network's DNS: {dnsmasq} is missing (apt-get install dnsmasq-base)")
    if not shutil.which("virsh"):
        problems.append(f"{_key('libvirtUri')}: cannot check {uri}: virsh is not installed "
                        "(apt-get install libvirt-clients; the VMs run on a libvirtd: libvirt-daemon-system "
                        "qemu-system-x86)")
        return problems, notes
    answers, out = virsh(uri, "version")
    if not answers:
        hint = ("is libvirtd running (systemctl start libvirtd) and may this user use it (the libvirt group)?"
                if is_local(uri) else "does the host answer and run libvirtd?")
        problems.append(f"{_key('libvirtUri')}: {uri} does not answer: {out}; {hint}")
        return problems, notes  # nothing more can be asked of it
    pool = settings.storage_pool
    found, out = virsh(uri, "pool-info", pool)
    if not found:
        problems.append(f"{_key('storagePool')}: no storage pool {pool!r} on {uri} ({out}): define one, e.g. "
                        f"virsh pool-define-as {pool} dir --target /var/lib/libvirt/images; "
                        f"virsh pool-start {pool}; virsh pool-autostart {pool}")
    elif (state := _field(out, "State")) != "running":
        problems.append(f"{_key('storagePool')}: storage pool {pool!r} on {uri} is {state or 'not running'}: "
                        f"virsh pool-start {pool}")
    if not settings.network.creates:
        name = settings.network.name
        found, out = virsh(uri, "net-info", name)
        if not found:
            problems.append(f"{_key('network.name')}: no libvirt network {name!r} on {uri} ({out}), "
                            "which network.mode existing joins")
        elif _field(out, "Active") != "yes":
            problems.append(f"{_key('network.name')}: libvirt network {name!r} on {uri} is not active: "
                            f"virsh net-start {name}")
    if settings.domain_type == "kvm":
        usable, out = virsh(uri, "domcapabilities", "--virttype", "kvm")
        if not usable:
            problems.append(f"{_key('domainType')}: kvm is not usable on {uri} ({out}): "
                            "set hapx:domainType to qemu for software emulation")
    return problems, notes


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: exit 0 when the host is ready, 1 with every problem when not."""
    parser = argparse.ArgumentParser(prog="python -m hapx.cli.preflight", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True, help="stack name: reads Pulumi.<stack>.yaml")
    parser.add_argument("--config", type=Path, help="stack file to read instead of Pulumi.<stack>.yaml")
    args = parser.parse_args(argv)
    stack_file = args.config or PROJECT / f"Pulumi.{args.stack}.yaml"
    try:
        stack = stackfile.read(str(stack_file))
        settings = settings_from_dict(stack.hapx, stack.other_keys)
    except (stackfile.StackFileError, SettingsError, OSError) as err:
        print(f"hapx.preflight: {stack_file.name}: {err}", file=sys.stderr)
        return 2
    problems, notes = host_problems(settings)
    for note in notes:
        print(f"hapx.preflight: note: {note}")
    if problems:
        lines = "".join(f"  - {p}\n" for p in problems)
        print(f"hapx.preflight: this host is not ready for `pulumi up` of stack {args.stack} "
              f"({len(problems)} problem(s)):\n{lines}", end="", file=sys.stderr)
        return 1
    print(f"hapx.preflight: {settings.libvirt_uri} answers, storage pool {settings.storage_pool!r} is running, "
          "mkisofs is installed" + (", dnsmasq is installed" if settings.network.creates and
                                    is_local(settings.libvirt_uri) else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
