"""Drive a running hapx lab from Python: the helpers the lab tests and the benchmarks share.

Everything goes through lab/labctl, so client traffic runs inside the lab's network namespace
(`labctl client`), SSH to the nodes too (`labctl exec`), and a node's power is the backend's
(`labctl kill|start`: a VM destroyed with virsh, or a container's init killed). Standard library only.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from hapx.crm import CRM  # standard library only
from lab import labnet
from lab.backend import backend

LAB_DIR = Path(__file__).resolve().parent
PROJECT = LAB_DIR.parent
LABCTL = LAB_DIR / "labctl"
PROBE = LAB_DIR / "probe.py"
BUILD = PROJECT / "build" / "lab"
VENV_PYTHON = PROJECT / ".venv" / "bin" / "python"  # hapx.cli.render needs the project's requirements
STEPS_TIMEOUT_S = 900  # the plan's steps applied to a running lab (`labctl steps --render`)
LINGER_S = 2.0         # the client keeps polling this long after the steps: a late blip still counts


class LabCommandError(RuntimeError):
    """A lab command failed; the message carries its output."""


def labctl(backend: str, *args: str, timeout: float = 120, check: bool = True,
           input: str | None = None) -> subprocess.CompletedProcess:
    """Run `lab/labctl --backend BACKEND ARGS` with a bound and return its CompletedProcess (text)."""
    cmd = [sys.executable, str(LABCTL), "--backend", backend, *args]
    try:
        res = subprocess.run(cmd, timeout=timeout, text=True, capture_output=True, input=input,
                             stdin=None if input is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as err:
        raise LabCommandError(f"timed out after {timeout}s: labctl --backend {backend} {' '.join(args)}") from err
    if check and res.returncode != 0:
        raise LabCommandError(f"labctl --backend {backend} {' '.join(args)} exited {res.returncode}:\n"
                              f"{res.stdout}{res.stderr}")
    return res


def wait_until(what: str, fn, timeout: float, interval: float = 2.0):
    """Call fn until it returns a truthy value; raise TimeoutError naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = fn()
        except LabCommandError as err:
            last = err
        if last and not isinstance(last, Exception):
            return last
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not within {timeout}s (last: {last})")
        time.sleep(interval)


def state_file(backend: str) -> Path:
    """Where a backend keeps its state (build/lab/BACKEND/state.json)."""
    return BUILD / backend / "state.json"


class Lab:
    """A lab that `labctl --backend BACKEND up` brought up."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        state = json.loads(state_file(backend).read_text())
        self.state = state
        self.ns: str = state["ns"]
        lab = state["lab"]
        self.vip: str = lab["vip"]
        self.nodes: dict[str, str] = dict(lab["nodes"])
        self.stats_user: str = lab["stats_user"]
        self.stats_password: str = lab["stats_password"]
        self.stats_port: int = lab["stats_port"]
        self.api_port: int = lab["api_port"]
        self.masters: list[dict] = lab["masters"]
        self.render: Path | None = Path(lab["render"]) if lab.get("render") else None
        self.tls_cert = Path(state["dir"]) / "tls" / "cert.pem"

    # -- plumbing
    def ctl(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        return labctl(self.backend, *args, timeout=timeout, check=check)

    def exec(self, node: str, command: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
        return self.ctl("exec", node, "--", command, timeout=timeout, check=check)

    def client(self, *argv: str, timeout: float = 30, check: bool = False) -> subprocess.CompletedProcess:
        return self.ctl("client", "--", *argv, timeout=timeout, check=check)

    def kill(self, node: str) -> float | None:
        """Power loss of a node; the wall-clock time of the kill as the backend reports it."""
        res = self.ctl("kill", node, timeout=120)
        m = re.search(r"killed at (\d+\.\d+)", res.stderr or "")
        return float(m.group(1)) if m else None

    def start(self, node: str) -> None:
        self.ctl("start", node, timeout=120)

    def other(self, node: str) -> str:
        return next(n for n in self.nodes if n != node)

    # -- cluster views
    def crm_status(self, node: str, timeout: float = 30) -> dict:
        """Nodes online and where each resource runs, as `node` sees it (crm_mon's XML)."""
        xml = self.exec(node, "sudo crm_mon --one-shot --inactive --output-as=xml", timeout=timeout).stdout
        root = ET.fromstring(xml)
        online = {n.get("name"): n.get("online") == "true" for n in root.iter("node") if n.get("online")}
        # A clone lists one <resource> per instance, all with the primitive's id: merge them.
        resources: dict[str, dict] = {}
        for r in root.iter("resource"):
            entry = resources.setdefault(r.get("id"), {"roles": [], "nodes": []})
            entry["roles"].append(r.get("role"))
            entry["nodes"] += [n.get("name") for n in r.findall("node")]
        for entry in resources.values():
            entry["role"] = entry["roles"][0] if len(set(entry["roles"])) == 1 else "mixed"
        dc = root.find("./summary/current_dc")
        return {"online": online, "resources": resources,
                "quorum": dc is not None and dc.get("with_quorum") == "true", "xml": xml}

    def vip_node(self, ask: str | None = None) -> str | None:
        """The node that runs the VIP resource, asked of `ask` (or of any node that answers)."""
        res = self.ctl("vip-node", *(["--ask", ask] if ask else []), timeout=90, check=False)
        if res.returncode not in (0, 3):  # 3: the VIP runs nowhere
            raise LabCommandError(f"labctl vip-node exited {res.returncode}:\n{res.stdout}{res.stderr}")
        return res.stdout.strip() if res.returncode == 0 else None

    def settled(self, ask: str) -> bool:
        """Every node online, HAProxy started on every node and the VIP on one (as `ask` sees it)."""
        st = self.crm_status(ask)
        haproxy, vip = st["resources"].get(CRM.haproxy, {}), st["resources"].get(CRM.vip, {})
        return (all(st["online"].get(n) for n in self.nodes)
                and haproxy.get("role") == "Started" and sorted(haproxy.get("nodes", [])) == sorted(self.nodes)
                and vip.get("role") == "Started" and len(vip.get("nodes", [])) == 1)

    def health_counts(self, ask: str) -> dict[str, int]:
        """Each node's published backend-health score (the masters its HAProxy sees UP, times the
        multiplier), as `ask` sees it; a node that has published none is missing."""
        xml = self.exec(ask, "sudo crm_mon --one-shot --show-node-attributes --output-as=xml", timeout=30).stdout
        return {n.get("name"): int(a.get("value"))
                for n in ET.fromstring(xml).iterfind("./node_attributes/node")
                for a in n.iterfind("attribute") if a.get("name") == CRM.masters_up_attribute}

    def holds_vip(self, node: str) -> bool:
        """Whether the VIP address is on the node's interface (the kernel's view, not Pacemaker's)."""
        out = self.exec(node, f"ip -4 -o addr show to {self.vip}/32", timeout=30).stdout
        return f" {self.vip}/" in out

    def vip_holders(self) -> list[str]:
        """The nodes whose interface carries the VIP address, asked of each node."""
        return sorted(n for n in self.nodes if self.holds_vip(n))

    def https(self, path: str = "/healthz", timeout: float = 5) -> subprocess.CompletedProcess:
        """One HTTPS GET through the VIP's API frontend (see probe.py once)."""
        return self.client(sys.executable, str(PROBE), "once", self.vip, str(self.api_port), "--path", path,
                           "--connect-timeout", str(timeout), "--timeout", str(timeout), timeout=timeout + 20)

    def stats_csv(self) -> str:
        """HAProxy's stats as CSV, through the VIP, with the stack's credentials."""
        url = f"http://{self.vip}:{self.stats_port}/;csv"
        return self.client("curl", "-s", "--max-time", "10", "-u", f"{self.stats_user}:{self.stats_password}",
                           url).stdout

    def generated_outputs(self) -> dict:
        """The outputs a stack generates (nodeHostKeys, sshPrivateKey, statsPassword), as the lab's
        render holds them: with hapx.outputs.plain_outputs, what `pulumi stack output --json
        --show-secrets` prints for a stack."""
        plan = json.loads((self.render / "plan.json").read_text())
        return {"nodeHostKeys": dict(plan["hostKeys"]), "sshPrivateKey": Path(self.state["lab"]["key"]).read_text(),
                "statsPassword": self.stats_password}

    def master_power(self, name: str, on: bool) -> None:
        """Stop (or start again) one stand-in master: its address leaves (or rejoins) the lab
        namespace's loopback, so HAProxy's checks of it fail (or pass) while the others answer."""
        master = next(m for m in self.masters if m["name"] == name)
        address = labnet.standin_address(master, self.state["lab"].get("dns_hosts", {}))
        self.ctl("client", "--", "ip", "addr", "replace" if on else "del", f"{address}/32", "dev", "lo")

    def membership_changes(self) -> dict[str, int]:
        """How many memberships corosync has formed on each node since it started."""
        cmd = "sudo journalctl -u corosync -o cat --no-pager | grep -c 'A new membership' || true"
        return {n: int(self.exec(n, cmd).stdout.strip() or 0) for n in self.nodes}


def burners(count: int | None = None) -> list[subprocess.Popen]:
    """Deliberate host load: one CPU burner per core (or `count`), at the nodes' own priority,
    as a busy hypervisor would be; kill each when done (stop_burners)."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count or os.cpu_count() or 1)]


def stop_burners(procs: list[subprocess.Popen]) -> None:
    """Stop what burners() started."""
    for proc in procs:
        proc.kill()
        proc.wait()


def served_throughout(summary: dict, max_blip_s: float) -> bool:
    """The VIP took every connection a poller tried, and no run of failed requests lasted
    longer than max_blip_s: a planned move of the VIP breaks the requests in flight at that
    instant (their connections reach the new node), nothing more."""
    return (summary["refused"] == 0 and not summary["still_down"]
            and all(o["outage_s"] <= max_blip_s for o in summary["outages"]))


class Poller:
    """`probe.py watch` on the VIP, inside the lab's namespace, until stop()."""

    def __init__(self, lab: Lab, port: int | None = None, interval: float = 0.1, connect_timeout: float = 0.3,
                 timeout: float = 1.0, max_seconds: float = 900, mode: str = "https") -> None:
        self.events: list[dict] = []
        self._cv = threading.Condition()
        self.proc = subprocess.Popen(
            [sys.executable, str(LABCTL), "--backend", lab.backend, "client", "--", sys.executable, str(PROBE),
             "watch", lab.vip, str(port or lab.api_port), "--interval", str(interval),
             "--connect-timeout", str(connect_timeout), "--timeout", str(timeout),
             "--max-seconds", str(max_seconds), "--mode", mode],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            with self._cv:
                self.events.append(ev)
                self._cv.notify_all()
        with self._cv:
            self.events.append({"event": "eof"})
            self._cv.notify_all()

    def wait_for(self, event: str, timeout: float, after: int = 0) -> dict:
        """The first `event` at index >= after; TimeoutError after `timeout` s."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                for ev in self.events[after:]:
                    if ev["event"] == event:
                        return ev
                    if ev["event"] == "eof" and event != "eof":
                        raise RuntimeError(f"the poller ended before '{event}': {self.events}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no '{event}' from the VIP poller within {timeout}s")
                self._cv.wait(left)

    def mark(self) -> int:
        with self._cv:
            return len(self.events)

    def since(self, mark: int, *kinds: str) -> list[dict]:
        """The events of the given kinds since `mark`."""
        with self._cv:
            return [ev for ev in self.events[mark:] if ev["event"] in kinds]

    def stop(self, timeout: float = 15) -> dict:
        """Close the poller's stdin and return its summary."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            return self.wait_for("summary", timeout)
        finally:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def render_with_secrets(lab: Lab, stack: str, stack_file: Path, out: Path) -> Path:
    """stack_file rendered as `stack` into out with the running lab's secrets (`hapx.cli.render
    --secrets-from`), ready for `labctl steps --render`."""
    subprocess.run([str(VENV_PYTHON), "-m", "hapx.cli.render", "--stack", stack, "--config", str(stack_file),
                    "--out", str(out), "--secrets-from", str(lab.render)], cwd=PROJECT, check=True, timeout=120)
    return out


def client_poller(lab: Lab, interval: float, client_timeout: float = 1.0, max_seconds: float = 900) -> Poller:
    """A client polling the VIP every interval seconds that waits client_timeout for an answer."""
    # A patient client (more than a second) waits as long to connect as for the answer.
    connect_timeout = client_timeout if client_timeout > 1 else 0.3
    return Poller(lab, interval=interval, connect_timeout=connect_timeout, timeout=client_timeout,
                  max_seconds=max_seconds)


def apply_under_poll(lab: Lab, render: Path | None, interval: float,
                     client_timeout: float = 1.0) -> tuple[subprocess.CompletedProcess, dict]:
    """Apply a change while a client polls the VIP every interval seconds: the containers lab
    applies a render with the plan's steps; the VM lab runs `pulumi up` of its stack file (the
    change already written there; render None). The result and the poller's summary."""
    poller = client_poller(lab, interval, client_timeout, max_seconds=STEPS_TIMEOUT_S + 420)
    command = backend(lab.backend).change_args(render, STEPS_TIMEOUT_S)
    try:
        poller.wait_for("ready", timeout=60)
        res = labctl(lab.backend, *command, timeout=STEPS_TIMEOUT_S + 300, check=False)
        time.sleep(LINGER_S)
    finally:
        summary = poller.stop()
    return res, summary
