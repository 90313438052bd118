"""The container lab's DNS: dnsmasq on the gateway inside the lab's namespace, serving the host
entries the render's plan says the stack's network serves (network.dnsHosts), configured as
libvirt configures the dnsmasq of a network it creates. Standard library only.

libvirt (src/network/bridge_driver.c) writes, for a network with a domain and localOnly:
`local=/DOMAIN/`, `domain=DOMAIN`, `expand-hosts` and the network's <dns><host> entries in an
`addn-hosts` file: each name answers bare and as NAME.DOMAIN. Unlike libvirt's, the lab's
dnsmasq never forwards (`no-resolv`): nothing it is asked leaves the namespace.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from lab.labnet import LabError, in_ns, pid_alive, run, write_file

START_TIMEOUT_S = 10

CONF = """\
# hapx container lab (lab/labdns.py): the DNS of the network the stack creates.
listen-address={listen}
bind-interfaces
port=53
no-resolv
no-hosts
no-poll
local=/{domain}/
domain={domain}
expand-hosts
addn-hosts={hosts}
user=root
log-facility={log}
"""


def hosts_text(hosts: dict[str, str]) -> str:
    """An addn-hosts file: one `ADDRESS NAME` line per entry."""
    return "".join(f"{address} {name}\n" for name, address in sorted(hosts.items()))


def start(state: dict, directory: Path, listen: str, domain: str, hosts: dict[str, str]) -> int:
    """dnsmasq in the lab's namespace on `listen`, serving `hosts` in `domain`; its pid (kept in state)."""
    hosts_file = write_file(directory / "hosts", hosts_text(hosts), 0o644)
    conf = write_file(directory / "dnsmasq.conf",
                      CONF.format(listen=listen, domain=domain, hosts=hosts_file, log=directory / "dnsmasq.log"),
                      0o644)
    subprocess.run(["dnsmasq", "--test", f"--conf-file={conf}"], check=True, capture_output=True, timeout=30)
    proc = subprocess.Popen(in_ns(state["ns"], ["dnsmasq", "--keep-in-foreground", f"--conf-file={conf}"]),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    state["dns"] = {"pid": proc.pid, "hosts_file": hosts_file, "hosts": dict(hosts)}
    deadline = time.monotonic() + START_TIMEOUT_S
    while f"{listen}:53 " not in run(in_ns(state["ns"], ["ss", "-Hlun"])).stdout + " ":
        if not pid_alive(proc.pid) or time.monotonic() > deadline:
            raise LabError(f"dnsmasq does not listen on {listen}:53 (see {directory / 'dnsmasq.log'})")
        time.sleep(0.1)
    return proc.pid


def set_host(state: dict, name: str, address: str) -> None:
    """Point `name` at `address` (a new entry or a changed one); dnsmasq re-reads its hosts on SIGHUP."""
    dns = state.get("dns") or {}
    if not pid_alive(dns.get("pid")):
        raise LabError("the lab's DNS server is not running")
    dns["hosts"][name] = address
    write_file(Path(dns["hosts_file"]), hosts_text(dns["hosts"]), 0o644)
    os.kill(dns["pid"], signal.SIGHUP)
