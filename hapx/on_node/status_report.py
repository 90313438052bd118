"""Run on a node (as root, sent over SSH on stdin) by the status command: what the node sees.

Usage: sudo python3 - ADMIN_SOCKET < status_report.py
Prints one JSON object: crm_mon's XML and exit code, and HAProxy's `show stat` CSV read from
its admin socket (or why it could not be read). Standard library only: the nodes' python3.
"""

import json
import socket
import subprocess
import sys

TIMEOUT_S = 10


def crm_mon() -> dict:
    """crm_mon's one-shot XML (every resource, failures included) and its exit code."""
    try:
        res = subprocess.run(["crm_mon", "--one-shot", "--inactive", "--output-as=xml"],
                             capture_output=True, text=True, timeout=TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as err:
        return {"crm_mon": "", "crm_mon_rc": None, "crm_mon_error": str(err)}
    return {"crm_mon": res.stdout, "crm_mon_rc": res.returncode, "crm_mon_error": res.stderr.strip()}


def show_stat(path: str) -> dict:
    """HAProxy's `show stat` from its admin socket."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(TIMEOUT_S)
            sock.connect(path)
            sock.sendall(b"show stat\n")
            chunks = []
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                chunks.append(data)
    except OSError as err:
        return {"stat": None, "stat_error": f"{path}: {err}"}
    return {"stat": b"".join(chunks).decode(errors="replace"), "stat_error": ""}


if __name__ == "__main__":
    print(json.dumps({**crm_mon(), **show_stat(sys.argv[1])}))
