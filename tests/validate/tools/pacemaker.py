"""Pacemaker 2.1 on an offline CIB: an empty CIB as the configure step finds it, crm_verify,
edits a running cluster would make (DC, standby, a rebooted node), and crm_simulate with the
placement and transition graph the tests assert on."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from tests.validate.tools.procs import BASE_PATH, CheckFailed, ToolResult, run, run_ok


def empty_cib(path: Path, *, cluster_name: Optional[str] = None, quorum: bool = True) -> Path:
    """`cibadmin --empty`, made to look like the live CIB the configure step loads into: marked
    quorate (the step runs after wait-members saw quorum) and, given `cluster_name`, with the
    properties the DC writes into cib-bootstrap-options when the cluster forms."""
    result = run_ok(["cibadmin", "--empty"])
    root = ET.fromstring(result.stdout)
    if quorum:
        root.set("have-quorum", "1")
    if cluster_name is not None:
        version = run_ok(["cibadmin", "--version"]).stdout.split()[1]
        props = ET.SubElement(root.find("configuration/crm_config"), "cluster_property_set",
                              id="cib-bootstrap-options")
        for name, value in dc_properties(version, cluster_name).items():
            ET.SubElement(props, "nvpair", id=f"cib-bootstrap-options-{name}", name=name, value=value)
    ET.ElementTree(root).write(path, encoding="unicode")
    return path


def dc_properties(version: str, cluster_name: str) -> dict[str, str]:
    """What Pacemaker's DC sets in cib-bootstrap-options on a corosync cluster."""
    return {"have-watchdog": "false", "dc-version": f"{version}-offline",
            "cluster-infrastructure": "corosync", "cluster-name": cluster_name}


def crm_verify(cib: Path) -> ToolResult:
    """`crm_verify -x cib.xml` finds no error."""
    result = run(["crm_verify", "-x", cib, "-V"])
    if result.returncode != 0 or re.search(r"\berror\b", result.output, re.IGNORECASE):
        raise CheckFailed(f"crm_verify rejected {cib}:\n{result.describe()}")
    return result


def parse_xml(path: Path) -> ET.ElementTree:
    """Parse keeping comments: crmsh stores the crm file's comments in the CIB, and a rewrite
    that dropped them would make the next `crm configure load update` a real change."""
    return ET.parse(path, parser=ET.XMLParser(target=ET.TreeBuilder(insert_comments=True)))


def cib_root(cib: Path) -> ET.Element:
    return parse_xml(cib).getroot()


def cib_state(cib: Path) -> tuple[tuple[str, str, str], str]:
    """(admin_epoch, epoch, num_updates) and the configuration section, serialised."""
    root = cib_root(cib)
    counters = tuple(root.get(k, "") for k in ("admin_epoch", "epoch", "num_updates"))
    return counters, ET.tostring(root.find("configuration"), encoding="unicode")


def simulation_copy(cib: Path, out: Path, *, agent: tuple[str, str, str] = ("ocf", "heartbeat", "Dummy")) -> Path:
    """A copy of the CIB for crm_simulate in which every `systemd:` resource (configuration and
    status) is `ocf:heartbeat:Dummy`: a build host has no systemd to describe systemd agents."""
    tree = parse_xml(cib)
    for el in tree.getroot().iter():
        if el.tag in ("primitive", "lrm_resource") and el.get("class") == "systemd":
            el.set("class", agent[0])
            el.set("provider", agent[1])
            el.set("type", agent[2])
    tree.write(out, encoding="unicode")
    return out


def restore_agents(original: Path, simulated: Path, out: Path) -> Path:
    """`simulated` (a simulation copy after crm_simulate) with each resource's agent set back to
    the one in `original`, in the configuration and in the status: the CIB a node would hold."""
    agents = {p.get("id"): {k: p.get(k) for k in ("class", "provider", "type")}
              for p in cib_root(original).iter("primitive")}
    tree = parse_xml(simulated)
    for el in tree.getroot().iter():
        if el.tag in ("primitive", "lrm_resource") and el.get("id") in agents:
            for key, value in agents[el.get("id")].items():
                if value is None:
                    el.attrib.pop(key, None)
                else:
                    el.set(key, value)
    tree.write(out, encoding="unicode")
    return out


def elect_dc(cib: Path, node: str) -> None:
    """Name `node` the DC in the CIB (crm_simulate leaves dc-uuid unset): crm_mon then reports
    a current DC and whether the cluster has quorum, as on a running cluster."""
    tree = parse_xml(cib)
    uuid = next((s.get("id") for s in tree.getroot().iter("node_state") if s.get("uname") == node), None)
    if uuid is None:
        raise RuntimeError(f"no node_state for {node} in {cib}")
    tree.getroot().set("dc-uuid", uuid)
    tree.write(cib, encoding="unicode")


def forget_node_history(cib: Path, node: str) -> None:
    """Clear a node's resource history and transient attributes, as happens when a node that
    died rejoins after a reboot (its history is replaced by what its executor reports: nothing).
    crm_simulate's --node-up alone keeps the stale history of resources it ran before it died."""
    tree = parse_xml(cib)
    found = False
    for state in tree.getroot().iter("node_state"):
        if state.get("uname") == node:
            found = True
            for lrm in state.findall("lrm"):
                for child in list(lrm):
                    lrm.remove(child)
            for attrs in state.findall("transient_attributes"):
                state.remove(attrs)
    if not found:
        raise RuntimeError(f"no node_state for {node} in {cib}")
    tree.write(cib, encoding="unicode")


def set_standby(cib: Path, out: Path, node: str) -> Path:
    """A copy of `cib` in which `node` is in standby, as `crm node standby NODE` leaves it
    (the permanent node attribute standby=on in the configuration's nodes section)."""
    tree = parse_xml(cib)
    found = [n for n in tree.getroot().iterfind("configuration/nodes/node") if n.get("uname") == node]
    if len(found) != 1:
        raise RuntimeError(f"{len(found)} nodes named {node} in {cib}, not one")
    (el,) = found
    attrs = el.find("instance_attributes")
    if attrs is None:
        attrs = ET.SubElement(el, "instance_attributes", id=f"nodes-{el.get('id')}")
    ET.SubElement(attrs, "nvpair", id=f"nodes-{el.get('id')}-standby", name="standby", value="on")
    tree.write(out, encoding="unicode")
    return out


def set_dc(cib: Path, out: Path, node: str) -> Path:
    """A copy of `cib` in which `node` is the DC (the cib element's dc-uuid names its node id,
    as the controller records it): the scheduler then gives `node` #is_dc=true."""
    tree = parse_xml(cib)
    found = [n for n in tree.getroot().iterfind("configuration/nodes/node") if n.get("uname") == node]
    if len(found) != 1:
        raise RuntimeError(f"{len(found)} nodes named {node} in {cib}, not one")
    tree.getroot().set("dc-uuid", found[0].get("id"))
    tree.write(out, encoding="unicode")
    return out


Placement = dict[str, tuple[str, ...]]


def instance_of(resource_id: str) -> str:
    """The resource an action or status entry belongs to: a clone instance (`haproxy:0`,
    `haproxy:1`, as crm_simulate names instances it creates) is its primitive (`haproxy`,
    the name the status and later transitions use for an anonymous clone's instances)."""
    return re.sub(r":\d+$", "", resource_id)


def _active_nodes(rsc: ET.Element) -> set[str]:
    if rsc.get("active") != "true" or rsc.get("role") not in ("Started", "Promoted", "Unpromoted"):
        return set()
    return {n.get("name") for n in rsc.findall("node")}


def _placement(resources: Optional[ET.Element]) -> Placement:
    """Resource id -> the nodes it runs on (sorted). A clone's instances all carry the
    primitive's id: the primitive and the clone both map to every node an instance runs on."""
    where: dict[str, set[str]] = {}
    if resources is None:
        return {}
    for rsc in resources.iter("resource"):
        where.setdefault(rsc.get("id"), set()).update(_active_nodes(rsc))
    for clone in resources.iter("clone"):
        nodes = where.setdefault(clone.get("id"), set())
        for rsc in clone.iter("resource"):
            nodes.update(_active_nodes(rsc))
    return {rsc: tuple(sorted(nodes)) for rsc, nodes in where.items()}


def crm_mon_placement(cib: Path) -> Placement:
    """Where each resource runs according to `CIB_file=cib crm_mon --one-shot --output-as=xml`."""
    env = {"PATH": BASE_PATH, "CIB_file": str(cib), "LANG": "C.UTF-8"}
    result = run(["crm_mon", "--one-shot", "--inactive", "--output-as=xml"], env=env)
    if result.returncode != 0:
        raise CheckFailed(f"crm_mon could not read {cib}:\n{result.describe()}")
    return _placement(ET.fromstring(result.stdout).find("resources"))


@dataclass
class Graph:
    """The transition graph: each action key (op@node) and the actions it waits for."""

    inputs: dict[str, set[str]]

    @staticmethod
    def parse(path: Path) -> Graph:
        inputs: dict[str, set[str]] = {}
        for synapse in parse_xml(path).getroot().iter("synapse"):
            action = synapse.find("action_set")[0]
            key = f"{action.get('operation_key')}@{action.get('on_node')}"
            deps = inputs.setdefault(key, set())
            for trigger in synapse.iterfind("inputs/trigger"):
                for item in trigger:
                    if item.get("operation_key"):
                        deps.add(f"{item.get('operation_key')}@{item.get('on_node')}")
        return Graph(inputs)

    def key(self, resource: str, op: str, node: str, interval_ms: int = 0) -> str:
        """The one action key of `resource` (or of one of its clone instances, `resource:N`)
        doing `op` on `node`; CheckFailed when the transition has none (or several)."""
        pattern = re.compile(rf"^{re.escape(resource)}(:\d+)?_{re.escape(op)}_{interval_ms}@{re.escape(node)}$")
        keys = sorted(k for k in self.inputs if pattern.match(k))
        if len(keys) != 1:
            raise CheckFailed(f"the transition has {len(keys)} {resource} {op} action(s) on {node}, not one: "
                              f"{keys or sorted(self.inputs)}")
        return keys[0]

    def waits_for(self, action: str, before: str) -> bool:
        """Whether `action` (directly or not) waits for `before` in this transition."""
        seen, todo = set(), [action]
        while todo:
            for dep in self.inputs.get(todo.pop(), ()):
                if dep == before:
                    return True
                if dep not in seen:
                    seen.add(dep)
                    todo.append(dep)
        return False


@dataclass
class Simulation:
    """One crm_simulate run: where resources run afterwards and what the cluster did."""

    result: ToolResult
    placement: Placement
    actions: list[tuple[str, str, str]]  # (resource, operation, node) in the transition
    graph: Graph
    cib_out: Path

    def ops(self, resource: str, node: Optional[str] = None) -> list[tuple[str, str]]:
        """(operation, node) of every action of `resource` or one of its clone instances,
        on `node` if given, probes and recurring monitors (and their cancelling) left out."""
        return [(op, where) for rsc, op, where in self.actions
                if instance_of(rsc) == resource and op not in ("monitor", "cancel") and node in (None, where)]

    def started(self, resource: str) -> list[str]:
        """The nodes `resource` (or one of its clone instances) starts on, sorted."""
        return sorted(where for op, where in self.ops(resource) if op == "start")

    def stopped(self, resource: str) -> list[str]:
        """The nodes `resource` (or one of its clone instances) stops on, sorted."""
        return sorted(where for op, where in self.ops(resource) if op == "stop")


def simulate(cib_in: Path, cib_out: Path, *, up: Sequence[str] = (), fail: Sequence[str] = (),
             inject: Sequence[str] = (), quorum: Optional[bool] = True) -> Simulation:
    """`crm_simulate -x IN -S -O OUT` with node events; the placement is read from its XML
    result and cross-checked with crm_mon on the saved CIB. `quorum` is passed as `-q`:
    corosync's two_node (which keeps a survivor of two quorate) is invisible to crm_simulate."""
    graph_path = cib_out.with_suffix(".graph.xml")
    if quorum is not None:
        # crm_simulate 2.1.5 applies -q only together with a node event: also set it in the input.
        tree = parse_xml(cib_in)
        tree.getroot().set("have-quorum", "1" if quorum else "0")
        cib_in = cib_out.with_suffix(".in.xml")
        tree.write(cib_in, encoding="unicode")
    argv = ["crm_simulate", "-x", cib_in, "-S", "-O", cib_out, "-G", graph_path, "--output-as=xml"]
    if quorum is not None:
        argv += ["-q", "1" if quorum else "0"]
    for node in up:
        argv += ["--node-up", node]
    for node in fail:
        argv += ["--node-fail", node]
    for spec in inject:
        argv += ["--op-inject", spec]
    result = run(argv)
    try:
        doc = ET.fromstring(result.stdout)
    except ET.ParseError:
        doc = None
    status = doc.find("status") if doc is not None else None
    if result.returncode != 0 or status is None or status.get("code") != "0":
        raise CheckFailed(f"crm_simulate failed on {cib_in}:\n{result.describe()}")
    revised = doc.find("revised_cluster_status")
    placement = _placement((revised if revised is not None else doc.find("cluster_status")).find("resources"))
    actions = [(a.get("resource"), a.get("op"), a.get("node")) for a in doc.iterfind("transition/rsc_action")]
    mon = crm_mon_placement(cib_out)
    if mon != placement:
        raise CheckFailed(f"crm_simulate reports {placement} but crm_mon reads {mon} from {cib_out}")
    return Simulation(result, placement, actions, Graph.parse(graph_path), cib_out)


def placed_with(placement: Placement, resource: str, clone: str) -> str:
    """The single node `resource` runs on, which must be one where an instance of `clone`
    runs; CheckFailed when it runs nowhere, on several nodes, or where `clone` does not run."""
    where = placement.get(resource, ())
    if len(where) != 1:
        raise CheckFailed(f"{resource} runs on {list(where) or 'no node'}, not on exactly one: {placement}")
    (node,) = where
    if node not in placement.get(clone, ()):
        raise CheckFailed(f"{resource} runs on {node}, where {clone} does not run "
                          f"({clone} runs on {list(placement.get(clone, ())) or 'no node'}): {placement}")
    return node


def running_on(placement: Placement, clone: str, nodes: Iterable[str]) -> tuple[str, ...]:
    """`clone` runs on exactly `nodes` (an instance on each, none elsewhere)."""
    want = tuple(sorted(nodes))
    if placement.get(clone, ()) != want:
        raise CheckFailed(f"{clone} runs on {list(placement.get(clone, ())) or 'no node'}, "
                          f"not on {list(want)}: {placement}")
    return want


def check_start_waits(sim: Simulation, then: str, first: str, node: str) -> None:
    """In the transition, `then`'s start on `node` waits (directly or through the clone's
    pseudo-actions) for the start of `first` (or its clone instance) on the same node."""
    then_key, first_key = sim.graph.key(then, "start", node), sim.graph.key(first, "start", node)
    if not sim.graph.waits_for(then_key, first_key):
        raise CheckFailed(f"{then_key} does not wait for {first_key}; it waits for "
                          f"{sorted(sim.graph.inputs.get(then_key, ()))}")


def check_untouched(sim: Simulation, resource: str, node: str) -> None:
    """The transition neither stops nor starts `resource` (or its clone instance) on `node`:
    it keeps running there. Probes and recurring monitors do not count."""
    ops = sim.ops(resource, node)
    if ops:
        raise CheckFailed(f"the transition does not leave {resource} running on {node}: {ops} "
                          f"(all actions: {sim.actions})")
