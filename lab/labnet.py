"""What both lab backends share: processes, the lab's network namespace, stand-in API servers,
SSH to the nodes, the plan's steps, and cutting the link between nodes. Standard library only.

Everything the lab runs lives inside one network namespace that it creates (`hapx-vm` for
the VM lab, `hapx-ct` for the container lab): nothing it sends ever leaves it.
"""

from __future__ import annotations

import concurrent.futures as cf
import ipaddress
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

LAB_DIR = Path(__file__).resolve().parent
PROJECT = LAB_DIR.parent
BUILD = PROJECT / "build" / "lab"
SSH_OPTS = ["-F", "/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=6", "-o", "LogLevel=ERROR"]
STEP_TIMEOUT_S = int(os.environ.get("HAPX_LAB_STEP_TIMEOUT", "900"))
STANDIN_TIMEOUT_S = 20
SSH_DIAL_S = 60  # how long a step's SSH connection is retried before the step fails


class LabError(Exception):
    """A lab failure with a message for the operator."""


def log(msg: str) -> None:
    """A progress line on stderr."""
    print(f"labctl: {msg}", file=sys.stderr, flush=True)


def run(cmd: list[str], timeout: float = 60, check: bool = True, **kw) -> subprocess.CompletedProcess:
    """Run a command with a bound; raise LabError with its output when it fails."""
    kw.setdefault("capture_output", True)
    try:
        res = subprocess.run(cmd, timeout=timeout, text=True, **kw)
    except subprocess.TimeoutExpired as err:
        raise LabError(f"timed out after {timeout}s: {shlex.join(cmd)}") from err
    if check and res.returncode != 0:
        raise LabError(f"failed ({res.returncode}): {shlex.join(cmd)}\n{res.stdout or ''}{res.stderr or ''}".rstrip())
    return res


# ---------------------------------------------------------------- state and files

def load_state(directory: Path) -> dict:
    """A lab's state (directory/state.json), or {} when it has none."""
    try:
        return json.loads((directory / "state.json").read_text())
    except (OSError, ValueError):
        return {}


def save_state(directory: Path, state: dict) -> None:
    """Write a lab's state atomically, so `down` works from any process at any moment."""
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / "state.tmp"
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(directory / "state.json")


def write_file(path: Path, text: str, mode: int) -> str:
    """Write text to path, created with its mode (a key is never readable by others); the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(path, mode)
    return str(path)


# ---------------------------------------------------------------- processes and namespaces

def ns_inode(path: str) -> int | None:
    """The inode of a namespace file (identifies the namespace), or None."""
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def pid_alive(pid: int | None) -> bool:
    """Whether pid runs (a zombie does not count)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def pids_in_namespaces(*inodes: int | None) -> list[int]:
    """Every process whose network or mount namespace is one of `inodes`."""
    wanted = {i for i in inodes if i}
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        if any(ns_inode(f"/proc/{entry.name}/ns/{kind}") in wanted for kind in ("net", "mnt")):
            found.append(int(entry.name))
    return found


def kill_pids(pids: list[int], grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL what is left; raise if anything survives."""
    pids = [p for p in pids if pid_alive(p)]
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        for p in pids:
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            pids = [p for p in pids if pid_alive(p)]
            if not pids:
                return
            time.sleep(0.2)
    if pids:
        raise LabError(f"processes survived SIGKILL: {pids}")


def ns_exists(ns: str) -> bool:
    """Whether the named network namespace exists."""
    return Path(f"/run/netns/{ns}").exists()


def create_namespace(ns: str) -> int:
    """A new network namespace with loopback up; its inode."""
    run(["ip", "netns", "add", ns])
    run(["ip", "-n", ns, "link", "set", "lo", "up"])
    ino = ns_inode(f"/run/netns/{ns}")
    assert ino is not None
    return ino


def remove_namespace(ns: str, *also_inodes: int | None) -> int:
    """End every process in the namespace (and in the other namespaces given), then delete it."""
    net_ino = ns_inode(f"/run/netns/{ns}") if ns_exists(ns) else None
    pids = pids_in_namespaces(net_ino, *also_inodes)
    if pids:
        kill_pids(pids)
    if ns_exists(ns):
        run(["ip", "netns", "delete", ns])
    return len(pids)


def in_ns(ns: str, argv: list[str]) -> list[str]:
    """argv, run inside the lab's network namespace."""
    return ["ip", "netns", "exec", ns, *argv]


# ---------------------------------------------------------------- stand-in API servers

def standin_address(master: dict, dns_hosts: dict[str, str]) -> str:
    """The address a master's stand-in answers on: its own, or what the lab's DNS serves for its name."""
    try:
        return str(ipaddress.IPv4Address(dns_hosts.get(master["address"], master["address"])))
    except ValueError:
        raise LabError(f"master {master['name']}: {master['address']} is neither an address nor a name "
                       "the stack's network.dnsHosts serves") from None


def ensure_standins(state: dict, masters: list[dict], logs: Path, dns_hosts: dict[str, str] | None = None) -> None:
    """Stand-in API servers for every master: each address on the namespace's loopback (the
    nodes reach it through their gateway, or by ARP inside their subnet), one responder on
    every address, and a certificate for them. Idempotent: new masters are added."""
    ns = state["ns"]
    have = run(["ip", "-n", ns, "-4", "-o", "addr", "show", "dev", "lo"]).stdout
    masters = [dict(m, address=standin_address(m, dns_hosts or {})) for m in masters]
    for m in masters:
        if f" {m['address']}/32 " not in have:
            run(["ip", "-n", ns, "addr", "add", f"{m['address']}/32", "dev", "lo"])
    ports = sorted({int(m["port"]) for m in masters})
    tls = Path(state["dir"]) / "tls"
    if not (tls / "cert.pem").exists():
        tls.mkdir(parents=True, exist_ok=True)
        run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-days", "7", "-subj", "/CN=hapx-lab-apiserver",
             "-keyout", str(tls / "key.pem"), "-out", str(tls / "cert.pem")])
    running = state.setdefault("standins", {})
    for port in ports:
        if pid_alive(running.get(str(port))):
            continue
        with open(logs / "responder.out", "ab") as out:
            proc = subprocess.Popen(
                in_ns(ns, [sys.executable, str(LAB_DIR / "responder.py"), "--cert", str(tls / "cert.pem"),
                           "--key", str(tls / "key.pem"), "--port", str(port)]),
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        running[str(port)] = proc.pid
    for m in masters:
        deadline = time.monotonic() + STANDIN_TIMEOUT_S
        while True:
            res = run(in_ns(ns, [sys.executable, str(LAB_DIR / "probe.py"), "once", m["address"], str(m["port"]),
                                 "--path", "/readyz", "--timeout", "2"]), timeout=10, check=False)
            if res.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise LabError(f"stand-in {m['name']} at {m['address']}:{m['port']} does not answer: "
                               f"{res.stdout.strip()} (see {logs / 'responder.out'})")
            time.sleep(0.3)


# ---------------------------------------------------------------- SSH and the plan's steps

def ssh_argv(state: dict, node: str, connect_timeout: int = 15) -> list[str]:
    """The ssh command line for a node, from inside the lab's namespace, with its pinned key."""
    lab = state["lab"]
    if node not in lab["nodes"]:
        raise LabError(f"unknown node {node!r}; nodes: {', '.join(lab['nodes'])}")
    # ssh keeps the first value given for an option: ConnectTimeout appears once.
    return in_ns(state["ns"], ["ssh", "-i", lab["key"], "-o", f"UserKnownHostsFile={lab['known_hosts']}",
                               "-o", f"ConnectTimeout={connect_timeout}", *SSH_OPTS,
                               f"{lab['ssh_user']}@{lab['nodes'][node]}"])


def ssh(state: dict, node: str, command: str, timeout: float = 60, check: bool = True,
        stdin_file: str | None = None) -> subprocess.CompletedProcess:
    """Run a shell command line on a node."""
    argv = ssh_argv(state, node) + ["--", command]
    if stdin_file:
        with open(stdin_file, "rb") as f:
            return run(argv, timeout=timeout, check=check, stdin=f)
    return run(argv, timeout=timeout, check=check, stdin=subprocess.DEVNULL)


def wait_ssh(state: dict, node: str, since: float, timeout: float, still_booting=lambda: True) -> float:
    """Bounded wait until the node answers SSH with its pinned host key; seconds since `since`."""
    deadline = since + timeout
    last = ""
    while time.monotonic() < deadline:
        res = run(ssh_argv(state, node, connect_timeout=3) + ["--", "true"], timeout=30, check=False,
                  stdin=subprocess.DEVNULL)
        if res.returncode == 0:
            return time.monotonic() - since
        last = (res.stderr or res.stdout).strip()
        if not still_booting():
            raise LabError(f"{node} stopped while waiting for SSH (last: {last})")
        time.sleep(0.5)
    raise LabError(f"{node} did not answer SSH within {timeout}s (last: {last})")


def run_steps(state: dict, render: Path, timings: dict | None = None) -> None:
    """The plan's steps over SSH, each as soon as the steps in its `after` are done (as Pulumi runs them)."""
    steps = json.loads((render / "plan.json").read_text())["steps"]
    ids = {s["id"] for s in steps}
    for s in steps:
        unknown = set(s.get("after", [])) - ids
        if unknown:
            raise LabError(f"step {s['id']} waits for unknown steps {sorted(unknown)}")
    done: set[str] = set()
    pending = list(steps)

    def one(step: dict) -> tuple[float, str]:
        stdin = str(render / step["stdin"]) if step.get("stdin") else None
        t0 = time.monotonic()
        while True:
            res = ssh(state, step["node"], step["command"], timeout=STEP_TIMEOUT_S, check=False, stdin_file=stdin)
            # 255 with no output: ssh could not connect (sshd restarting at the end of a boot),
            # the step never ran. Dial again for a while, as pulumi-command does.
            if res.returncode != 255 or res.stdout or time.monotonic() - t0 > SSH_DIAL_S:
                break
            time.sleep(1)
        took = time.monotonic() - t0
        if res.returncode != 0:
            raise LabError(f"step {step['id']} on {step['node']} failed (exit {res.returncode}) after "
                           f"{took:.1f}s:\n{(res.stdout + res.stderr).strip()}")
        return took, res.stdout.strip()

    pool = cf.ThreadPoolExecutor(max_workers=max(2, len(state["lab"]["nodes"])))
    try:
        running: dict[cf.Future, dict] = {}
        while pending or running:
            for s in [s for s in pending if set(s.get("after", [])) <= done]:
                pending.remove(s)
                log(f"step {s['id']} on {s['node']} ...")
                running[pool.submit(one, s)] = s
            if not running:
                raise LabError(f"steps can never run (cycle?): {[s['id'] for s in pending]}")
            finished, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            for fut in finished:
                s = running.pop(fut)
                took, out = fut.result()
                done.add(s["id"])
                log(f"step {s['id']} done in {took:.1f}s: {out.splitlines()[-1] if out else ''}")
                if timings is not None:
                    timings[f"step {s['id']}"] = round(took, 1)
    finally:
        # On failure do not wait for the other steps: their SSH clients run in the lab's
        # namespace and end with it (or with their own timeouts).
        pool.shutdown(wait=False, cancel_futures=True)


def wait_vip(state: dict, timeout: float) -> float:
    """Bounded wait until HTTPS through the VIP's API frontend reaches a stand-in; seconds taken."""
    lab = state["lab"]
    t0 = time.monotonic()
    while True:
        res = run(in_ns(state["ns"], [sys.executable, str(LAB_DIR / "probe.py"), "once", lab["vip"],
                                      str(lab["api_port"]), "--timeout", "3", "--connect-timeout", "1"]),
                  timeout=20, check=False)
        if res.returncode == 0:
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise LabError(f"the VIP {lab['vip']}:{lab['api_port']} does not serve within {timeout}s: "
                           f"{res.stdout.strip()}")
        time.sleep(0.5)


def isolate_ports(ns: str, ports: list[str], on: bool) -> None:
    """Cut (on) or heal the link between bridge ports: isolated ports forward only to the
    bridge itself (the gateway, the stand-ins, the clients), never to each other."""
    for port in ports:
        run(["bridge", "-n", ns, "link", "set", "dev", port, "isolated", "on" if on else "off"])
