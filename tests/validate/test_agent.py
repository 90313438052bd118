"""The VIP's resource agent, agents/ipaddr (ocf:hapx:ipaddr), run for real: ocf-tester's OCF
checks, and start/monitor/stop against a real interface in throwaway network namespaces, with a
neighbour namespace that must reach the address after start and learn it from the gratuitous ARP,
and the old node's drain at the end of a planned move, with real connections."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

from tests.validate.tools.agents import HAPX_AGENTS
from tests.validate.tools.netns import netns
from tests.validate.tools.procs import BASE_PATH, ToolResult, run, run_ok
from tests.validate.tools.shell import check_shell

AGENT = HAPX_AGENTS / "ipaddr"
VIP = "10.200.0.20"
PEER = "10.200.0.2"
NODE = "10.200.0.1"
OCF_NOT_RUNNING = 7
OCF_ERR_CONFIGURED = 6


@pytest.fixture
def link(tmp_path):
    """Two namespaces joined by a veth pair: `node` (eth0, NODE/24) and `peer` (eth0, PEER/24)."""
    with netns() as node, netns() as peer:
        run_ok(["ip", "-n", node, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0",
                "netns", peer])
        for ns, addr in ((node, NODE), (peer, PEER)):
            run_ok(["ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0"])
            run_ok(["ip", "-n", ns, "link", "set", "eth0", "up"])
        yield node, peer


def agent(ns: str, action: str, tmp_path, env: dict | None = None, **params: str) -> ToolResult:
    """Run one action of the agent in namespace `ns` with OCF_RESKEY_ `params` (and `env` on top)."""
    full_env = {"PATH": BASE_PATH, "OCF_ROOT": "/usr/lib/ocf", "HA_RSCTMP": str(tmp_path),
                **{f"OCF_RESKEY_{k}": v for k, v in params.items()}, **(env or {})}
    # The host's ip enters the namespace: `env` may give the agent a PATH without it.
    return run([shutil.which("ip", path=BASE_PATH), "netns", "exec", ns, str(AGENT), action],
               env=full_env)


def addresses(ns: str) -> str:
    return run_ok(["ip", "-n", ns, "-4", "-o", "addr", "show", "dev", "eth0"]).stdout


def test_agent_passes_bash_n_and_shellcheck_as_sh():
    """It runs under /bin/sh (dash): no bashisms."""
    assert AGENT.read_text().startswith("#!/bin/sh\n") and os.access(AGENT, os.X_OK)
    check_shell(AGENT, shell="sh")


def test_ocf_tester_passes(link):
    """ocf-tester (resource-agents): meta-data against ra-api-1.dtd, start, monitor, stop,
    start twice, stop twice, monitor when stopped."""
    node, _ = link
    result = run(["ip", "netns", "exec", node, "ocf-tester", "-n", "vip", "-o", f"ip={VIP}",
                  "-o", "cidr_netmask=24", "-o", "nic=eth0", "-o", "arp_count=1", str(AGENT)],
                 timeout=120)
    assert result.returncode == 0 and "passed all tests" in result.output, result.describe()


def test_start_publishes_the_address_and_announces_it(link, tmp_path):
    node, peer = link
    params = {"ip": VIP, "cidr_netmask": "24", "nic": "eth0", "arp_count": "3", "arp_interval_ms": "100"}
    assert agent(node, "monitor", tmp_path, **params).returncode == OCF_NOT_RUNNING
    # A Linux neighbour only creates an entry from an unsolicited ARP with arp_accept.
    run_ok(["ip", "netns", "exec", peer, "sysctl", "-q", "-w", "net.ipv4.conf.eth0.arp_accept=1"])
    t0 = time.monotonic()
    assert agent(node, "start", tmp_path, **params).returncode == 0
    print(f"\nocf:hapx:ipaddr start took {(time.monotonic() - t0) * 1000:.0f} ms")
    assert f"inet {VIP}/24" in addresses(node)
    assert agent(node, "monitor", tmp_path, **params).returncode == 0
    # The peer learns the address's MAC from the gratuitous ARP alone (it never asked), and
    # from the first one before start returns (in a planned move the old node then lets go).
    node_mac = run_ok(["ip", "-n", node, "-br", "link", "show", "eth0"]).stdout.split()[2]
    assert node_mac in run_ok(["ip", "-n", peer, "neigh", "show", VIP]).stdout, \
        "start returned before its first gratuitous ARP reached the peer"
    deadline = time.monotonic() + 5
    neigh = ""
    while time.monotonic() < deadline:
        neigh = run_ok(["ip", "-n", peer, "neigh", "show", VIP]).stdout
        if node_mac in neigh:
            break
        time.sleep(0.1)
    assert node_mac in neigh, f"no gratuitous ARP for {VIP} reached the peer: {neigh!r}"
    ping = run(["ip", "netns", "exec", peer, "ping", "-c", "1", "-W", "2", VIP])
    assert ping.returncode == 0, ping.describe()
    # Start again: still running, one address, success.
    assert agent(node, "start", tmp_path, **params).returncode == 0
    assert addresses(node).count(f"inet {VIP}/") == 1
    assert agent(node, "stop", tmp_path, **params).returncode == 0
    assert VIP not in addresses(node)
    assert agent(node, "monitor", tmp_path, **params).returncode == OCF_NOT_RUNNING
    assert agent(node, "stop", tmp_path, **params).returncode == 0  # stopping a stopped VIP succeeds
    assert not list(tmp_path.glob("*.pid")), "the background ARP sender's pid file is left behind"


@pytest.mark.parametrize("params, problem", [
    ({"ip": "10.200.0.256"}, "has an octet over 255"),
    ({"ip": "10.200.0"}, "is not a dotted-quad IPv4 address"),
    ({"ip": ""}, "parameter ip is required"),
    ({"cidr_netmask": "33"}, "cidr_netmask '33' is not a prefix length 1-32"),
    ({"arp_count": "many"}, "must be whole numbers"),
    ({"nic": "../eth0"}, "is not an interface name"),
    ({"drain_ms": "10001"}, "drain_ms '10001' is not a whole number of milliseconds 0-10000"),
    ({"ports": "6443,,32700"}, "ports '6443,,32700' is not a comma-separated list of TCP ports"),
    ({"ports": "6443,70000"}, "ports '6443,70000': 70000 is not a TCP port 1-65535"),
    ({"ports": "0"}, "ports '0': 0 is not a TCP port 1-65535"),
])
def test_bad_parameters_are_named(link, tmp_path, params, problem):
    """validate-all and start refuse a bad parameter with OCF_ERR_CONFIGURED, naming it; a
    probe reports "not running" and stop succeeds, so Pacemaker never sees a failed stop."""
    node, _ = link
    full = {"ip": VIP, "cidr_netmask": "24", "nic": "eth0", **params}
    for action in ("validate-all", "start"):
        result = agent(node, action, tmp_path, **full)
        assert result.returncode == OCF_ERR_CONFIGURED and problem in result.stderr, result.describe()
    assert agent(node, "monitor", tmp_path, **full).returncode == OCF_NOT_RUNNING
    assert agent(node, "stop", tmp_path, **full).returncode == 0
    assert VIP not in addresses(node)


def test_missing_interface_is_not_installed(link, tmp_path):
    node, _ = link
    params = {"ip": VIP, "cidr_netmask": "24", "nic": "eth9"}
    assert agent(node, "monitor", tmp_path, **params).returncode == OCF_NOT_RUNNING
    result = agent(node, "start", tmp_path, **params)
    assert result.returncode == 5 and "interface eth9 does not exist" in result.stderr, result.describe()


def test_migration_is_make_before_break(link, tmp_path):
    """migrate_to keeps the address on the old node (and fails where it is absent);
    migrate_from adds it on the new node; the address goes only with the old node's stop."""
    node, peer = link
    params = {"ip": VIP, "cidr_netmask": "24", "nic": "eth0", "arp_count": "1"}
    run_ok(["ip", "-n", peer, "addr", "flush", "dev", "eth0"])
    run_ok(["ip", "-n", peer, "addr", "add", "10.200.0.3/24", "dev", "eth0"])
    assert agent(node, "migrate_to", tmp_path, **params).returncode == 1  # nothing to migrate here
    assert agent(node, "start", tmp_path, **params).returncode == 0
    assert agent(node, "migrate_to", tmp_path, **params).returncode == 0
    assert f"inet {VIP}/24" in addresses(node), "migrate_to removed the address before the new node has it"
    assert agent(peer, "migrate_from", tmp_path, **params).returncode == 0
    assert f"inet {VIP}/24" in addresses(node) and f"inet {VIP}/24" in addresses(peer)
    assert agent(node, "stop", tmp_path, **params).returncode == 0
    assert VIP not in addresses(node) and f"inet {VIP}/24" in addresses(peer)
    assert agent(peer, "stop", tmp_path, **params).returncode == 0


# A server on the old node and a client on the peer, both one Python process in a namespace.
SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 7000)); s.listen(); print("listening", flush=True)
conn, _ = s.accept()
while conn.recv(100):
    pass
"""
CLIENT = """
import socket, sys, time
c = socket.create_connection((sys.argv[1], 7000), timeout=30); print("connected", flush=True)
hold = float(sys.argv[2])
if hold:
    time.sleep(hold); c.close(); print("closed", flush=True)
else:
    try:
        print("eof" if not c.recv(100) else "data", flush=True)
    except ConnectionResetError:
        print("reset", flush=True)
"""


@pytest.fixture
def connection(link):
    """Start a connection from the peer to VIP:7000 on the node; yields a function that starts
    the client, holding it open for `hold` seconds (0: until the node ends it)."""
    node, peer = link
    procs = []

    def open_connection(hold: float):
        server = subprocess.Popen(["ip", "netns", "exec", node, sys.executable, "-c", SERVER, VIP],
                                  stdout=subprocess.PIPE, text=True)
        procs.append(server)
        assert server.stdout.readline().strip() == "listening"
        client = subprocess.Popen(["ip", "netns", "exec", peer, sys.executable, "-c", CLIENT, VIP, str(hold)],
                                  stdout=subprocess.PIPE, text=True)
        procs.append(client)
        assert client.stdout.readline().strip() == "connected"
        return client

    yield open_connection
    for proc in procs:
        proc.kill()
        proc.wait(timeout=10)


def ended(client: subprocess.Popen) -> str:
    """How the client's connection ended (bounded wait)."""
    out, _ = client.communicate(timeout=30)
    return out.strip()


@pytest.mark.parametrize("drain_ms, hold, said, how_it_ended", [
    # The client closes after 0.5 s: stop waits for it, and the connection ends as the client ended it.
    ("10000", 0.5, "drained in", "closed"),
    # The client would hold it open: after drain_ms it is reset, so it reconnects at once (to the
    # new node) instead of waiting on a node that no longer has the address.
    ("300", 0, "drain_ms 300 passed with 1 connection(s) open: reset them", "reset"),
], ids=["waits-for-open-connections", "resets-what-outlives-drain-ms"])
def test_the_end_of_a_planned_move_drains(link, connection, tmp_path, drain_ms, hold, said, how_it_ended):
    """After migrate_to, stop keeps the address while a connection to it is open, for at most
    drain_ms: the old node's clients finish what they started."""
    node, _ = link
    params = {"ip": VIP, "cidr_netmask": "24", "nic": "eth0", "arp_count": "0", "drain_ms": drain_ms}
    assert agent(node, "start", tmp_path, **params).returncode == 0
    client = connection(hold=hold)
    assert agent(node, "migrate_to", tmp_path, **params).returncode == 0
    stop = agent(node, "stop", tmp_path, **params)
    assert stop.returncode == 0 and said in stop.stderr, stop.describe()
    assert ended(client) == how_it_ended
    assert VIP not in addresses(node)
    assert not list(tmp_path.glob("*.migrating"))


def test_a_stop_outside_a_planned_move_does_not_drain(link, connection, tmp_path):
    """A plain stop (the resource stopped, or moved without migration) lets go at once."""
    node, _ = link
    params = {"ip": VIP, "cidr_netmask": "24", "nic": "eth0", "arp_count": "0", "drain_ms": "10000"}
    assert agent(node, "start", tmp_path, **params).returncode == 0
    client = connection(hold=0)
    stop = agent(node, "stop", tmp_path, **params)
    assert stop.returncode == 0 and "drain" not in stop.stderr, stop.describe()
    assert VIP not in addresses(node)
    assert client.poll() is None, "a plain stop ended the client's connection"


def test_migrate_from_without_a_cluster_still_moves_the_address(link, tmp_path):
    """The hand-off is best effort: where the old node's address cannot be found (here, no
    corosync), migrate_from says so and takes the address as before."""
    _, peer = link
    params = {"ip": VIP, "cidr_netmask": "24", "nic": "eth0", "arp_count": "0"}
    result = run(["ip", "netns", "exec", peer, str(AGENT), "migrate_from"],
                 env={"PATH": BASE_PATH, "OCF_ROOT": "/usr/lib/ocf", "HA_RSCTMP": str(tmp_path),
                      "OCF_RESKEY_CRM_meta_migrate_source": "old-node",
                      **{f"OCF_RESKEY_{k}": v for k, v in params.items()}})
    assert result.returncode == 0 and "no connection hand-off" in result.stderr, result.describe()
    assert f"inet {VIP}/24" in addresses(peer)
    assert not list(tmp_path.glob("*.handoff"))


# -- the agent's failure paths: its tools, its interface, `ip` failing, a stray address

# What the agent runs besides the shell's builtins; tool_path() leaves some out.
AGENT_TOOLS = ("ip", "nft", "ss", "date", "awk", "mkdir", "rm", "sleep", "wc", "cat", "sh", "corosync-cmapctl")


def tool_path(tmp_path, without: tuple[str, ...] = (), fakes: dict[str, str] | None = None) -> str:
    """A PATH of one directory: the agent's tools linked in, except `without`; `fakes` (name ->
    sh script) in their place."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    for tool in AGENT_TOOLS:
        real = shutil.which(tool, path=BASE_PATH)
        if tool not in without and real and not (bindir / tool).exists():
            (bindir / tool).symlink_to(real)
    for name, script in (fakes or {}).items():
        (bindir / name).unlink(missing_ok=True)
        (bindir / name).write_text("#!/bin/sh\n" + script)
        (bindir / name).chmod(0o755)
    return str(bindir)


# `ip` as a node whose netlink refuses address changes and queries would show it.
IP_REFUSES_ADDR = f"""case "$1 $2" in
    "-4 -o"|"-4 addr") echo "RTNETLINK answers: Operation not permitted" >&2; exit 2 ;;
esac
exec {shutil.which("ip", path=BASE_PATH)} "$@"
"""
# `ip` whose `addr del` claims success and does nothing.
IP_DEL_DOES_NOTHING = f"""[ "$1 $2 $3" = "-4 addr del" ] && exit 0
exec {shutil.which("ip", path=BASE_PATH)} "$@"
"""


@pytest.mark.parametrize("params, env, rc, said", [
    ({}, {}, 0, ""),
    ({"nic": "eth9"}, {}, 5, "interface eth9 does not exist"),
    ({"arp_count": "1"}, {"HAPX_SEND_ARP": "/nonexistent/send_arp"}, 5,
     "/nonexistent/send_arp (resource-agents) is missing and arp_count is 1"),
    ({"arp_count": "0"}, {"HAPX_SEND_ARP": "/nonexistent/send_arp"}, 0, ""),
    ({"drain_ms": "2000"}, {"without": ("nft",)}, 5, "nft (nftables) is missing and drain_ms is 2000"),
    ({"drain_ms": "0"}, {"without": ("nft",)}, 0, ""),
    ({}, {"without": ("ip",)}, 5, "ip (iproute2) is not installed"),
], ids=["ready", "no-interface", "no-send_arp", "no-send_arp-no-arps", "no-nft", "no-nft-no-hand-off", "no-ip"])
def test_validate_all_checks_the_tools_and_the_interface(link, tmp_path, params, env, rc, said):
    """validate-all checks what start needs on this node (OCF_ERR_INSTALLED: this node cannot
    run the VIP) and names what is missing as the exit reason."""
    node, _ = link
    env = dict(env)
    env["PATH"] = tool_path(tmp_path, without=env.pop("without", ()))
    full = {"ip": VIP, "cidr_netmask": "24", "nic": "eth0", "arp_count": "1", **params}
    result = agent(node, "validate-all", tmp_path, env=env, **full)
    assert result.returncode == rc, result.describe()
    assert f"ocf-exit-reason:ocf:hapx:ipaddr: {said}" in result.stderr if said else not result.stderr, result.describe()


def test_a_missing_interface_is_not_running_for_a_probe_and_an_error_for_the_monitor(link, tmp_path):
    """A probe (interval 0) or the Stopped role's monitor on a node without the interface:
    the address is not here (7). The Started role's recurring monitor: what is missing (5)."""
    node, _ = link
    params = {"ip": VIP, "cidr_netmask": "24", "nic": "eth9"}
    assert agent(node, "monitor", tmp_path, **params).returncode == OCF_NOT_RUNNING
    probe = agent(node, "monitor", tmp_path, env={"OCF_RESKEY_CRM_meta_interval": "0"}, **params)
    assert probe.returncode == OCF_NOT_RUNNING, probe.describe()
    stopped = agent(node, "monitor", tmp_path, env={"OCF_RESKEY_CRM_meta_interval": "11000",
                                                    "OCF_RESKEY_CRM_meta_role": "Stopped"}, **params)
    assert stopped.returncode == OCF_NOT_RUNNING, stopped.describe()
    started = agent(node, "monitor", tmp_path, env={"OCF_RESKEY_CRM_meta_interval": "10000"}, **params)
    assert started.returncode == 5 and "interface eth9 does not exist" in started.stderr, started.describe()
    assert agent(node, "stop", tmp_path, **params).returncode == 0  # nothing to remove


def test_ip_failing_is_an_error_not_an_absent_address(link, tmp_path):
    """When `ip` itself fails (here netlink refuses), the agent cannot tell whether the address
    is up: the monitor and the stop report an error with ip's message, never "not running" or
    a successful stop."""
    node, _ = link
    params = {"ip": VIP, "cidr_netmask": "24", "nic": "eth0", "arp_count": "0"}
    assert agent(node, "start", tmp_path, **params).returncode == 0
    env = {"PATH": tool_path(tmp_path, fakes={"ip": IP_REFUSES_ADDR})}
    for action in ("monitor", "stop"):
        result = agent(node, action, tmp_path, env=env, **params)
        assert result.returncode == 1 and "Operation not permitted" in result.stderr \
            and "ocf-exit-reason:" in result.stderr, result.describe()
    assert f"inet {VIP}/24" in addresses(node)
    assert agent(node, "stop", tmp_path, **params).returncode == 0


def test_stop_fails_while_the_address_stays_up(link, tmp_path):
    """Stop succeeds only once the address is seen gone: an `ip addr del` that reports success
    but leaves it (here a fake one) is a failed stop."""
    node, _ = link
    params = {"ip": VIP, "cidr_netmask": "24", "nic": "eth0", "arp_count": "0"}
    assert agent(node, "start", tmp_path, **params).returncode == 0
    env = {"PATH": tool_path(tmp_path, fakes={"ip": IP_DEL_DOES_NOTHING})}
    result = agent(node, "stop", tmp_path, env=env, **params)
    assert result.returncode == 1 and f"{VIP}/24 is still on eth0" in result.stderr, result.describe()
    assert agent(node, "stop", tmp_path, **params).returncode == 0
    assert VIP not in addresses(node)


def test_stop_removes_an_address_added_by_hand_with_another_prefix(link, tmp_path):
    """A stray VIP added by hand as /32 while the resource says /24: the monitor sees it and
    stop removes it (with the prefix it has), so Pacemaker can clear a node that should not hold it."""
    node, _ = link
    params = {"ip": VIP, "cidr_netmask": "24", "nic": "eth0", "arp_count": "0"}
    run_ok(["ip", "-n", node, "addr", "add", f"{VIP}/32", "dev", "eth0"])
    assert agent(node, "monitor", tmp_path, **params).returncode == 0
    result = agent(node, "stop", tmp_path, **params)
    assert result.returncode == 0, result.describe()
    assert VIP not in addresses(node)


def test_a_stop_long_after_migrate_to_does_not_drain(link, connection, tmp_path):
    """A migrate_to whose migration never completed (its target died) leaves its flag: a stop
    long after is no planned move's end, and lets go at once without resetting connections."""
    node, _ = link
    params = {"ip": VIP, "cidr_netmask": "24", "nic": "eth0", "arp_count": "0", "drain_ms": "10000"}
    assert agent(node, "start", tmp_path, **params).returncode == 0
    client = connection(hold=0)
    result = agent(node, "migrate_to", tmp_path, env={"OCF_RESKEY_CRM_meta_migrate_target": "node-b"}, **params)
    assert result.returncode == 0, result.describe()
    flag = next(tmp_path.glob("*.migrating"))
    assert flag.read_text().strip() == "node-b"
    past = time.time() - 300
    os.utime(flag, (past, past))
    t0 = time.monotonic()
    stop = agent(node, "stop", tmp_path, **params)
    assert stop.returncode == 0 and "drained in" not in stop.stderr and "reset them" not in stop.stderr, \
        stop.describe()
    assert time.monotonic() - t0 < 5, "the stop waited (drained) after a stale migrate_to"
    assert "migrate_to to node-b 300s ago was not followed by this stop" in stop.stderr, stop.describe()
    assert VIP not in addresses(node) and not list(tmp_path.glob("*.migrating"))
    assert client.poll() is None, "the stop reset the client's connection"


# -- the hand-off's bounds: the new node, migrate_from run with a stand-in for corosync's nodelist

OLD_NODE_ADDRESS = "10.200.0.9"  # nobody: a packet forwarded there is lost
CMAPCTL = f"""printf '%s\\n' 'nodelist.node.0.name (str) = old-node' 'nodelist.node.0.ring0_addr (str) = {OLD_NODE_ADDRESS}'
"""
TABLE = "hapx_handoff_" + VIP.replace(".", "_")
ECHO_SERVER = """
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 7000)); s.listen(); print("listening", flush=True)
def echo(c):
    while True:
        d = c.recv(100)
        if not d:
            return
        c.sendall(d)
while True:
    c, _ = s.accept(); threading.Thread(target=echo, args=(c,), daemon=True).start()
"""
CLIENTS = """
import socket, sys
conns = []
for i in range(int(sys.argv[2])):
    c = socket.create_connection((sys.argv[1], 7000), timeout=3); c.sendall(b"x")
    assert c.recv(1) == b"x", i
    conns.append(c)
print("served", len(conns), flush=True)
"""


def nft(ns: str, *args: str) -> ToolResult:
    return run(["ip", "netns", "exec", ns, "nft", *args])


@pytest.fixture
def handed_over(link, tmp_path):
    """migrate_from run on `node` from `old-node` (OLD_NODE_ADDRESS), drain_ms 1000, ports 7000,
    at most 2 connections remembered; an echo server on VIP:7000 there. Yields (node, peer, env, params)."""
    node, peer = link
    env = {"PATH": tool_path(tmp_path, fakes={"corosync-cmapctl": CMAPCTL}),
           "OCF_RESKEY_CRM_meta_migrate_source": "old-node", "HAPX_HANDOFF_SIZE": "2"}
    params = {"ip": VIP, "cidr_netmask": "24", "nic": "eth0", "arp_count": "0", "drain_ms": "1000", "ports": "7000"}
    result = agent(node, "migrate_from", tmp_path, env=env, **params)
    assert result.returncode == 0 and f"back to old-node ({OLD_NODE_ADDRESS})" in result.stderr, result.describe()
    server = subprocess.Popen(["ip", "netns", "exec", node, sys.executable, "-c", ECHO_SERVER, VIP],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "listening"
        yield node, peer, env, params
    finally:
        server.kill()
        server.wait(timeout=10)
        nft(node, "delete", "table", "netdev", TABLE)


def test_the_handoff_is_bounded_in_size_and_ports(handed_over, tmp_path):
    """The new node remembers at most HANDOFF_SIZE connections, for the handed-over ports only;
    once that is full, new connections are still served here (never forwarded to the old node,
    which is letting the address go)."""
    node, peer, _, _ = handed_over
    table = nft(node, "list", "table", "netdev", TABLE)
    assert table.returncode == 0, table.describe()
    assert "size 2" in table.stdout and "timeout 11s" in table.stdout, table.stdout
    assert "tcp dport 7000" in table.stdout and "meta l4proto tcp" not in table.stdout, table.stdout
    clients = run(["ip", "netns", "exec", peer, sys.executable, "-c", CLIENTS, VIP, "4"], timeout=30)
    assert clients.returncode == 0 and "served 4" in clients.stdout, clients.describe()


def test_the_handoff_ends_by_itself_and_the_monitor_removes_it(handed_over, tmp_path):
    """Forwarding stops in the kernel when the hand-off's lifetime (drain_ms + 10 s) is over,
    whatever becomes of the node's processes; the next monitor then removes the table."""
    node, _, env, params = handed_over
    expiry = int(next(tmp_path.glob("*.handoff")).read_text())
    assert expiry - time.time() <= 12
    early = agent(node, "monitor", tmp_path, env=env, **params)
    assert early.returncode == 0 and nft(node, "list", "table", "netdev", TABLE).returncode == 0, early.describe()
    time.sleep(max(0.0, expiry - time.time()) + 0.5)
    forwarding = nft(node, "list", "set", "netdev", TABLE, "forwarding")
    assert forwarding.returncode == 0 and VIP not in forwarding.stdout, forwarding.describe()
    late = agent(node, "monitor", tmp_path, env=env, **params)
    assert late.returncode == 0 and "removed its table" in late.stderr, late.describe()
    assert nft(node, "list", "table", "netdev", TABLE).returncode != 0, "the monitor left the expired table"
    assert not list(tmp_path.glob("*.handoff"))


def test_a_handoff_table_that_will_not_go_is_reported(handed_over, tmp_path):
    """`nft delete` failing is said (and retried by the next monitor), not hidden."""
    node, _, env, params = handed_over
    next(tmp_path.glob("*.handoff")).write_text("0\n")  # its lifetime is over
    real_nft = shutil.which("nft", path=BASE_PATH)
    env = {**env, "PATH": tool_path(tmp_path, fakes={
        "nft": f'[ "$1" = delete ] && {{ echo "Error: Could not process rule: Device or resource busy" >&2; exit 1; }}\n'
               f'exec {real_nft} "$@"\n'})}
    result = agent(node, "monitor", tmp_path, env=env, **params)
    assert result.returncode == 0 and f"could not remove the hand-off table {TABLE}" in result.stderr \
        and "resource busy" in result.stderr, result.describe()
    assert list(tmp_path.glob("*.handoff")), "the table's record was dropped while the table stays"


STOPPED_ROLE_MONITOR = {"OCF_RESKEY_CRM_meta_interval": "11000", "OCF_RESKEY_CRM_meta_role": "Stopped"}


def test_the_stopped_roles_monitor_removes_a_stray_address(link, tmp_path):
    """The monitor of the Stopped role (on a node where Pacemaker does not run the VIP) that
    finds the address there (added by hand, left behind) removes it and reports "not running":
    Pacemaker never sees a failure, so it never recovers the VIP on the node that serves it."""
    node, _ = link
    params = {"ip": VIP, "cidr_netmask": "24", "nic": "eth0", "arp_count": "0"}
    run_ok(["ip", "-n", node, "addr", "add", f"{VIP}/32", "dev", "eth0"])
    result = agent(node, "monitor", tmp_path, env=STOPPED_ROLE_MONITOR, **params)
    assert result.returncode == OCF_NOT_RUNNING and "removed 10.200.0.20/32 from eth0" in result.stderr, \
        result.describe()
    assert VIP not in addresses(node)


def test_the_stopped_roles_monitor_leaves_an_address_this_node_started(link, tmp_path):
    """Pacemaker cancels that monitor only after a migrate_from here: one that runs in between
    finds the address this node's start added, and must leave it."""
    node, _ = link
    params = {"ip": VIP, "cidr_netmask": "24", "nic": "eth0", "arp_count": "0"}
    assert agent(node, "start", tmp_path, **params).returncode == 0
    result = agent(node, "monitor", tmp_path, env=STOPPED_ROLE_MONITOR, **params)
    assert result.returncode == OCF_NOT_RUNNING and not result.stderr, result.describe()
    assert f"inet {VIP}/24" in addresses(node)
    assert agent(node, "stop", tmp_path, **params).returncode == 0
    assert not list(tmp_path.glob("*.started"))
