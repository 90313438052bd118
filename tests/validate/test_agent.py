"""The VIP's resource agent, agents/ipaddr (ocf:hapx:ipaddr), run for real: ocf-tester's OCF
checks, and start/monitor/stop against a real interface in throwaway network namespaces, with a
neighbour namespace that must reach the address after start and learn it from the gratuitous ARP,
and the old node's drain at the end of a planned move, with real connections."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.validate import harness

AGENT = harness.HAPX_AGENTS / "ipaddr"
VIP = "10.200.0.20"
PEER = "10.200.0.2"
NODE = "10.200.0.1"
OCF_NOT_RUNNING = 7
OCF_ERR_CONFIGURED = 6


@pytest.fixture
def link(tmp_path):
    """Two namespaces joined by a veth pair: `node` (eth0, NODE/24) and `peer` (eth0, PEER/24)."""
    with harness.netns() as node, harness.netns() as peer:
        harness.run_ok(["ip", "-n", node, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0",
                        "netns", peer])
        for ns, addr in ((node, NODE), (peer, PEER)):
            harness.run_ok(["ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0"])
            harness.run_ok(["ip", "-n", ns, "link", "set", "eth0", "up"])
        yield node, peer


def agent(ns: str, action: str, tmp_path, **params: str) -> harness.ToolResult:
    env = {"PATH": harness.BASE_PATH, "OCF_ROOT": "/usr/lib/ocf", "HA_RSCTMP": str(tmp_path),
           **{f"OCF_RESKEY_{k}": v for k, v in params.items()}}
    return harness.run(["ip", "netns", "exec", ns, str(AGENT), action], env=env)


def addresses(ns: str) -> str:
    return harness.run_ok(["ip", "-n", ns, "-4", "-o", "addr", "show", "dev", "eth0"]).stdout


def test_agent_passes_bash_n_and_shellcheck_as_sh():
    """It runs under /bin/sh (dash): no bashisms."""
    assert AGENT.read_text().startswith("#!/bin/sh\n") and os.access(AGENT, os.X_OK)
    harness.check_shell(AGENT, shell="sh")


def test_ocf_tester_passes(link):
    """ocf-tester (resource-agents): meta-data against ra-api-1.dtd, start, monitor, stop,
    start twice, stop twice, monitor when stopped."""
    node, _ = link
    result = harness.run(["ip", "netns", "exec", node, "ocf-tester", "-n", "vip", "-o", f"ip={VIP}",
                          "-o", "cidr_netmask=24", "-o", "nic=eth0", "-o", "arp_count=1", str(AGENT)],
                         timeout=120)
    assert result.returncode == 0 and "passed all tests" in result.output, result.describe()


def test_start_publishes_the_address_and_announces_it(link, tmp_path):
    node, peer = link
    params = {"ip": VIP, "cidr_netmask": "24", "nic": "eth0", "arp_count": "3", "arp_interval_ms": "100"}
    assert agent(node, "monitor", tmp_path, **params).returncode == OCF_NOT_RUNNING
    # A Linux neighbour only creates an entry from an unsolicited ARP with arp_accept.
    harness.run_ok(["ip", "netns", "exec", peer, "sysctl", "-q", "-w", "net.ipv4.conf.eth0.arp_accept=1"])
    t0 = time.monotonic()
    assert agent(node, "start", tmp_path, **params).returncode == 0
    print(f"\nocf:hapx:ipaddr start took {(time.monotonic() - t0) * 1000:.0f} ms")
    assert f"inet {VIP}/24" in addresses(node)
    assert agent(node, "monitor", tmp_path, **params).returncode == 0
    # The peer learns the address's MAC from the gratuitous ARP alone (it never asked), and
    # from the first one before start returns (in a planned move the old node then lets go).
    node_mac = harness.run_ok(["ip", "-n", node, "-br", "link", "show", "eth0"]).stdout.split()[2]
    assert node_mac in harness.run_ok(["ip", "-n", peer, "neigh", "show", VIP]).stdout, \
        "start returned before its first gratuitous ARP reached the peer"
    deadline = time.monotonic() + 5
    neigh = ""
    while time.monotonic() < deadline:
        neigh = harness.run_ok(["ip", "-n", peer, "neigh", "show", VIP]).stdout
        if node_mac in neigh:
            break
        time.sleep(0.1)
    assert node_mac in neigh, f"no gratuitous ARP for {VIP} reached the peer: {neigh!r}"
    ping = harness.run(["ip", "netns", "exec", peer, "ping", "-c", "1", "-W", "2", VIP])
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
    harness.run_ok(["ip", "-n", peer, "addr", "flush", "dev", "eth0"])
    harness.run_ok(["ip", "-n", peer, "addr", "add", "10.200.0.3/24", "dev", "eth0"])
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
    result = harness.run(["ip", "netns", "exec", peer, str(AGENT), "migrate_from"],
                         env={"PATH": harness.BASE_PATH, "OCF_ROOT": "/usr/lib/ocf", "HA_RSCTMP": str(tmp_path),
                              "OCF_RESKEY_CRM_meta_migrate_source": "old-node",
                              **{f"OCF_RESKEY_{k}": v for k, v in params.items()}})
    assert result.returncode == 0 and "no connection hand-off" in result.stderr, result.describe()
    assert f"inet {VIP}/24" in addresses(peer)
    assert not list(tmp_path.glob("*.handoff"))
