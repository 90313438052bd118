"""The container lab: each node a systemd-nspawn container (systemd as PID 1) booted from the
lab image's root tree, cloud-init seeded with the project's rendered NoCloud files, then the
plan's steps over SSH, as the program runs them. Native speed: where failover is measured.
Standard library only.

How a node is made (the lab's "hypervisor"; see ../shared/DESIGN.md, section 4c):
- disk: an overlayfs per node, the cached image tree (build/lab/image/rootfs) its read-only
  lower layer, upper and work under build/lab/containers/nodes/NODE/: the cache is never
  written and a node that is killed and started again keeps its own disk, like a VM;
- cloud-init: the render's nodes/NODE/{meta-data,user-data,network-config} in the tree's
  /var/lib/cloud/seed/nocloud/ (the NoCloud seed directory), nothing else;
- NIC: a veth pair in the lab's namespace, one end a port of the lab bridge, the other with the
  node's MAC moved into the container by nspawn (cloud-init names it by MAC);
- power: systemd-nspawn, started in a cgroup of its own (unified and name=systemd hierarchies,
  CGROUP_ROOT/NS/NODE: the host has no systemd) from a private mount namespace in which /sys is
  read-only (else nspawn waits for a udev that does not run here) and in the lab's network
  namespace. Power loss is SIGKILL of the container's init and nspawn plus the deletion of its
  veth; `down` finds every process by that cgroup, so a crashed labctl leaves nothing behind.

What only a container needs, supplied by the lab as a hypervisor supplies hardware and a kernel
command line (the image, the cloud-init files, the steps and the agent run unchanged):
- a veth has no permanent MAC address, and netplan (the image's cloud-init renders netplan)
  matches the NIC by PermanentMACAddress=: a read-only drop-in for netplan's .network file
  matches the node's MAC instead (NIC_SHIM);
- the image's /etc/fstab names the VM disk's root by UUID, which systemd-remount-fs cannot
  find in a container: masked on the init's command line (systemd.mask=).

Everything the lab sends stays inside its network namespace (NS, default hapx-ct).
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from lab import labdns
from lab.labnet import (
    BUILD,
    PROJECT,
    LabError,
    create_namespace,
    ensure_standins,
    load_state,
    log,
    ns_exists,
    pid_alive,
    remove_namespace,
    run,
    run_steps,
    save_state,
    wait_ssh,
    wait_vip,
    write_file,
)

NAME = "containers"
NS = os.environ.get("HAPX_CT_NS", "hapx-ct")
DIR = BUILD / "containers"
STACK = "containers"
# The image tree (lab/build-image links build/lab/image to the cached image directory);
# HAPX_CT_ROOTFS names another tree (never written: it is only ever a lower layer).
IMAGE_LINK = BUILD / "image"
BRIDGE = "hapx-br"
# Locally administered and fixed: a bridge otherwise takes its lowest port's MAC and changes it
# when that port goes (a killed node), leaving the survivor's ARP entries pointing nowhere.
BRIDGE_MAC = "02:68:61:70:78:01"
PORT_PREFIX = "hxct"  # veths: hxct<i>p (the bridge's port), hxct<i>c (the container's NIC)
BOOT_TIMEOUT_S = 120
VIP_TIMEOUT_S = 120
STOP_TIMEOUT_S = 15
NSPAWN = "systemd-nspawn"
# Overlays are named ctlab:NS:NODE (the mount's source), found by it in `down`; the colon ends
# the namespace, so `down` of lab hapx-ct never takes lab hapx-ct-b's disks.
OVERLAY_TAG = "ctlab:"

# Runs as the process that becomes systemd-nspawn (same pid through every exec): into the node's
# cgroups first, then a private mount namespace with /sys read-only, then the lab's netns.
LAUNCH_SH = r"""
set -eu
echo $$ >"$HAPX_CG_UNIFIED/cgroup.procs"
[ -z "${HAPX_CG_SYSTEMD:-}" ] || echo $$ >"$HAPX_CG_SYSTEMD/cgroup.procs"
exec unshare --mount --propagation private \
  sh -c 'mount -o remount,bind,ro /sys && exec nsenter --net="$0" "$@"' "$HAPX_NETNS" "$@"
"""


def logs() -> Path:
    return DIR / "logs"


def node_dir(node: str) -> Path:
    return DIR / "nodes" / node


# ---------------------------------------------------------------- state

def load() -> dict:
    return load_state(DIR)


def save(state: dict) -> None:
    save_state(DIR, state)


# ---------------------------------------------------------------- the image and the render

def rootfs() -> Path:
    """The image's root tree (the containers' lower layer)."""
    tree = Path(os.environ["HAPX_CT_ROOTFS"]) if os.environ.get("HAPX_CT_ROOTFS") else IMAGE_LINK / "rootfs"
    tree = tree.resolve()
    if not (tree / "usr" / "lib" / "systemd" / "systemd").exists():
        raise LabError(f"{tree} is not a bootable root tree (run lab/build-image)")
    return tree


def build_image() -> None:
    if os.environ.get("HAPX_CT_ROOTFS"):
        log(f"HAPX_CT_ROOTFS={os.environ['HAPX_CT_ROOTFS']}: not running lab/build-image")
        return
    res = subprocess.run([str(PROJECT / "lab" / "build-image")], timeout=3600)
    if res.returncode != 0:
        raise LabError(f"lab/build-image failed ({res.returncode})")


# The stack file without its `hapx:corosync` block (PyYAML is the project's, in its venv).
DROP_TIMERS = ("import sys, yaml; c = yaml.safe_load(open(sys.argv[1])); c['config'].pop('hapx:corosync', None); "
               "yaml.safe_dump(c, open(sys.argv[2], 'w'))")


def render_stack(out: Path, default_timers: bool = False) -> None:
    """The containers stack rendered by the project's own render command; with default_timers,
    corosync's timers are left at hapx's defaults (what a user who tunes nothing gets)."""
    python = PROJECT / ".venv" / "bin" / "python"
    if not python.exists():
        raise LabError(f"{python} is missing (make venv, or scripts/install-deps)")
    command = [str(python), "-m", "hapx.cli.render", "--stack", STACK, "--out", str(out)]
    if default_timers:
        config = out.parent / f"Pulumi.{STACK}-default-timers.yaml"
        run([str(python), "-c", DROP_TIMERS, str(PROJECT / f"Pulumi.{STACK}.yaml"), str(config)], timeout=60)
        command += ["--config", str(config)]
    run(command, timeout=300, cwd=PROJECT)


def read_plan(render: Path) -> dict:
    try:
        return json.loads((render / "plan.json").read_text())
    except (OSError, ValueError) as err:
        raise LabError(f"{render} is not a render output (plan.json: {err})") from None


def known_hosts_text(plan: dict) -> str:
    return "".join(f"{plan['nodes'][n]} {plan['hostKeys'][n]}\n" for n in plan["nodes"])


def facts(plan: dict, render: Path) -> dict:
    """What the lab tools need to know about the pair, from the render's plan and secrets."""
    secrets = render / "secrets"
    try:
        key = (secrets / "id_ed25519").read_text()
        stats_password = (secrets / "stats-password").read_text().strip()
    except OSError as err:
        raise LabError(f"{render}: {err}") from None
    return {
        "vip": plan["vip"],
        "nodes": dict(plan["nodes"]),
        "ssh_user": plan["sshUser"],
        "key": write_file(DIR / "id_ed25519", key, 0o600),
        "known_hosts": write_file(DIR / "known_hosts", known_hosts_text(plan), 0o644),
        "stats_user": plan["haproxy"]["statsUser"],
        "stats_password": stats_password,
        "stats_port": int(plan["haproxy"]["statsPort"]),
        "api_port": int(plan["haproxy"]["frontendPort"]),
        "masters": plan["masters"],
        "dns_servers": plan["network"]["dnsServers"],
        "domain": plan["network"]["domain"],
        "dns_hosts": plan["network"]["dnsHosts"],
        "dns_resolve_interval_s": int(plan["haproxy"]["dnsResolveIntervalSeconds"]),
        "render": str(render),
    }


def adopt_render(src: Path) -> Path:
    """Copy a render into the lab (DIR/render), replacing the lab's; returns DIR/render."""
    dest = DIR / "render"
    if src.resolve() == dest.resolve():
        return dest
    tmp = DIR / "render.new"
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(src, tmp, symlinks=True)
    old = DIR / "render.old"
    if old.exists():
        shutil.rmtree(old)
    if dest.exists():
        dest.rename(old)
    tmp.rename(dest)
    if old.exists():
        shutil.rmtree(old)
    return dest


# ---------------------------------------------------------------- cgroups

def cgroup_roots() -> dict[str, Path]:
    """Mount points of the unified (cgroup2) and name=systemd hierarchies."""
    roots: dict[str, Path] = {}
    for line in Path("/proc/self/mounts").read_text().splitlines():
        _src, mnt, fstype, opts = line.split()[:4]
        if fstype == "cgroup2" and "unified" not in roots:
            roots["unified"] = Path(mnt)
        elif fstype == "cgroup" and "name=systemd" in opts.split(",") and "systemd" not in roots:
            roots["systemd"] = Path(mnt)
    if "unified" not in roots:
        raise LabError("no cgroup2 hierarchy is mounted (systemd-nspawn needs one)")
    return roots


def lab_cgroups(node: str | None = None) -> list[Path]:
    """The lab's cgroup (or one node's) in every hierarchy: ROOT/NS[/NODE]."""
    try:
        roots = cgroup_roots()
    except LabError:
        return []
    return [root / NS / node if node else root / NS for root in roots.values()]


def cgroup_pids(groups: list[Path]) -> list[int]:
    """Every process in these cgroups and below them."""
    pids: set[int] = set()
    for group in groups:
        if not group.is_dir():
            continue
        for dirpath, _dirs, _files in os.walk(group):
            try:
                pids.update(int(p) for p in (Path(dirpath) / "cgroup.procs").read_text().split())
            except (OSError, ValueError):
                pass
    return sorted(p for p in pids if pid_alive(p))


def kill_cgroups(groups: list[Path], timeout: float = STOP_TIMEOUT_S) -> int:
    """SIGKILL every process in these cgroups (a power cut), wait until they are gone, remove the
    cgroups; the number of processes ended."""
    ended: set[int] = set(cgroup_pids(groups))
    deadline = time.monotonic() + timeout
    while True:
        for group in groups:
            if (group / "cgroup.kill").exists():
                try:
                    (group / "cgroup.kill").write_text("1")
                except OSError:
                    pass
        pids = cgroup_pids(groups)
        if not pids:
            break
        for pid in pids:
            ended.add(pid)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if time.monotonic() > deadline:
            raise LabError(f"processes survive SIGKILL in {', '.join(map(str, groups))}: {pids}")
        time.sleep(0.05)
    for group in groups:
        remove_cgroup(group, deadline)
    return len(ended)


def remove_cgroup(group: Path, deadline: float) -> None:
    """rmdir a cgroup and every cgroup below it, deepest first (retried until the deadline:
    a cgroup whose last process just died can be busy for a moment)."""
    if not group.is_dir():
        return
    for dirpath, _dirs, _files in sorted(os.walk(group), key=lambda w: -w[0].count("/")):
        while True:
            try:
                os.rmdir(dirpath)
                break
            except FileNotFoundError:
                break
            except OSError as err:
                if time.monotonic() > deadline:
                    raise LabError(f"cannot remove cgroup {dirpath}: {err}") from None
                time.sleep(0.05)


def make_cgroups(node: str) -> dict[str, Path]:
    """Fresh, empty cgroups for one node's nspawn, in the unified hierarchy and (on a hybrid host
    like this one) the name=systemd hierarchy."""
    roots = cgroup_roots()
    groups = {kind: root / NS / node for kind, root in roots.items()}
    kill_cgroups(list(groups.values()))
    for group in groups.values():
        group.mkdir(parents=True)
    return groups


def container_init(node: str) -> int | None:
    """The host pid of a node's init (pid 1 in its own pid namespace), or None."""
    for pid in cgroup_pids(lab_cgroups(node)):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("NSpid:"):
                    ids = line.split()[1:]
                    if len(ids) > 1 and ids[-1] == "1":
                        return pid
        except OSError:
            pass
    return None


# ---------------------------------------------------------------- the lab network

def ip(ns: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(["ip", "-n", ns, *args], timeout=30, check=check)


def link_exists(ns: str, name: str) -> bool:
    return ip(ns, "link", "show", "dev", name, check=False).returncode == 0


def make_bridge(state: dict, plan: dict) -> None:
    """The lab's bridge, with a fixed MAC and the gateway's address."""
    ns = state["ns"]
    prefix = ipaddress.ip_network(plan["network"]["cidr"], strict=False).prefixlen
    ip(ns, "link", "add", BRIDGE, "address", BRIDGE_MAC, "type", "bridge", "stp_state", "0", "forward_delay", "0")
    ip(ns, "addr", "add", f"{plan['network']['gateway']}/{prefix}", "dev", BRIDGE)
    ip(ns, "link", "set", BRIDGE, "up")


def start_dns(state: dict) -> None:
    """The DNS the stack's network provides, where the plan says the nodes' DNS servers are: on
    the gateway (the bridge's address), any other server address on the namespace's loopback."""
    lab, ns = state["lab"], state["ns"]
    have = ip(ns, "-4", "-o", "addr", "show").stdout
    for server in lab["dns_servers"]:
        if f" {server}/" not in have:
            ip(ns, "addr", "add", f"{server}/32", "dev", "lo")
    labdns.start(state, DIR / "dns", ",".join(lab["dns_servers"]), lab["domain"], lab["dns_hosts"])


def make_veth(state: dict, node: str) -> None:
    """A node's veth pair: the port on the bridge, and the NIC (the node's MAC) for nspawn to move in."""
    ns, n = state["ns"], state["nodes"][node]
    if link_exists(ns, n["port"]):
        ip(ns, "link", "delete", n["port"])
    if link_exists(ns, n["nic"]):
        ip(ns, "link", "delete", n["nic"])
    ip(ns, "link", "add", n["port"], "type", "veth", "peer", "name", n["nic"], "address", n["mac"])
    ip(ns, "link", "set", n["port"], "master", BRIDGE)
    ip(ns, "link", "set", n["port"], "up")


# ---------------------------------------------------------------- a node's disk and power

def mounted_under(path: Path, source_prefix: str | None = None) -> list[str]:
    """Mount points at or under path in this mount namespace (and, with source_prefix, overlays
    whose source names start with it, wherever they are), deepest first."""
    prefix = str(path)
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        mnt = fields[4].replace("\\040", " ")
        sep = fields.index("-")
        fstype, source = fields[sep + 1], fields[sep + 2]
        if (mnt == prefix or mnt.startswith(prefix + "/")
                or (source_prefix and fstype == "overlay" and source.startswith(source_prefix))):
            found.append(mnt)
    return sorted(set(found), key=lambda m: -m.count("/"))


def unmount_all(path: Path, source_prefix: str | None = None) -> int:
    """Unmount everything mounted under path (and overlays named source_prefix*); how many."""
    count = 0
    for mnt in mounted_under(path, source_prefix):
        res = run(["umount", mnt], timeout=30, check=False)
        if res.returncode != 0:
            run(["umount", "-l", mnt], timeout=30)
        count += 1
    left = mounted_under(path, source_prefix)
    if left:
        raise LabError(f"still mounted: {left}")
    return count


def make_disk(node: str, lower: Path, render: Path) -> Path:
    """The node's overlay (its own upper layer over the image tree) with the NoCloud seed in it."""
    d = node_dir(node)
    root = d / "root"
    for sub in ("upper", "work", "root"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    run(["mount", "-t", "overlay", f"{OVERLAY_TAG}{NS}:{node}", "-o",
         f"lowerdir={lower},upperdir={d / 'upper'},workdir={d / 'work'}", str(root)])
    seed = root / "var" / "lib" / "cloud" / "seed" / "nocloud"
    seed.mkdir(parents=True, exist_ok=True)
    os.chmod(seed, 0o700)
    for name, mode in (("meta-data", 0o644), ("user-data", 0o600), ("network-config", 0o644)):
        write_file(seed / name, (render / "nodes" / node / name).read_text(), mode)
    return root


NIC_SHIM = """\
# hapx lab (lab/ctlab.py), mounted read-only by the lab: this container's NIC is a veth, and a
# veth has no permanent MAC address (a VM's NIC has one). netplan matches the NIC by
# PermanentMACAddress=, which then matches nothing and networkd leaves the NIC unmanaged:
# match the NIC's own MAC (the node's fixed MAC) instead.
[Match]
PermanentMACAddress=
MACAddress={mac}
"""


def nic_shim(state: dict, node: str) -> Path:
    """A drop-in for the .network file netplan renders for the node's NIC (see NIC_SHIM)."""
    shim = node_dir(node) / "nic-shim"
    write_file(shim / "50-hapx-lab-veth.conf", NIC_SHIM.format(mac=state["nodes"][node]["mac"]), 0o644)
    return shim


def capabilities() -> str:
    """What the nodes need beyond nspawn's default set: CAP_NET_ADMIN (the VIP agent's `ip addr`),
    CAP_IPC_LOCK (corosync locks its memory), CAP_SYS_RESOURCE only where the host has it."""
    caps = ["CAP_NET_ADMIN", "CAP_IPC_LOCK"]
    bounding = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapBnd:"):
            bounding = int(line.split()[1], 16)
    if bounding & (1 << 24):  # CAP_SYS_RESOURCE
        caps.append("CAP_SYS_RESOURCE")
    return ",".join(caps)


def launch(state: dict, node: str) -> int:
    """Power a node on: its veth, its cgroups, and systemd-nspawn booting its overlay (not waited for)."""
    n = state["nodes"][node]
    root = node_dir(node) / "root"
    if not mounted_under(root):
        raise LabError(f"{node}'s disk {root} is not mounted")
    groups = make_cgroups(node)
    make_veth(state, node)
    shim = nic_shim(state, node)
    argv = [NSPAWN, "--boot", f"--directory={root}", f"--machine={NS}-{node}", f"--hostname={node}",
            "--register=no", "--keep-unit", "--resolv-conf=off", "--timezone=off", "--link-journal=no",
            "--console=read-only", "--private-network", f"--network-interface={n['nic']}",
            f"--capability={capabilities()}",
            f"--bind-ro={shim}:/etc/systemd/network/10-netplan-{state['interface']}.network.d",
            # The init's command line (a container's kernel command line): the image's fstab names
            # the root by a disk UUID for VMs; the overlay root has no such device to remount.
            "systemd.mask=systemd-remount-fs.service"]
    env = dict(os.environ, HAPX_CG_UNIFIED=str(groups["unified"]), HAPX_CG_SYSTEMD=str(groups.get("systemd", "")),
               HAPX_NETNS=f"/run/netns/{state['ns']}", TERM="dumb")  # a plain console log
    for var in ("NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID"):
        env.pop(var, None)
    logs().mkdir(parents=True, exist_ok=True)
    with open(logs() / f"{node}.console.log", "ab") as out:
        out.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} power on: {' '.join(argv)}\n".encode())
        out.flush()
        proc = subprocess.Popen(["sh", "-c", LAUNCH_SH, "sh", *argv], env=env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    n["pid"] = proc.pid
    n["started_at"] = time.time()
    return proc.pid


def nspawn_alive(state: dict, node: str) -> bool:
    """Whether the node's nspawn still runs (checked against its cgroup: a pid may be reused)."""
    pid = state.get("nodes", {}).get(node, {}).get("pid")
    if not pid_alive(pid):
        return False
    try:
        return f"/{NS}/{node}" in Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return False


# ---------------------------------------------------------------- backend operations

def up(keep_on_failure: bool = False, render: str | None = None, default_timers: bool = False) -> dict:
    """Image (cached), render, namespace and bridge, stand-ins, the containers, the plan's steps."""
    given = None
    if render is not None:
        # Keep a copy first: down() below removes DIR, and the render may live there.
        given = Path(tempfile.mkdtemp(prefix="ctlab-render-", dir=BUILD if BUILD.exists() else None))
        shutil.copytree(Path(render), given / "render", symlinks=True)
    try:
        down(quiet=True)
        timings: dict[str, float] = {}
        t_start = t0 = time.monotonic()
        build_image()
        lower = rootfs()
        timings["image (lab/build-image)"] = round(time.monotonic() - t0, 1)
        t_lab = t0 = time.monotonic()
        DIR.mkdir(parents=True, exist_ok=True)
        logs().mkdir(parents=True, exist_ok=True)
        if given is None:
            render_stack(DIR / "render", default_timers)
            timings["render (hapx.cli.render --stack containers)"] = round(time.monotonic() - t0, 1)
            rdir = DIR / "render"
        else:
            rdir = adopt_render(given / "render")
    finally:
        if given is not None:
            shutil.rmtree(given, ignore_errors=True)
    plan = read_plan(rdir)
    state: dict = {"backend": NAME, "ns": NS, "dir": str(DIR), "started_at": time.time(), "rootfs": str(lower),
                   # The name the nodes give their NIC (hapx:interface; netplan names its .network
                   # file after it). plan.json does not carry it yet: eth0 is the setting's default.
                   "interface": plan.get("interface", "eth0"),
                   "nodes": {node: {"mac": plan["macs"][node], "port": f"{PORT_PREFIX}{i}p",
                                    "nic": f"{PORT_PREFIX}{i}c"}
                             for i, node in enumerate(plan["nodes"], start=1)}}
    save(state)
    try:
        t0 = time.monotonic()
        state["net_ino"] = create_namespace(NS)
        save(state)
        make_bridge(state, plan)
        state["lab"] = facts(plan, rdir)
        start_dns(state)
        ensure_standins(state, state["lab"]["masters"], logs(), state["lab"]["dns_hosts"])
        save(state)
        timings["namespace, bridge, DNS, stand-ins"] = round(time.monotonic() - t0, 1)
        t0 = time.monotonic()
        for node in plan["nodes"]:
            make_disk(node, lower, rdir)
            launch(state, node)
        save(state)
        for node in plan["nodes"]:
            took = wait_ssh(state, node, t0, BOOT_TIMEOUT_S, still_booting=lambda n=node: nspawn_alive(state, n))
            timings[f"SSH answers on {node} (after power on)"] = round(took, 1)
        t0 = time.monotonic()
        run_steps(state, rdir, timings)
        timings["plan's steps"] = round(time.monotonic() - t0, 1)
        timings["VIP serves after the steps"] = round(wait_vip(state, VIP_TIMEOUT_S), 1)
    except BaseException as err:
        log(f"up failed: {err}" if isinstance(err, LabError) else f"up interrupted ({type(err).__name__})")
        if keep_on_failure and isinstance(err, LabError):
            log("--keep-on-failure: leaving the container lab up; `lab/labctl down` removes it")
            state["timings"] = timings
            save(state)
        else:
            log("cleaning up")
            down(quiet=True)
        raise
    timings["lab (everything after the image)"] = round(time.monotonic() - t_lab, 1)
    timings["total"] = round(time.monotonic() - t_start, 1)
    state["timings"] = timings
    save(state)
    return state


def check_node(state: dict, node: str) -> dict:
    if node not in state.get("nodes", {}):
        raise LabError(f"unknown node {node!r}; nodes: {', '.join(state.get('nodes', {}))}")
    return state["nodes"][node]


def kill(state: dict, node: str) -> None:
    """Power loss: SIGKILL of the container's init and of its nspawn, and its veth deleted at once
    (the node vanishes from the link); then every process left in its cgroup."""
    n = check_node(state, node)
    init = container_init(node)
    killed_at = time.time()
    for pid in (init, n.get("pid") if nspawn_alive(state, node) else None):
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    if link_exists(state["ns"], n["port"]):
        ip(state["ns"], "link", "delete", n["port"], check=False)
    kill_cgroups(lab_cgroups(node))
    log(f"{node} killed at {killed_at:.3f} (init {init or 'gone'}, nspawn {n.get('pid')}); "
        f"its port {n['port']} is gone")


def start(state: dict, node: str) -> None:
    """Power on again, on the same disk (the overlay keeps its state), the NIC with the same MAC;
    does not wait for the boot."""
    check_node(state, node)
    if running(state, node):
        raise LabError(f"{node} is running (lab/labctl kill {node} first)")
    pid = launch(state, node)
    save(state)
    log(f"{node} powered on (nspawn {pid}); console: {logs() / f'{node}.console.log'}")


def running(state: dict, node: str) -> bool:
    check_node(state, node)
    return nspawn_alive(state, node) and container_init(node) is not None


def ports(state: dict) -> dict[str, str]:
    """Each node's port on the lab bridge (the lab side of its veth)."""
    return {node: n["port"] for node, n in state["nodes"].items()}


def change_args(render: Path | None, timeout: float) -> list[str]:
    """labctl's arguments that apply a changed configuration: the plan's steps of its render."""
    return ["steps", "--render", str(render)]


def steps(state: dict, render: str | None = None) -> None:
    """Run every plan step again, or apply another render of the same nodes (made with
    `--secrets-from` the lab's render) and run its steps."""
    timings: dict[str, float] = {}
    if render is None:
        rdir = Path(state["lab"]["render"])
    else:
        new = Path(render)
        plan = read_plan(new)
        lab = state["lab"]
        problems = []
        if plan["nodes"] != lab["nodes"]:
            problems.append(f"nodes {plan['nodes']} are not the lab's {lab['nodes']}")
        if {n: m.lower() for n, m in plan["macs"].items()} != {n: state["nodes"][n]["mac"].lower()
                                                               for n in state["nodes"] if n in plan["macs"]}:
            problems.append("the nodes' MACs differ")
        if plan["vip"] != lab["vip"]:
            problems.append(f"VIP {plan['vip']} is not the lab's {lab['vip']}")
        if plan["sshUser"] != lab["ssh_user"]:
            problems.append(f"sshUser {plan['sshUser']} is not the lab's {lab['ssh_user']}")
        try:
            if (new / "secrets" / "id_ed25519").read_text() != Path(lab["key"]).read_text():
                problems.append("its SSH key is not the lab's")
        except OSError as err:
            problems.append(str(err))
        if known_hosts_text(plan) != Path(lab["known_hosts"]).read_text():
            problems.append("its host keys are not the lab's")
        if problems:
            raise LabError(f"{render} is not a render of the running lab's nodes ("
                           + "; ".join(problems) + "): render it with "
                           f"`python -m hapx.cli.render --stack ... --out DIR --secrets-from {lab['render']}`")
        rdir = adopt_render(new)
        state["lab"] = facts(plan, rdir)
        for name, address in state["lab"]["dns_hosts"].items():
            if state["dns"]["hosts"].get(name) != address:
                labdns.set_host(state, name, address)
        save(state)
        ensure_standins(state, state["lab"]["masters"], logs(), state["lab"]["dns_hosts"])
        save(state)
    t0 = time.monotonic()
    run_steps(state, rdir, timings)
    log(f"every step done in {time.monotonic() - t0:.1f}s")


def dns_host(state: dict, name: str, address: str) -> None:
    """Point a name at another address in the lab's DNS, with a stand-in answering there first
    (a master that moved)."""
    ports = sorted({int(m["port"]) for m in state["lab"]["masters"]})
    ensure_standins(state, [{"name": name, "address": address, "port": port} for port in ports], logs())
    labdns.set_host(state, name, address)
    changed_at = time.time()
    save(state)
    log(f"lab DNS: {name} -> {address} at {changed_at:.3f}")


def down(quiet: bool = False) -> int:
    """End every process of the lab (containers by their cgroups, then everything in the lab's
    namespace), unmount the overlays, delete the namespace (and with it the veths and the bridge),
    remove DIR. Idempotent; works after a crashed up."""
    state = load()
    ns = state.get("ns") or NS
    ended = kill_cgroups(lab_cgroups())
    if ns_exists(ns) or state.get("net_ino"):
        ended += remove_namespace(ns, state.get("net_ino"))
    # Veths only ever live in the lab's namespace; one left in this namespace would be a bug.
    res = run(["ip", "-o", "link", "show"], check=False)
    for line in res.stdout.splitlines():
        name = line.split(":")[1].strip().split("@")[0] if ":" in line else ""
        if name.startswith(PORT_PREFIX):
            run(["ip", "link", "delete", name], check=False)
    unmounted = unmount_all(DIR, source_prefix=f"{OVERLAY_TAG}{NS}:")
    for node in state.get("nodes", {}):
        # nspawn's propagation directory, left by a SIGKILLed nspawn.
        shutil.rmtree(f"/run/systemd/nspawn/propagate/{NS}-{node}", ignore_errors=True)
    if DIR.exists():
        if mounted_under(DIR):
            raise LabError(f"refusing to remove {DIR}: something is still mounted under it")
        shutil.rmtree(DIR)
    if not quiet:
        print(f"hapx container lab is down ({ended} processes ended, {unmounted} mounts removed)")
    return ended
