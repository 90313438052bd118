"""The VM lab: a private libvirtd in the lab's own namespaces, and the program itself, run by
`pulumi up --stack lab` against it. Standard library only.

The lab gives the program what an operator's hypervisor gives it (a libvirtd, a storage pool
named `default`, dnsmasq for the network the stack creates, a bootable Debian 12 image) and
then only drives `pulumi`; what it needs to know about the pair it reads from the stack's
outputs. Its Pulumi state, passphrase and stack file live under build/lab/vm/, apart from the
operator's: the project is seen through a directory of links to the checkout's own files.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from lab.labnet import (
    BUILD,
    PROJECT,
    LabError,
    create_namespace,
    ensure_standins,
    load_state,
    log,
    ns_exists,
    ns_inode,
    pid_alive,
    remove_namespace,
    run,
    save_state,
    wait_vip,
    write_file,
)
from lab.pulumirun import PulumiTimeout, run_bounded, tail

NAME = "vm"
NS = os.environ.get("HAPX_VM_NS", "hapx-vm")
DIR = BUILD / NAME
STACK = "lab"
IMAGE = BUILD / "image" / "base.qcow2"
POOL = "default"  # what Pulumi.lab.yaml's hapx:storagePool names (the default)
DAEMON_TIMEOUT_S = 60
UP_TIMEOUT_S = int(os.environ.get("HAPX_VM_UP_TIMEOUT", "2400"))
VIP_TIMEOUT_S = 180
# The project as the engine sees it: links to these (tracked) files and the virtualenv.
PROJECT_FILES = ("Pulumi.yaml", "__main__.py", "requirements.txt", "components", "hapx", "templates", "agents", ".venv")

LIBVIRTD_CONF = """\
# hapx lab: a private libvirtd (see lab/vmlab.py); only its unix socket, only for root.
unix_sock_group = "root"
unix_sock_ro_perms = "0700"
unix_sock_rw_perms = "0700"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
"""

QEMU_CONF = """\
# hapx lab: QEMU runs as root in the lab's namespaces; no cgroups, no per-VM mount
# namespace, no security driver, no virtlogd (console and QEMU logs go to plain files).
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
stdio_handler = "file"
"""

# Runs inside `ip netns exec NS unshare --mount --propagation private`: private state dirs
# for libvirtd (and so for dnsmasq, which the stack's network starts), then libvirtd itself
# in the foreground (same pid).
LIBVIRTD_SH = """\
set -eu
mount -t tmpfs -o mode=0755 hapx-lab-run /run
mkdir -p /run/libvirt /run/lock
mount --bind "$HAPX_ETC" /etc/libvirt
mount --bind "$HAPX_LIB" /var/lib/libvirt
mount --bind "$HAPX_LOG" /var/log/libvirt
mount --bind "$HAPX_CACHE" /var/cache/libvirt
exec libvirtd
"""


def logs() -> Path:
    return DIR / "logs"


def start_libvirtd(state: dict) -> None:
    """libvirtd in the lab's network namespace and a private mount namespace of its own."""
    etc, lib, cache = DIR / "libvirt" / "etc", DIR / "libvirt" / "lib", DIR / "libvirt" / "cache"
    log_dir = logs() / "libvirt"
    for d in (etc / "qemu" / "networks", etc / "nwfilter", etc / "storage", lib / "images", lib / "boot",
              lib / "qemu" / "channel" / "target", lib / "dnsmasq", lib / "network", log_dir / "qemu",
              cache / "qemu"):
        d.mkdir(parents=True, exist_ok=True)
    (etc / "libvirtd.conf").write_text(LIBVIRTD_CONF)
    (etc / "qemu.conf").write_text(QEMU_CONF)
    (etc / "libvirt.conf").write_text('uri_default = "qemu:///system"\n')
    env = dict(os.environ, HAPX_ETC=str(etc), HAPX_LIB=str(lib), HAPX_LOG=str(log_dir), HAPX_CACHE=str(cache))
    with open(logs() / "libvirtd.out", "ab") as out:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", state["ns"], "unshare", "--mount", "--propagation", "private",
             "/bin/sh", "-c", LIBVIRTD_SH],
            env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    state["libvirtd_pid"] = proc.pid
    save(state)
    sock = Path(f"/proc/{proc.pid}/root/run/libvirt/libvirt-sock")
    deadline = time.monotonic() + DAEMON_TIMEOUT_S
    while not sock.exists():
        if proc.poll() is not None:
            raise LabError(f"libvirtd exited ({proc.returncode}); see {logs() / 'libvirtd.out'}")
        if time.monotonic() > deadline:
            raise LabError(f"libvirtd's socket did not appear within {DAEMON_TIMEOUT_S}s")
        time.sleep(0.2)
    state["mnt_ino"] = ns_inode(f"/proc/{proc.pid}/ns/mnt")
    save(state)
    virsh(state, "version", timeout=DAEMON_TIMEOUT_S)


def in_libvirtd(state: dict, argv: list[str], cwd: Path | None = None) -> list[str]:
    """argv, run in the lab libvirtd's mount and network namespaces (where qemu:///system is the
    lab's), in cwd (entering a mount namespace resets the working directory)."""
    if not libvirtd_usable(state):
        raise LabError("the lab's libvirtd is not running (is the VM lab up?)")
    enter = ["nsenter", "-t", str(state["libvirtd_pid"]), "-m", "-n"]
    if cwd is None:
        return [*enter, *argv]
    # Not nsenter --wd: it opens the directory before entering, and getcwd() then fails there.
    return [*enter, "sh", "-c", 'cd "$0" && exec "$@"', str(cwd), *argv]


def virsh(state: dict, *args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
    """virsh against the lab's libvirtd."""
    return run(in_libvirtd(state, ["virsh", "-q", "-c", "qemu:///system", *args]), timeout=timeout, check=check)


def libvirtd_usable(state: dict) -> bool:
    pid = state.get("libvirtd_pid")
    return pid_alive(pid) and ns_inode(f"/proc/{pid}/ns/mnt") == state.get("mnt_ino")


def define_pool(state: dict) -> None:
    """The storage pool the stack names, as a fresh hypervisor would need it defined."""
    target = DIR / "pool"
    target.mkdir(parents=True, exist_ok=True)
    virsh(state, "pool-define-as", POOL, "dir", "--target", str(target))
    virsh(state, "pool-start", POOL)


# ---------------------------------------------------------------- the engine

_ENV: dict[str, str] = {}


def engine_env() -> dict[str, str]:
    """The environment that runs `pulumi`: an official CLI on PATH as it is, else the one
    scripts/build-engine builds (cached), with the lab's own state backend and passphrase."""
    if _ENV:
        return _ENV
    env = dict(os.environ)
    if not shutil.which("pulumi"):
        res = subprocess.run([str(PROJECT / "scripts" / "build-engine")], timeout=3600)
        if res.returncode != 0:
            raise LabError(f"scripts/build-engine failed ({res.returncode})")
        for line in (PROJECT / "build" / "engine" / "env").read_text().splitlines():
            if line.startswith("export "):
                key, _, value = line[len("export "):].partition("=")
                value = value.strip('"').replace("$PATH", env.get("PATH", ""))
                env[key] = value
    passphrase = DIR / "passphrase"
    if not passphrase.exists():
        write_file(passphrase, os.urandom(24).hex() + "\n", 0o600)
    env.update(PULUMI_BACKEND_URL=f"file://{DIR / 'pulumi-state'}", PULUMI_CONFIG_PASSPHRASE_FILE=str(passphrase),
               PULUMI_SKIP_UPDATE_CHECK="1")
    env.pop("PULUMI_CONFIG_PASSPHRASE", None)
    (DIR / "pulumi-state").mkdir(exist_ok=True)
    _ENV.update(env)
    return env


def project_view() -> Path:
    """The project as the lab's engine sees it: links to the checkout's files, and a stack file
    of its own (Pulumi writes the stack's encryption salt into it)."""
    view = DIR / "project"
    view.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        link = view / name
        if not link.is_symlink():
            link.symlink_to(PROJECT / name)
    if not stack_file().exists():
        shutil.copyfile(PROJECT / f"Pulumi.{STACK}.yaml", stack_file())
    return view


def stack_file() -> Path:
    """The lab stack's own stack file (its config, and the salt of its secrets): a change to it
    reaches the VMs with the next `pulumi up`."""
    return DIR / "project" / f"Pulumi.{STACK}.yaml"


def pulumi_log() -> Path:
    """Where every `pulumi` run of the lab appends its full output (kept after `down`)."""
    return BUILD / f"{NAME}-pulumi.log"


def pulumi(state: dict, *args: str, timeout: float = 600, check: bool = True, echo: bool = False,
           secret_output: bool = False) -> subprocess.CompletedProcess:
    """`pulumi ARGS --stack lab` in the lab libvirtd's namespaces, from the lab's project view,
    bounded (see pulumirun); with echo, its output also streams to stdout as it comes.
    secret_output: the output shows secrets, so it is not logged."""
    cwd = project_view()
    argv = in_libvirtd(state, ["pulumi", *args, "--stack", STACK, "--non-interactive"], cwd=cwd)
    log_path = None if secret_output else pulumi_log()
    try:
        res = run_bounded(argv, timeout, log_path, state_dir=DIR / "pulumi-state", echo=echo,
                          env=engine_env(), cwd=cwd)
    except PulumiTimeout as err:
        raise LabError(f"pulumi {' '.join(args)}: {err}") from err
    if check and res.returncode != 0:
        raise LabError(f"pulumi {' '.join(args)} failed ({res.returncode}); see {pulumi_log()}\n"
                       + (res.stderr if secret_output else tail(pulumi_log())))
    return res


def preflight(state: dict) -> None:
    """The host check `make up` runs before Pulumi (hapx.cli.preflight), here on the lab's libvirtd:
    the lab stands in for an operator's host, so it must pass the same check."""
    argv = [str(PROJECT / ".venv" / "bin" / "python"), "-m", "hapx.cli.preflight", "--stack", STACK,
            "--config", str(stack_file())]
    res = run(in_libvirtd(state, argv, cwd=PROJECT), timeout=120, check=False)
    if res.returncode != 0:
        raise LabError((res.stdout + res.stderr).strip())
    log(res.stdout.strip())


def outputs(state: dict) -> dict:
    """The stack's outputs, secrets shown (they are the lab's own)."""
    return json.loads(pulumi(state, "stack", "output", "--json", "--show-secrets", timeout=120,
                             secret_output=True).stdout)


def facts(state: dict, out: dict) -> dict:
    """What the lab tools need to know about the pair, from the stack's outputs."""
    stats_url = out["statsUrl"].rstrip("/")
    masters = []
    for entry in out["backendMasters"]:
        name, _, endpoint = entry.partition(" ")
        address, _, port = endpoint.rpartition(":")
        masters.append({"name": name, "address": address, "port": int(port)})
    return {
        "vip": out["vip"],
        "nodes": out["nodeIps"],
        "ssh_user": out["sshUser"],
        "key": write_file(DIR / "id_ed25519", out["sshPrivateKey"], 0o600),
        "known_hosts": write_file(DIR / "known_hosts", "".join(
            f"{ip} {out['nodeHostKeys'][n]}\n" for n, ip in out["nodeIps"].items()), 0o644),
        "stats_user": out["statsUser"],
        "stats_password": out["statsPassword"],
        "stats_port": int(stats_url.rpartition(":")[2]),
        "api_port": int(out["apiEndpoint"].rpartition(":")[2]),
        "masters": masters,
    }


def refresh_facts(state: dict) -> dict:
    """Re-read the outputs after an update: new masters get their stand-ins."""
    state["lab"] = facts(state, outputs(state))
    ensure_standins(state, state["lab"]["masters"], logs())
    save(state)
    return state


# ---------------------------------------------------------------- state

def load() -> dict:
    return load_state(DIR)


def save(state: dict) -> None:
    save_state(DIR, state)


# ---------------------------------------------------------------- backend operations

def up(keep_on_failure: bool = False) -> dict:
    """Image and engine (cached), namespace, libvirtd, pool, then `pulumi up` of the lab stack."""
    down(quiet=True)
    timings: dict[str, float] = {}
    t_start = t0 = time.monotonic()
    res = subprocess.run([str(PROJECT / "lab" / "build-image")], timeout=3600)
    if res.returncode != 0:
        raise LabError(f"lab/build-image failed ({res.returncode})")
    timings["image (lab/build-image)"] = round(time.monotonic() - t0, 1)
    t0 = time.monotonic()
    DIR.mkdir(parents=True, exist_ok=True)
    logs().mkdir(parents=True, exist_ok=True)
    engine_env()
    timings["engine (scripts/build-engine)"] = round(time.monotonic() - t0, 1)
    state: dict = {"backend": NAME, "ns": NS, "dir": str(DIR), "started_at": time.time()}
    save(state)
    try:
        t0 = time.monotonic()
        state["net_ino"] = create_namespace(NS)
        save(state)
        start_libvirtd(state)
        define_pool(state)
        timings["namespace, libvirtd, pool"] = round(time.monotonic() - t0, 1)
        pulumi(state, "stack", "init", timeout=120)
        # The image the lab built, where an operator would name Debian's cloud image.
        pulumi(state, "config", "set", "hapx:baseImage", str(IMAGE.resolve()), timeout=60)
        preflight(state)
        t0 = time.monotonic()
        pulumi(state, "up", "--yes", "--skip-preview", timeout=UP_TIMEOUT_S, echo=True)
        timings["pulumi up"] = round(time.monotonic() - t0, 1)
        refresh_facts(state)
        timings["VIP serves after pulumi up"] = round(wait_vip(state, VIP_TIMEOUT_S), 1)
    except BaseException as err:
        log(f"up failed: {err}" if isinstance(err, LabError) else f"up interrupted ({type(err).__name__})")
        if keep_on_failure and isinstance(err, LabError):
            log("--keep-on-failure: leaving the VM lab up; `lab/labctl --backend vm down` removes it")
        else:
            log("cleaning up")
            down(quiet=True)
        raise
    timings["total"] = round(time.monotonic() - t_start, 1)
    state["timings"] = timings
    save(state)
    return state


def domain(state: dict, node: str) -> str:
    """The libvirt domain of a node (the program names it hapx-STACK-NODE)."""
    names = virsh(state, "list", "--all", "--name").stdout.split()
    matches = [d for d in names if d.endswith(f"-{node}")]
    if len(matches) != 1:
        raise LabError(f"no single domain for {node} among {names}")
    return matches[0]


def kill(state: dict, node: str) -> None:
    """Power loss: the node's VM destroyed (not shut down)."""
    t0 = time.time()
    virsh(state, "destroy", domain(state, node), timeout=120)
    log(f"{node} killed at {t0:.3f} (virsh destroy)")


def start(state: dict, node: str) -> None:
    """Power on again: the VM boots from its disk."""
    virsh(state, "start", domain(state, node), timeout=120)


def running(state: dict, node: str) -> bool:
    return virsh(state, "domstate", domain(state, node), check=False).stdout.strip() == "running"


def ports(state: dict) -> dict[str, str]:
    """Each VM's port on the network's bridge (its tap device), from libvirt's view."""
    found = {}
    for node in state["lab"]["nodes"]:
        out = virsh(state, "domiflist", domain(state, node), timeout=30).stdout.split()
        taps = [w for w in out if w.startswith("vnet")]
        if len(taps) != 1:
            raise LabError(f"cannot find {node}'s port: {out}")
        found[node] = taps[0]
    return found


def change_args(render: Path | None, timeout: float) -> list[str]:
    """labctl's arguments that apply a changed configuration: `pulumi up` of the stack file, the
    change already written there (render None), bounded by timeout seconds."""
    return ["pulumi", "--timeout", str(timeout), "--", "up", "--yes", "--skip-preview"]


def down(quiet: bool = False) -> int:
    """`pulumi destroy` when the lab's libvirtd still runs, then remove everything; idempotent."""
    state = load()
    ended = 0
    if state:
        if libvirtd_usable(state) and (DIR / "pulumi-state").exists():
            try:
                pulumi(state, "destroy", "--yes", "--skip-preview", timeout=600, check=False)
            except LabError as err:
                log(f"pulumi destroy: {err}")
        ended = remove_namespace(state.get("ns") or NS, state.get("net_ino"), state.get("mnt_ino"))
    elif ns_exists(NS):
        ended = remove_namespace(NS)
    if DIR.exists():
        shutil.rmtree(DIR)
    if not quiet:
        print(f"hapx VM lab is down ({ended} processes ended)")
    return ended
