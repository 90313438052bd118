"""Lab client probes, run INSIDE the lab's network namespace (`labctl client -- python3 lab/probe.py ...`).

    probe.py once  HOST PORT [--path /healthz]      one HTTPS GET through the VIP; exit 0 on 200
    probe.py watch HOST PORT [--interval 0.1 ...]   poll until stdin closes, then print a summary

`watch` prints one JSON object per line: {"event": "ready"} after the first good probe, then
{"event": "down", ...} / {"event": "up", "outage_s": ...} on each change, and finally
{"event": "summary", "outages": [...], ...} once its stdin reaches EOF (or --max-seconds pass).
Each failure is counted ("failed"); those where the VIP did not take the connection also as
"refused" (events {"event": "refused"}, and per outage), those broken after connecting as
"broken": a moving address costs that to the requests in flight at the instant it moves.
A probe starts every --interval seconds whether or not the last one has answered; an outage
lasts from the start of the last good probe before a failure to the start of the first good
probe after it, so it is measured to the interval, not to a probe's timeout.
"""

from __future__ import annotations

import argparse
import collections
import functools
import hashlib
import json
import socket
import ssl
import sys
import threading
import time

# How a request failed. Not connected: nothing answered the VIP, or it refused (the service
# was not there). Broken after connecting: most often a request in flight at the instant the
# address moved (its connection, made to the old node, reaches the new one and is reset), as
# with any moved address; it does not mean the service was down.
REFUSED = "not connected: "
BROKEN = "broken after connecting: "
FAILURE_SAMPLES = 40  # the first failures, with their times and details, go into the summary


@functools.cache
def client_context() -> ssl.SSLContext:
    """One TLS client context for every request: building one per request (loading the CA
    store) cost more CPU than the request, taken from the nodes under test."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def https_get(host: str, port: int, path: str, connect_timeout: float, timeout: float) -> tuple[bool, str]:
    """One HTTPS GET (no certificate check: the stand-ins are self-signed); (ok, response).

    The response text starts with a line `peer-certificate-sha256: HEX`: HAProxy passes TLS
    through, so this is the certificate of the stand-in API server that answered."""
    ctx = client_context()
    deadline = time.monotonic() + timeout
    try:
        raw = socket.create_connection((host, port), timeout=connect_timeout)
    except OSError as err:
        return (False, f"{REFUSED}{type(err).__name__}: {err}")
    try:
        with raw:
            raw.settimeout(max(0.05, deadline - time.monotonic()))
            with ctx.wrap_socket(raw, server_hostname=host) as tls:
                cert = hashlib.sha256(tls.getpeercert(binary_form=True) or b"").hexdigest()
                tls.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
                data = b""
                while len(data) < 4096:
                    tls.settimeout(max(0.05, deadline - time.monotonic()))
                    chunk = tls.recv(4096)
                    if not chunk:
                        break
                    data += chunk
        text = data.decode(errors="replace")
        if not text:
            return (False, f"{BROKEN}closed without a response")
        ok = text.startswith("HTTP/") and text.split(" ", 2)[1:2] == ["200"]
        return (ok, f"peer-certificate-sha256: {cert}\r\n{text}")
    except (OSError, ssl.SSLError) as err:
        return (False, f"{BROKEN}{type(err).__name__}: {err}")


def tcp_connect(host: str, port: int, connect_timeout: float) -> tuple[bool, str]:
    try:
        with socket.create_connection((host, port), timeout=connect_timeout):
            return (True, "connected")
    except OSError as err:
        return (False, f"{REFUSED}{type(err).__name__}: {err}")


def make_check(args: argparse.Namespace):
    """The probe the arguments ask for, as a function of no arguments returning (ok, detail)."""
    if args.mode == "https":
        return lambda: https_get(args.host, args.port, args.path, args.connect_timeout, args.timeout)
    return lambda: tcp_connect(args.host, args.port, args.connect_timeout)


def emit(obj: dict) -> None:
    print(json.dumps(obj), flush=True)


def watch(args: argparse.Namespace) -> int:
    """Start a probe every --interval seconds, each in its own thread, and report in start order.

    A probe does not wait for the one before it: a request stuck on a dead node (a SYN to a MAC
    that is gone, a reply that never comes) would otherwise hide every instant behind it, and
    an outage would be measured at the probe's timeout, not at the interval."""
    stop = threading.Event()

    def wait_eof() -> None:
        try:
            while sys.stdin.buffer.read(4096):
                pass
        finally:
            stop.set()

    threading.Thread(target=wait_eof, daemon=True).start()
    check = make_check(args)
    start = time.time()
    end = start + args.max_seconds
    in_flight: collections.deque[tuple[float, threading.Thread, list]] = collections.deque()
    state = {"last_ok": None, "down_since": None, "ready": False, "probes": 0, "failed": 0, "refused": 0,
             "broken": 0, "outage_refused": 0}
    outages: list[dict] = []
    failures: list[dict] = []

    def launch(t: float) -> None:
        result: list = []
        thread = threading.Thread(target=lambda: result.append(check()), daemon=True)
        thread.start()
        in_flight.append((t, thread, result))

    def settle(t: float, ok: bool, detail: str) -> None:
        state["probes"] += 1
        if ok:
            if not state["ready"]:
                state["ready"] = True
                emit({"event": "ready", "t": t})
            if state["down_since"] is not None:
                last_ok = state["last_ok"]
                outage = t - (last_ok if last_ok is not None else state["down_since"])
                outages.append({"from": last_ok, "to": t, "outage_s": round(outage, 3),
                                "refused": state["outage_refused"]})
                emit({"event": "up", "t": t, "outage_s": round(outage, 3), "refused": state["outage_refused"]})
                state["outage_refused"] = 0
                state["down_since"] = None
            state["last_ok"] = t
        else:
            state["failed"] += 1
            if len(failures) < FAILURE_SAMPLES:
                failures.append({"t": round(t, 3), "detail": detail[:160]})
            if state["ready"] and state["down_since"] is None:
                state["down_since"] = t
                emit({"event": "down", "t": t, "last_ok": state["last_ok"], "detail": detail[:200]})
            if detail.startswith(BROKEN):
                state["broken"] += 1
            if detail.startswith(REFUSED):
                state["refused"] += 1
                if state["ready"]:
                    state["outage_refused"] += 1
                    emit({"event": "refused", "t": t, "detail": detail[:200]})

    def drain(block: bool) -> None:
        while in_flight and (block or not in_flight[0][1].is_alive()):
            t, thread, result = in_flight.popleft()
            thread.join()
            settle(t, *(result[0] if result else (False, "probe thread died")))

    tick = start
    while not stop.is_set() and time.time() < end:
        launch(time.time())
        drain(block=False)
        tick += args.interval
        # A tick missed (a loaded host) is skipped, not made up in a burst.
        while tick < time.time():
            tick += args.interval
        stop.wait(tick - time.time())
    drain(block=True)
    down_since = state["down_since"]
    emit({"event": "summary", "probes": state["probes"], "failed": state["failed"], "refused": state["refused"],
          "broken": state["broken"], "outages": outages, "failures": failures,
          "still_down": down_since is not None, "down_since": down_since,
          "max_outage_s": max((o["outage_s"] for o in outages), default=0.0)})
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name in ("once", "watch"):
        p = sub.add_parser(name)
        p.add_argument("host")
        p.add_argument("port", type=int)
        p.add_argument("--path", default="/healthz")
        p.add_argument("--mode", choices=("https", "tcp"), default="https")
        p.add_argument("--connect-timeout", type=float, default=0.3)
        p.add_argument("--timeout", type=float, default=1.0)
        if name == "watch":
            p.add_argument("--interval", type=float, default=0.1)
            p.add_argument("--max-seconds", type=float, default=600)
    args = parser.parse_args()
    if args.cmd == "once":
        ok, detail = make_check(args)()
        print(detail)
        return 0 if ok else 1
    return watch(args)


if __name__ == "__main__":
    sys.exit(main())
