"""Seeing the pair: each node's Prometheus metrics, and the status command as an operator runs it.

The status command runs inside the lab's namespace (where the nodes' addresses are) with the
stack's outputs: hapx.outputs.plain_outputs of the containers stack plus the secrets of the
render the lab booted, the shape `pulumi stack output --json --show-secrets` prints.
"""

from __future__ import annotations

import json
import os
import re
import sys

import pytest

from hapx import rendering
from hapx.outputs import plain_outputs
from hapx.settings import settings_from_dict
from hapx.stackfile import load_stack_file
from lab.labclient import wait_until
from tests.conftest import PROJECT

CHANGE_BOUND_S = 60  # 3 failed checks 2 s apart (or 2 good ones) and a scrape, with room for a loaded host
REJOIN_BOUND_S = 300


@pytest.fixture(scope="module")
def outputs(lab) -> dict:
    settings = settings_from_dict(load_stack_file(str(PROJECT / "Pulumi.containers.yaml")))
    out = {**plain_outputs(settings), **lab.generated_outputs()}
    assert out["nodeIps"] == lab.nodes and out["vip"] == lab.vip  # the stack the lab booted
    return out


@pytest.fixture(scope="module")
def outputs_file(outputs, tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("status") / "outputs.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(outputs, fh)
    return str(path)


def scrape(lab, url: str, *auth: str) -> tuple[str, str]:
    """(HTTP status, body) of one GET of a metrics URL from inside the lab's namespace."""
    res = lab.client("curl", "-s", "--max-time", "10", "-w", "\n%{http_code}", *auth, url, timeout=30)
    body, _, code = res.stdout.rpartition("\n")
    return code.strip(), body


def active_servers(lab, outputs: dict, node: str) -> int | None:
    """haproxy_backend_active_servers of the masters' backend, as the node's exporter reports it."""
    code, body = scrape(lab, outputs["metricsUrls"][node], "-u", f"{outputs['statsUser']}:{outputs['statsPassword']}")
    assert code == "200", (code, body[:300])
    m = re.search(rf'^haproxy_backend_active_servers{{proxy="{rendering.BACKEND}"}} (\d+)$', body, re.MULTILINE)
    return int(m.group(1)) if m else None


def status(lab, outputs_file: str):
    """The status command, as an operator runs it, inside the lab's namespace."""
    return lab.client("env", f"PYTHONPATH={PROJECT}", sys.executable, "-m", "hapx.cli.status", "--outputs", outputs_file,
                      timeout=120)


def no_secret_in(text: str, outputs: dict) -> None:
    key_body = "".join(outputs["sshPrivateKey"].splitlines()[1:-1])
    assert outputs["statsPassword"] not in text
    assert key_body[:40] not in text and "PRIVATE KEY" not in text


def test_metrics_on_each_node_want_the_stats_credentials(lab, outputs):
    masters = len(outputs["backendMasters"])
    for node in lab.nodes:
        url = outputs["metricsUrls"][node]
        assert url.startswith(f"http://{lab.nodes[node]}:")  # the node's own address, not the VIP
        assert scrape(lab, url)[0] == "401"
        assert scrape(lab, url, "-u", f"{outputs['statsUser']}:wrong-{outputs['statsPassword']}")[0] == "401"
        assert active_servers(lab, outputs, node) == masters


def test_metrics_follow_a_master_that_stops(lab, outputs):
    masters = len(outputs["backendMasters"])
    name = outputs["backendMasters"][0].split()[0]
    lab.master_power(name, on=False)
    try:
        for node in lab.nodes:
            wait_until(f"{node} reports {masters - 1} active masters",
                       lambda n=node: active_servers(lab, outputs, n) == masters - 1, CHANGE_BOUND_S, interval=1)
    finally:
        lab.master_power(name, on=True)
    for node in lab.nodes:
        wait_until(f"{node} reports {masters} active masters again",
                   lambda n=node: active_servers(lab, outputs, n) == masters, CHANGE_BOUND_S, interval=1)


def test_status_follows_a_master_then_a_node(lab, outputs, outputs_file, figure):
    res = status(lab, outputs_file)
    assert res.returncode == 0 and res.stdout.startswith("hapx pair: HEALTHY\n"), res.stdout + res.stderr
    holder = lab.vip_node()
    assert f"VIP {lab.vip} on {holder};" in res.stdout
    no_secret_in(res.stdout + res.stderr, outputs)
    figure("status, healthy pair:\n" + res.stdout.rstrip())

    # A master down: degraded, shown DOWN on every node.
    name = outputs["backendMasters"][1].split()[0]
    lab.master_power(name, on=False)
    try:
        res = wait_until(f"status shows {name} DOWN on every node",
                         lambda: (r := status(lab, outputs_file)).returncode == 1
                         and all(f"{name} is DOWN on {n}" in r.stdout for n in lab.nodes) and r,
                         CHANGE_BOUND_S, interval=2)
        row = next(line.split() for line in res.stdout.splitlines() if line.startswith(name + " "))
        assert row[2:] == ["DOWN"] * len(lab.nodes), res.stdout
        figure(f"status, {name} stopped:\n" + res.stdout.rstrip())
    finally:
        lab.master_power(name, on=True)
    wait_until("status healthy again", lambda: status(lab, outputs_file).returncode == 0, CHANGE_BOUND_S, interval=2)

    # The VIP's node down: degraded, shown offline, the VIP on the other node.
    other = lab.other(holder)
    lab.kill(holder)
    try:
        res = wait_until(f"status shows {holder} offline and the VIP on {other}",
                         lambda: (r := status(lab, outputs_file)).returncode == 1
                         and f"{holder} is offline" in r.stdout and f"VIP {lab.vip} on {other};" in r.stdout and r,
                         CHANGE_BOUND_S, interval=2)
        row = next(line.split() for line in res.stdout.splitlines() if line.startswith(holder + " "))
        assert row[2:4] == ["offline", "(unreachable)"], res.stdout
        no_secret_in(res.stdout + res.stderr, outputs)
        figure(f"status, {holder} powered off:\n" + res.stdout.rstrip())
    finally:
        lab.start(holder)
        wait_until(f"{holder} back with HAProxy", lambda: lab.settled(other), REJOIN_BOUND_S, interval=3)
    wait_until("status healthy again", lambda: status(lab, outputs_file).returncode == 0, CHANGE_BOUND_S, interval=2)
