"""The pair at a glance, and a health check: exit 0 when healthy, 1 when degraded.

Usage: python -m hapx.cli.status --stack dev          (the stack's outputs, through the engine)
       python -m hapx.cli.status --outputs FILE.json  (the same outputs, saved as JSON)

Reads the stack's outputs (`pulumi stack output --json --show-secrets`), asks every node over
SSH, with the stack's key and each node's pinned host key, what it sees (crm_mon's XML and
HAProxy's admin socket: hapx/on_node/status_report.py) and prints one screen: each node's cluster
state, which node holds the VIP, each node's HAProxy, each master UP or DOWN as each node's
HAProxy sees it, quorum and failed actions. No secret is ever printed.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import csv
import io
import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from hapx.crm import CRM
from hapx.rendering import ADMIN_SOCKET, BACKEND

PROJECT = Path(__file__).resolve().parents[2]
# Sent to each node over SSH and run there by its python3.
ON_NODE_REPORT = Path(__file__).resolve().parents[1] / "on_node" / "status_report.py"
SSH_CONNECT_S = 5
SSH_TIMEOUT_S = 40
HEALTHY, DEGRADED, UNKNOWN = 0, 1, 2


@dataclass(frozen=True)
class ClusterView:
    """What one node's crm_mon says about the cluster."""

    nodes: Mapping[str, str]  # name -> online, standby, offline (or pending)
    vip_on: Sequence[str]
    haproxy_on: Sequence[str]
    quorum: bool
    dc: Optional[str]
    failed: Sequence[str] = ()


@dataclass(frozen=True)
class NodeReport:
    """One node's answer: its view of the cluster and its HAProxy's servers (None: not read)."""

    name: str
    address: str
    view: Optional[ClusterView] = None
    servers: Optional[Mapping[str, str]] = None  # master -> HAProxy's status (UP, DOWN, ...)
    error: str = ""


@dataclass(frozen=True)
class Verdict:
    """The pair's health: the problems found (none: healthy) and whose view was used."""

    problems: list[str] = field(default_factory=list)
    seen_by: Optional[str] = None

    @property
    def code(self) -> int:
        """The process exit code: 0 healthy, 1 degraded."""
        return DEGRADED if self.problems else HEALTHY


def node_state(node: ET.Element) -> str:
    """A crm_mon <node>'s state: offline, pending, standby or online."""
    if node.get("online") != "true" or node.get("unclean") == "true":
        return "offline"
    if node.get("pending") == "true":
        return "pending"
    if node.get("standby") == "true":
        return "standby"
    return "online"


def parse_crm_mon(xml: str) -> ClusterView:
    """The cluster as `crm_mon --one-shot --inactive --output-as=xml` shows it."""
    root = ET.fromstring(xml)
    nodes = {n.get("name", ""): node_state(n) for n in root.findall("./nodes/node")}

    def running(rid: str) -> list[str]:
        return sorted(n.get("name", "") for r in root.iter("resource") if r.get("id") == rid
                      and r.get("active") == "true" and r.get("failed") != "true" for n in r.findall("node"))

    dc = root.find("./summary/current_dc")
    failed = [f"{f.get('op_key')} on {f.get('node')}: {f.get('exitstatus')}"
              + (f" ({f.get('exitreason')})" if f.get("exitreason") else "")
              for f in root.findall("./failures/failure")]
    return ClusterView(
        nodes=nodes, vip_on=running(CRM.vip), haproxy_on=running(CRM.haproxy),
        quorum=dc is not None and dc.get("with_quorum") == "true",
        dc=dc.get("name") if dc is not None and dc.get("present") == "true" else None,
        failed=failed)


def parse_show_stat(text: str, backend: str = BACKEND) -> dict[str, str]:
    """Each server of `backend` and its status (UP, DOWN, MAINT, ...) from HAProxy's `show stat` CSV."""
    rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
    return {r["svname"]: r["status"].split()[0] for r in rows
            if r.get("pxname") == backend and r.get("svname") not in ("FRONTEND", "BACKEND")}


def masters_of(outputs: Mapping) -> list[tuple[str, str]]:
    """(name, endpoint) of every master, from the backendMasters output (`name host:port`)."""
    return [tuple(m.split(" ", 1)) for m in outputs["backendMasters"]]


def assess(outputs: Mapping, reports: Sequence[NodeReport]) -> Verdict:
    """Everything that makes the pair less than whole; the view used is the first node that answered."""
    problems = [f"{r.name}: {r.error}" for r in reports if r.error]
    seen = next((r for r in reports if r.view is not None), None)
    if seen is None or seen.view is None:
        return Verdict(problems + ["no node answered: the cluster's state is unknown"])
    view = seen.view
    for name in outputs["nodeIps"]:
        state = view.nodes.get(name, "unknown")
        if state != "online":
            problems.append(f"{name} is {state}")
        elif name not in view.haproxy_on:
            problems.append(f"HAProxy is not running on {name}")
    if not view.quorum:
        problems.append("the cluster has no quorum")
    if len(view.vip_on) != 1:
        where = f" ({', '.join(view.vip_on)})" if view.vip_on else ""
        problems.append(f"the VIP runs on {len(view.vip_on)} nodes{where}")
    for r in reports:
        for master, status in (r.servers or {}).items():
            if status != "UP":
                problems.append(f"{master} is {status} on {r.name}")
    problems += [f"failed action: {f}" for f in view.failed]
    return Verdict(problems, seen.name)


def haproxy_state(report: NodeReport, view: Optional[ClusterView]) -> str:
    """How a node's HAProxy looks: running (Pacemaker runs it and its socket answers), stopped, ..."""
    started = view is not None and report.name in view.haproxy_on
    if report.servers is not None:
        return "running" if started else "running (not by Pacemaker)"
    if report.view is None:
        return "started" if started else "unknown"
    return "no socket" if started else "stopped"


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def format_screen(outputs: Mapping, reports: Sequence[NodeReport], verdict: Verdict) -> str:
    """The one screen the status command prints: no secret in it."""
    by_name = {r.name: r for r in reports}
    view = by_name[verdict.seen_by].view if verdict.seen_by else None
    count = len(verdict.problems)
    head = "HEALTHY" if verdict.code == HEALTHY else f"DEGRADED ({count} problem{'s' if count > 1 else ''})"
    lines = [f"hapx pair: {head}"]
    lines += [f"  - {p}" for p in verdict.problems]
    vip_where = ", ".join(view.vip_on) if view and view.vip_on else "nowhere"
    if view:
        lines.append(f"VIP {outputs['vip']} on {vip_where}; quorum {'yes' if view.quorum else 'NO'}; "
                     f"DC {view.dc or 'none'}; as seen by {verdict.seen_by}")
    else:
        lines.append(f"VIP {outputs['vip']}: unknown (no node answered)")
    lines.append("")
    rows = [["NODE", "ADDRESS", "CLUSTER", "HAPROXY", "VIP"]]
    for name, address in outputs["nodeIps"].items():
        r = by_name.get(name, NodeReport(name, address, error="not asked"))
        state = view.nodes.get(name, "unknown") if view else "unknown"
        if r.view is None:
            state += " (unreachable)"
        rows.append([name, address, state, haproxy_state(r, view), "yes" if view and name in view.vip_on else ""])
    lines += _table(rows) + [""]
    rows = [["MASTER", "ENDPOINT", *outputs["nodeIps"]]]
    for master, endpoint in masters_of(outputs):
        rows.append([master, endpoint] + [(by_name[n].servers or {}).get(master, "?") if n in by_name else "?"
                                          for n in outputs["nodeIps"]])
    lines += _table(rows) + [""]
    failed = view.failed if view else []
    lines.append("failed actions: " + ("none" if not failed else ""))
    lines += [f"  {f}" for f in failed]
    return "\n".join(lines) + "\n"


def report_from(name: str, address: str, answer: dict) -> NodeReport:
    """A node's report from what on_node/status_report.py printed."""
    view, errors = None, []
    if answer.get("crm_mon"):
        try:
            view = parse_crm_mon(answer["crm_mon"])
        except ET.ParseError as err:
            errors.append(f"crm_mon's XML does not parse: {err}")
    else:
        errors.append(f"crm_mon failed: {answer.get('crm_mon_error') or answer.get('crm_mon_rc')}")
    servers = parse_show_stat(answer["stat"]) if answer.get("stat") is not None else None
    if servers is None and view is not None and name in view.haproxy_on:
        errors.append(f"HAProxy's admin socket does not answer: {answer.get('stat_error')}")
    return NodeReport(name, address, view, servers, "; ".join(errors))


def ask_node(outputs: Mapping, name: str, key_file: str, known_hosts: str) -> NodeReport:
    """Run on_node/status_report.py on one node over SSH, pinned to its host key."""
    address = outputs["nodeIps"][name]
    argv = ["ssh", "-F", "/dev/null", "-i", key_file, "-o", f"UserKnownHostsFile={known_hosts}",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
            "-o", f"ConnectTimeout={SSH_CONNECT_S}", "-o", "LogLevel=ERROR",
            f"{outputs['sshUser']}@{address}", "--", f"sudo python3 - {ADMIN_SOCKET}"]
    try:
        res = subprocess.run(argv, input=ON_NODE_REPORT.read_text(), capture_output=True, text=True,
                             timeout=SSH_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return NodeReport(name, address, error=f"no answer over SSH within {SSH_TIMEOUT_S}s")
    if res.returncode != 0:
        return NodeReport(name, address, error=f"unreachable over SSH ({(res.stderr.strip() or res.returncode)})")
    try:
        return report_from(name, address, json.loads(res.stdout))
    except ValueError:
        return NodeReport(name, address, error=f"unexpected answer: {res.stdout[:200]!r}")


def collect(outputs: Mapping) -> list[NodeReport]:
    """Every node's report, asked in parallel (a dead node costs one connect timeout)."""
    with tempfile.TemporaryDirectory(prefix="hapx-status-") as tmp:
        key_file = os.path.join(tmp, "id")
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(outputs["sshPrivateKey"].rstrip("\n") + "\n")
        known_hosts = os.path.join(tmp, "known_hosts")
        with open(known_hosts, "w") as fh:
            fh.writelines(f"{outputs['nodeIps'][n]} {k}\n" for n, k in outputs["nodeHostKeys"].items())
        with cf.ThreadPoolExecutor(max_workers=len(outputs["nodeIps"])) as pool:
            return list(pool.map(lambda n: ask_node(outputs, n, key_file, known_hosts), outputs["nodeIps"]))


class OutputsError(Exception):
    """The stack's outputs cannot be read; the message says why."""


def stack_outputs(stack: str, project: Path = PROJECT) -> dict:
    """The stack's outputs, secrets included, through the project's Pulumi environment (as `make up`)."""
    # scripts/pulumi-env would generate a passphrase where none is: a new one decrypts nothing.
    if not (project / ".pulumi-passphrase").is_file() and not os.environ.get("PULUMI_CONFIG_PASSPHRASE"):
        raise OutputsError(f"no stack here: {project} has no .pulumi-passphrase (its stacks' secrets key)")
    script = '. scripts/pulumi-env >&2 && exec pulumi stack output --json --show-secrets --stack "$1"'
    res = subprocess.run(["bash", "-c", script, "hapx-status", stack], cwd=project, capture_output=True,
                         text=True, timeout=300)
    if res.returncode != 0:
        raise OutputsError(f"cannot read the outputs of stack {stack}:\n{res.stderr.strip()}")
    return json.loads(res.stdout)


def main(argv: Optional[list[str]] = None) -> int:
    """Print the pair's status; exit 0 healthy, 1 degraded, 2 when the outputs cannot be read."""
    parser = argparse.ArgumentParser(prog="python -m hapx.cli.status", description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--stack", help="read the outputs of this stack (pulumi stack output)")
    source.add_argument("--outputs", type=Path, help="read the outputs from this JSON file")
    args = parser.parse_args(argv)
    try:
        outputs = json.loads(args.outputs.read_text()) if args.outputs else stack_outputs(args.stack)
        missing = {"vip", "nodeIps", "nodeHostKeys", "sshUser", "sshPrivateKey", "backendMasters"} - set(outputs)
    except (OSError, ValueError, OutputsError) as err:
        print(f"hapx.status: {err}", file=sys.stderr)
        return UNKNOWN
    if missing:
        print(f"hapx.status: the outputs lack {', '.join(sorted(missing))}", file=sys.stderr)
        return UNKNOWN
    reports = collect(outputs)
    verdict = assess(outputs, reports)
    sys.stdout.write(format_screen(outputs, reports, verdict))
    return verdict.code


if __name__ == "__main__":
    sys.exit(main())
