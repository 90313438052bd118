"""Stand-in Kubernetes API servers for the lab: HTTPS on every local address, stdlib only.

Run by the lab inside its network namespace, where each master's address sits on loopback:
    python3 lab/responder.py --cert C --key K --port 6443

Whichever local address a request reaches is the stand-in that answers: GET /readyz, /healthz
and /livez answer 200 "ok" (what HAProxy's health check asks for); GET / and /version answer
200 with a small JSON naming the address as the server; anything else is 404.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HEALTH_PATHS = {"/readyz", "/healthz", "/livez"}


class Handler(BaseHTTPRequestHandler):
    server_version = "hapx-lab-apiserver"
    protocol_version = "HTTP/1.1"

    def _reply(self, code: int, body: bytes, ctype: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:  # http.server's naming
        path = self.path.split("?", 1)[0]
        if path in HEALTH_PATHS:
            self._reply(200, b"ok", "text/plain")
        elif path in ("/", "/version"):
            body = json.dumps({"server": self.connection.getsockname()[0], "path": path, "lab": "hapx"}).encode()
            self._reply(200, body + b"\n", "application/json")
        else:
            body = json.dumps({"kind": "Status", "code": 404, "server": self.connection.getsockname()[0]}).encode()
            self._reply(404, body + b"\n", "application/json")

    do_HEAD = do_GET

    def log_message(self, fmt: str, *args: object) -> None:  # quiet: health checks every 2 s
        pass


class TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog is 5: on a loaded host the accept thread falls behind a
    # client polling every 50 ms plus the health checks, SYNs overflow the queue and a request
    # waits for its 1 s SYN retransmit (seen as TcpExtListenOverflows). kube-apiserver (Go)
    # listens with the kernel's somaxconn.
    request_queue_size = 4096

    def __init__(self, addr: tuple[str, int], ctx: ssl.SSLContext) -> None:
        self.ctx = ctx
        super().__init__(addr, Handler)

    def finish_request(self, request: socket.socket, client_address: tuple) -> None:
        # The handshake runs in the request's own thread: a slow client never blocks accept().
        request.settimeout(10)
        try:
            tls = self.ctx.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError):
            return
        super().finish_request(tls, client_address)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--port", type=int, action="append", required=True, help="port to serve on every address")
    args = parser.parse_args()

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    servers = [TLSServer(("0.0.0.0", port), ctx) for port in args.port]
    for srv in servers:
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    print(f"responder: serving HTTPS on every local address, port(s) {args.port}", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    for srv in servers:
        srv.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
