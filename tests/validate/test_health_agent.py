"""The backend-health agent, agents/haproxy-health (ocf:hapx:haproxy-health), run for real against a
real HAProxy in a throwaway network namespace: it counts the backend's servers UP on HAProxy's
admin socket and publishes count x multiplier with attrd_updater (a stand-in on PATH that records
its arguments: no cluster runs here), a new count only after it has held for hold_s."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.validate.tools.agents import HAPX_AGENTS
from tests.validate.tools.netns import netns
from tests.validate.tools.procs import BASE_PATH, ToolResult, run, run_ok
from tests.validate.tools.shell import check_shell

AGENT = HAPX_AGENTS / "haproxy-health"
BACKEND = "kubernetes-masters"
SERVERS = ("m1", "m2", "m3")
PORTS = (9101, 9102, 9103)
OCF_NOT_RUNNING = 7
OCF_ERR_CONFIGURED = 6
HOLD_S = 2


@pytest.fixture
def haproxy(tmp_path):
    """HAProxy in its own namespace: a backend of three servers checked every 200 ms, each a
    frontend of the same HAProxy on the namespace's loopback (so each is UP), and an admin socket."""
    sock = tmp_path / "admin.sock"
    listeners = "".join(f"frontend f{p}\n    bind 127.0.0.1:{p}\n    default_backend sink\n" for p in PORTS)
    servers = "".join(f"    server {s} 127.0.0.1:{p} check inter 200 fall 1 rise 1\n" for s, p in zip(SERVERS, PORTS, strict=True))
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(f"global\n    stats socket {sock} mode 600 level admin\n"
                   "defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n"
                   f"{listeners}backend sink\n    server none 127.0.0.1:9\nbackend {BACKEND}\n{servers}")
    with netns() as ns:
        proc = subprocess.Popen(["ip", "netns", "exec", ns, "haproxy", "-db", "-f", str(cfg)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while not sock.exists():
                assert proc.poll() is None and time.monotonic() < deadline, "HAProxy did not start"
                time.sleep(0.05)
            yield ns, sock, proc
        finally:
            proc.kill()
            proc.wait()


@pytest.fixture
def attrd(tmp_path):
    """A stand-in attrd_updater first on PATH; returns the file its calls are recorded in."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "attrd.log"
    stub = bin_dir / "attrd_updater"
    stub.write_text(f'#!/bin/sh\necho "$*" >>{log}\n')
    stub.chmod(0o755)
    return log


def agent(ns: str, sock: Path, tmp_path, action: str, interval_ms: int = 2000, **params: str) -> ToolResult:
    env = {"PATH": f"{tmp_path / 'bin'}:{BASE_PATH}", "OCF_ROOT": "/usr/lib/ocf",
           "HA_RSCTMP": str(tmp_path), "OCF_RESKEY_CRM_meta_interval": str(interval_ms),
           **{f"OCF_RESKEY_{k}": v for k, v in {"name": "masters-up", "backend": BACKEND, "socket": str(sock),
                                                 "multiplier": "100", "hold_s": str(HOLD_S), "dampen_s": "6",
                                                 **params}.items()}}
    return run(["ip", "netns", "exec", ns, str(AGENT), action], env=env)


def admin(ns: str, sock: Path, command: str) -> None:
    run_ok(["ip", "netns", "exec", ns, "curl", "-s", "--max-time", "5", "--unix-socket", str(sock),
            "telnet://localhost"], input=command + "\n")


def published(log: Path) -> list[str]:
    """The values the agent set, in order (`-B VALUE`), and `deleted` for a `-D`."""
    calls = log.read_text().splitlines() if log.exists() else []
    return ["deleted" if "-D" in c.split() else c.split()[c.split().index("-B") + 1] for c in calls]


def test_agent_passes_sh_n_and_shellcheck():
    """It runs under /bin/sh (dash): no bashisms."""
    assert AGENT.read_text().startswith("#!/bin/sh\n") and os.access(AGENT, os.X_OK)
    check_shell(AGENT, shell="sh")


def test_meta_data_is_valid_against_the_ra_api_dtd(tmp_path):
    meta = run_ok([str(AGENT), "meta-data"]).stdout
    (tmp_path / "meta.xml").write_text(meta)
    run_ok(["xmllint", "--noout", "--dtdvalid", "/usr/share/resource-agents/ra-api-1.dtd",
            str(tmp_path / "meta.xml")])


def test_counts_servers_up_and_publishes_a_change_only_after_it_held(haproxy, attrd, tmp_path):
    """start publishes at once (3 x 100, with the dampening); a server in maintenance is not
    UP, but the new count is published only after HOLD_S of monitors reading it; a server that
    goes away and comes back between two monitors' hold publishes nothing; stop deletes."""
    ns, sock, _ = haproxy
    time.sleep(1)  # a few checks
    assert agent(ns, sock, tmp_path, "start").returncode == 0
    assert published(attrd) == ["300"]
    assert "-d 6s" in attrd.read_text()
    admin(ns, sock, f"disable server {BACKEND}/m1")
    assert agent(ns, sock, tmp_path, "monitor").returncode == 0
    assert published(attrd)[-1] == "300", "a new count published before it held"
    time.sleep(HOLD_S + 1.2)
    assert agent(ns, sock, tmp_path, "monitor").returncode == 0
    assert published(attrd)[-1] == "200"
    # Flapping: back UP, one monitor, down again before the hold: nothing changes.
    admin(ns, sock, f"enable server {BACKEND}/m1")
    time.sleep(1)
    agent(ns, sock, tmp_path, "monitor")
    admin(ns, sock, f"disable server {BACKEND}/m1")
    time.sleep(HOLD_S + 1.2)
    agent(ns, sock, tmp_path, "monitor")
    assert set(published(attrd)[2:]) == {"200"}, published(attrd)
    assert agent(ns, sock, tmp_path, "stop").returncode == 0
    assert published(attrd)[-1] == "deleted"
    assert agent(ns, sock, tmp_path, "monitor").returncode == OCF_NOT_RUNNING


def test_a_haproxy_that_does_not_answer_counts_as_no_server_up(haproxy, attrd, tmp_path):
    """HAProxy gone: after the hold, the attribute is 0, and the reason is in the log."""
    ns, sock, proc = haproxy
    time.sleep(1)
    agent(ns, sock, tmp_path, "start")
    proc.kill()
    proc.wait()
    first = agent(ns, sock, tmp_path, "monitor")
    assert first.returncode == 0 and "HAProxy does not answer" in first.output, first.describe()
    time.sleep(HOLD_S + 1.2)
    agent(ns, sock, tmp_path, "monitor")
    assert published(attrd)[-1] == "0", published(attrd)


def test_a_probe_only_reports_whether_it_runs(haproxy, attrd, tmp_path):
    ns, sock, _ = haproxy
    assert agent(ns, sock, tmp_path, "monitor", interval_ms=0).returncode == OCF_NOT_RUNNING
    agent(ns, sock, tmp_path, "start")
    calls = published(attrd)
    assert agent(ns, sock, tmp_path, "monitor", interval_ms=0).returncode == 0
    assert published(attrd) == calls, "a probe published"


@pytest.mark.parametrize("params, problem", [
    ({"name": ""}, "parameter name is required"),
    ({"name": "a b"}, "is not a node attribute name"),
    ({"socket": "relative.sock"}, "is not an absolute path"),
    ({"multiplier": "x"}, "must be whole numbers"),
    ({"hold_s": "-1"}, "must be whole numbers"),
])
def test_bad_parameters_are_named(haproxy, attrd, tmp_path, params, problem):
    ns, sock, _ = haproxy
    result = agent(ns, sock, tmp_path, "start", **params)
    assert result.returncode == OCF_ERR_CONFIGURED and problem in result.output, result.describe()
