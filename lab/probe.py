"""Lab client probes, run INSIDE the lab's network namespace (`labctl client -- python3 lab/probe.py ...`).

    probe.py once  HOST PORT [--path /healthz]      one HTTPS GET through the VIP; exit 0 on 200
    probe.py watch HOST PORT [--interval 0.1 ...]   poll until stdin closes, then print a summary

`watch` prints one JSON object per line: {"event": "ready"} after the first good probe, then
{"event": "down", ...} / {"event": "up", "outage_s": ...} on each change, and finally
{"event": "summary", "outages": [...], ...} once its stdin reaches EOF (or --max-seconds pass).
An outage lasts from the last good probe before a failure to the first good probe after it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import socket
import ssl
import sys
import threading
import time


def https_get(host: str, port: int, path: str, connect_timeout: float, timeout: float) -> tuple[bool, str]:
    """One HTTPS GET (no certificate check: the stand-ins are self-signed); (ok, response).

    The response text starts with a line `peer-certificate-sha256: HEX`: HAProxy passes TLS
    through, so this is the certificate of the stand-in API server that answered."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((host, port), timeout=connect_timeout) as raw:
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
        ok = text.startswith("HTTP/") and text.split(" ", 2)[1:2] == ["200"]
        return (ok, f"peer-certificate-sha256: {cert}\r\n{text}")
    except (OSError, ssl.SSLError) as err:
        return (False, f"{type(err).__name__}: {err}")


def tcp_connect(host: str, port: int, connect_timeout: float) -> tuple[bool, str]:
    try:
        with socket.create_connection((host, port), timeout=connect_timeout):
            return (True, "connected")
    except OSError as err:
        return (False, f"{type(err).__name__}: {err}")


def make_check(args: argparse.Namespace):
    """The probe the arguments ask for, as a function of no arguments returning (ok, detail)."""
    if args.mode == "https":
        return lambda: https_get(args.host, args.port, args.path, args.connect_timeout, args.timeout)
    return lambda: tcp_connect(args.host, args.port, args.connect_timeout)


def emit(obj: dict) -> None:
    print(json.dumps(obj), flush=True)


def watch(args: argparse.Namespace) -> int:
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
    last_ok = None
    down_since = None
    ready = False
    outages: list[dict] = []
    probes = failed = 0
    while not stop.is_set() and time.time() < end:
        t = time.time()
        ok, detail = check()
        probes += 1
        if ok:
            if not ready:
                ready = True
                emit({"event": "ready", "t": t})
            if down_since is not None:
                outage = t - last_ok if last_ok is not None else t - down_since
                outages.append({"from": last_ok, "to": t, "outage_s": round(outage, 3)})
                emit({"event": "up", "t": t, "outage_s": round(outage, 3)})
                down_since = None
            last_ok = t
        else:
            failed += 1
            if ready and down_since is None:
                down_since = t
                emit({"event": "down", "t": t, "last_ok": last_ok, "detail": detail[:200]})
        stop.wait(max(0.0, args.interval - (time.time() - t)))
    emit({"event": "summary", "probes": probes, "failed": failed, "outages": outages,
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
