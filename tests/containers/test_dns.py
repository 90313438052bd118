"""Masters by host name: the containers stack names its masters (kube-mast01..03) and the lab
serves them from the DNS of the stack's network (dnsmasq on the gateway, the render's
network.dnsHosts, lab/labdns.py). The nodes resolve them through network.dnsServers and
network.domain as cloud-init set them up; HAProxy resolves them at run time and follows an
address changed in DNS within haproxy.dnsResolveIntervalSeconds, without a failed request.

All client and DNS traffic runs inside the lab's network namespace.
"""

from __future__ import annotations

import re

from lab.labclient import Lab, Poller, wait_until
from tests.containers.test_faults import REJOIN_BOUND_S, healthy

POLL_S = 0.05
# A patient client: on a loaded host the stand-ins (Python, TLS) sometimes take over a second to
# answer, which is not what this test is about. A request HAProxy sent to a wrong or dead
# address still fails at once (reset or closed), whatever the timeout.
CLIENT_TIMEOUT_S = 5
MOVED_ADDRESS = "10.99.5.111"   # another stand-in master address, inside the lab's namespace
# HAProxy asks DNS again every `timeout resolve` (the setting); a margin for a loaded host.
MARGIN_S = 1
POLL_MARGIN_S = 10  # the test's own polling over SSH, on a loaded host
# Requests through the VIP until the moved master has answered one: with three masters each
# misses it with odds 2/3, and 60 leave (2/3)**60, about 3e-11, to chance.
SERVED_TRIES = 60
# HAProxy's runtime API, through the stats socket: the image has python3 (cloud-init's), no socat.
SHOW_SERVERS = ("echo 'show servers state kubernetes-masters' | sudo python3 -c \"import socket, sys; "
                "s = socket.socket(socket.AF_UNIX); s.connect('/run/haproxy/admin.sock'); "
                "s.sendall(sys.stdin.read().encode()); print(s.makefile().read())\"")
SRV_RUNNING = "2"  # srv_op_state: SRV_ST_RUNNING


def facts(lab: Lab) -> dict:
    return lab.state["lab"]


def servers_state(lab: Lab, node: str) -> dict[str, dict]:
    """HAProxy's `show servers state` of the masters' backend on a node, by server name."""
    out = lab.exec(node, SHOW_SERVERS, timeout=30).stdout
    lines = [line for line in out.splitlines() if line.strip()]
    header = next(line for line in lines if line.startswith("# be_id")).lstrip("# ").split()
    rows = [dict(zip(header, line.split(), strict=False)) for line in lines if re.match(r"^\d+ kubernetes-masters ", line)]
    return {row["srv_name"]: row for row in rows}


def followed_at(lab: Lab, node: str, server: str, address: str, since: float) -> float:
    """When the node's HAProxy first logged, after `since` (the nodes share the host's clock),
    that `server` changed its address to `address`."""
    out = lab.exec(node, f"sudo journalctl -t haproxy -o short-unix --no-pager --since @{int(since)}").stdout
    times = [float(line.split()[0]) for line in out.splitlines()
             if f"/{server} changed its IP from " in line and f" to {address} by " in line]
    times = [t for t in times if t >= since]
    assert times, f"{node}: HAProxy logged no change of {server} to {address}:\n{out[-2000:]}"
    return times[0]


def name_master(lab: Lab) -> dict:
    """The first master given by a name the lab's DNS serves."""
    master = next((m for m in lab.masters if m["address"] in facts(lab)["dns_hosts"]), None)
    assert master, f"the containers stack names no master by a name its network serves: {lab.masters}"
    return master


def check_resolver(lab: Lab, node: str) -> None:
    """The node's resolver asks network.dnsServers and searches network.domain; every host
    entry of the stack's network resolves by its bare name."""
    resolv = lab.exec(node, "cat /etc/resolv.conf").stdout
    servers = re.findall(r"^nameserver\s+(\S+)", resolv, re.M)
    search = re.findall(r"^search\s+(.+)$", resolv, re.M)
    assert servers == facts(lab)["dns_servers"], resolv
    assert search and search[-1].split() == [facts(lab)["domain"]], resolv
    for name, address in facts(lab)["dns_hosts"].items():
        res = lab.exec(node, f"getent hosts {name}", check=False)
        assert res.returncode == 0 and res.stdout.split()[:2] == [address, f"{name}.{facts(lab)['domain']}"], \
            f"{node}: getent hosts {name}: {res.stdout}{res.stderr}"


def test_every_node_resolves_the_masters_with_the_stacks_dns(lab):
    for node in lab.nodes:
        check_resolver(lab, node)
        # systemd-resolved holds the same servers and domain for the NIC (from netplan's networkd file).
        link = lab.exec(node, "resolvectl dns eth0; resolvectl domain eth0").stdout
        assert all(s in link for s in facts(lab)["dns_servers"]) and facts(lab)["domain"] in link, link


def test_haproxy_has_every_master_up_at_its_dns_address(lab):
    hosts, domain = facts(lab)["dns_hosts"], facts(lab)["domain"]
    for node in lab.nodes:
        state = servers_state(lab, node)
        assert sorted(state) == sorted(m["name"] for m in lab.masters), state
        for m in lab.masters:
            row = state[m["name"]]
            assert row["srv_op_state"] == SRV_RUNNING, f"{node}: {m['name']} is not UP: {row}"
            if m["address"] in hosts:
                assert row["srv_fqdn"] == f"{m['address']}.{domain}", row
                assert row["srv_addr"] == hosts[m["address"]], row


def test_a_master_moved_in_dns_reaches_haproxy_within_the_interval(lab, figure):
    """The lab's DNS answers one master's name with another stand-in's address: every node's
    HAProxy moves that server there within dnsResolveIntervalSeconds (plus a margin), the server
    stays UP, requests reach the new address, and a client polling the VIP every 50 ms
    throughout sees no failed request. The old address is served again afterwards."""
    healthy(lab)
    master = name_master(lab)
    name, old = master["address"], facts(lab)["dns_hosts"][master["address"]]
    bound = facts(lab)["dns_resolve_interval_s"] + MARGIN_S
    poller = Poller(lab, interval=POLL_S, connect_timeout=CLIENT_TIMEOUT_S, timeout=CLIENT_TIMEOUT_S, max_seconds=600)
    moved = False
    try:
        poller.wait_for("ready", timeout=60)
        res = lab.ctl("dns-host", name, MOVED_ADDRESS)
        moved = True
        changed_at = float(re.search(r" at (\d+\.\d+)", res.stderr).group(1))
        wait_until(f"every node's HAProxy has {master['name']} at {MOVED_ADDRESS}",
                   lambda: all(servers_state(lab, n)[master["name"]]["srv_addr"] == MOVED_ADDRESS for n in lab.nodes),
                   timeout=bound + POLL_MARGIN_S, interval=0.2)
        took = {n: followed_at(lab, n, master["name"], MOVED_ADDRESS, changed_at) - changed_at for n in lab.nodes}
        for node in lab.nodes:
            row = servers_state(lab, node)[master["name"]]
            assert row["srv_op_state"] == SRV_RUNNING, f"{node}: {master['name']} not UP after the move: {row}"
        # The poller's connections share HAProxy's round robin, so any one request lands on a
        # master at random: ask three rounds, and on until the moved one answers (bounded).
        served: list[str] = []
        while len(served) < 3 * len(lab.masters) or (MOVED_ADDRESS not in served and len(served) < SERVED_TRIES):
            served.append(re.search(r'"server": "([^"]+)"', lab.https("/version").stdout or "").group(1))
        assert MOVED_ADDRESS in served and old not in served, served
        figure("containers: a master's address changed in the lab's DNS reached HAProxy (its log) after "
               + ", ".join(f"{n} {t:.1f} s" for n, t in took.items())
               + f" (resolve interval {facts(lab)['dns_resolve_interval_s']} s)")
        assert max(took.values()) <= bound, f"HAProxy followed DNS after {took}, bound {bound} s"
    finally:
        try:
            if moved:
                lab.ctl("dns-host", name, old)
                for node in lab.nodes:
                    wait_until(f"{node}'s HAProxy has {master['name']} back at {old}",
                               lambda n=node: servers_state(lab, n)[master["name"]]["srv_addr"] == old,
                               timeout=bound + POLL_MARGIN_S, interval=0.5)
        finally:
            summary = poller.stop()
    assert summary["failed"] == 0 and summary["probes"] > 0, summary


def test_a_restarted_node_keeps_its_resolver(lab):
    """Power the node off the VIP off and on again (same disk; cloud-init does not apply its
    network-config again for the same instance): its resolver still uses the stack's DNS, and
    it rejoins the cluster."""
    node = lab.other(healthy(lab))
    lab.kill(node)
    started = False
    try:
        lab.start(node)
        started = True
        wait_until(f"{node} has booted after its restart", lambda: lab.exec(
            node, "systemctl is-system-running --wait || true", timeout=120, check=False).stdout.strip() == "running",
            timeout=REJOIN_BOUND_S, interval=1)
        check_resolver(lab, node)
    finally:
        if not started:
            lab.start(node)
        healthy(lab)
