"""Drive a running hapx lab from Python: the helpers the lab tests and lab/bench-failover share.

Everything goes through lab/labctl, so the client traffic runs inside the lab's network
namespace (`labctl client`), SSH to the nodes too (`labctl exec`), and virsh talks to the
lab's own libvirtd (`labctl virsh`). Standard library only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

LAB_DIR = Path(__file__).resolve().parent
PROJECT = LAB_DIR.parent
LABCTL = LAB_DIR / "labctl"
PROBE = LAB_DIR / "probe.py"
BUILD = PROJECT / "build" / "lab"
# One lab per network namespace; a lab in another namespace ($HAPX_LAB_NS) keeps its own
# state and logs beside the default lab's.
NS = os.environ.get("HAPX_LAB_NS", "hapx-lab")
_SUFFIX = "" if NS == "hapx-lab" else f"-{NS}"
STATE = Path(os.environ.get("HAPX_LAB_STATE", BUILD / f"state{_SUFFIX}"))
STATE_FILE = STATE / "lab.json"
LOGS = BUILD / f"logs{_SUFFIX}"
CACHE = BUILD / f"cache{_SUFFIX}"


class LabCommandError(RuntimeError):
    """A lab command failed; the message carries its output."""


def labctl(*args: str, timeout: float = 120, check: bool = True,
           input: str | None = None) -> subprocess.CompletedProcess:
    """Run lab/labctl with a bound and return its CompletedProcess (text)."""
    cmd = [sys.executable, str(LABCTL), *args]
    try:
        res = subprocess.run(cmd, timeout=timeout, text=True, capture_output=True, input=input,
                             stdin=None if input is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as err:
        raise LabCommandError(f"timed out after {timeout}s: labctl {' '.join(args)}") from err
    if check and res.returncode != 0:
        raise LabCommandError(f"labctl {' '.join(args)} exited {res.returncode}:\n{res.stdout}{res.stderr}")
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


class Lab:
    """A lab that `labctl up` brought up (reads build/lab/state/lab.json)."""

    def __init__(self) -> None:
        state = json.loads(STATE_FILE.read_text())
        self.state = state
        self.ns: str = state["ns"]
        lab = state["lab"]
        self.render = Path(lab["render"])
        self.vip: str = lab["vip"]
        self.nodes: dict[str, str] = {n: v["ip"] for n, v in lab["nodes"].items()}
        self.stats_user: str = lab["stats_user"]
        self.stats_port: int = lab["stats_port"]
        self.api_port: int = lab["api_port"]
        self.masters: list[dict] = lab["masters"]

    # -- plumbing
    def exec(self, node: str, command: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
        return labctl("exec", node, "--", command, timeout=timeout, check=check)

    def client(self, *argv: str, timeout: float = 30, check: bool = False) -> subprocess.CompletedProcess:
        return labctl("client", "--", *argv, timeout=timeout, check=check)

    def virsh(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return labctl("virsh", *argv, timeout=timeout)

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
        res = labctl("vip-node", *(["--ask", ask] if ask else []), timeout=90, check=False)
        if res.returncode not in (0, 3):  # 3: the VIP runs nowhere
            raise LabCommandError(f"labctl vip-node exited {res.returncode}:\n{res.stdout}{res.stderr}")
        return res.stdout.strip() if res.returncode == 0 else None

    def all_online(self, ask: str) -> bool:
        st = self.crm_status(ask)
        return bool(st["online"]) and all(st["online"].get(n) for n in self.nodes)

    def settled(self, ask: str) -> bool:
        """Every node online, HAProxy started on every node and the VIP on one (as `ask` sees it)."""
        st = self.crm_status(ask)
        haproxy, vip = st["resources"].get("haproxy", {}), st["resources"].get("vip", {})
        return (all(st["online"].get(n) for n in self.nodes)
                and haproxy.get("role") == "Started" and sorted(haproxy.get("nodes", [])) == sorted(self.nodes)
                and vip.get("role") == "Started" and len(vip.get("nodes", [])) == 1)

    def holds_vip(self, node: str) -> bool:
        """Whether the VIP address is on the node's interface (the kernel's view, not Pacemaker's)."""
        out = self.exec(node, f"ip -4 -o addr show to {self.vip}/32", timeout=30).stdout
        return f" {self.vip}/" in out

    def https(self, path: str = "/healthz", timeout: float = 5) -> subprocess.CompletedProcess:
        """One HTTPS GET through the VIP's API frontend (see probe.py once)."""
        return self.client(sys.executable, str(PROBE), "once", self.vip, str(self.api_port), "--path", path,
                           "--connect-timeout", str(timeout), "--timeout", str(timeout), timeout=timeout + 20)


class Poller:
    """`probe.py watch` on the VIP, inside the lab's namespace, until stop()."""

    def __init__(self, lab: Lab, port: int | None = None, interval: float = 0.1, connect_timeout: float = 0.3,
                 timeout: float = 1.0, max_seconds: float = 900, mode: str = "https") -> None:
        self.events: list[dict] = []
        self._cv = threading.Condition()
        self.proc = subprocess.Popen(
            [sys.executable, str(LABCTL), "client", "--", sys.executable, str(PROBE), "watch", lab.vip, str(port or lab.api_port),
             "--interval", str(interval), "--connect-timeout", str(connect_timeout), "--timeout", str(timeout),
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
