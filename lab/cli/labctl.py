"""hapx lab: the pair, for real, inside a network namespace of its own. Two backends:

  containers (default)  each node a systemd-nspawn container booted from the lab image's tree,
                        cloud-init seeded with the rendered NoCloud files, the plan's steps
                        over SSH: native speed, where failover is measured
  vm                    a private libvirtd, and the program itself: `pulumi up --stack lab`
                        creates the network, volumes, cloud-init disks and VMs and runs the
                        bootstrap Commands (software emulation: 10-50 times slower)

    lab/labctl [--backend B] up [--keep-on-failure]  bring the lab up (containers: from
                                              `--render DIR`, default the containers stack;
                                              `--default-timers`: that stack with corosync's
                                              timers at hapx's defaults)
    lab/labctl [--backend B] down             remove everything `up` made (idempotent)
    lab/labctl [--backend B] status           what is up
    lab/labctl [--backend B] exec NODE [-- CMD...]  CMD on NODE over SSH (none: a login)
    lab/labctl [--backend B] client -- CMD... CMD inside the lab's network namespace
    lab/labctl [--backend B] kill NODE        power loss: the node's VM or container dies
    lab/labctl [--backend B] start NODE       power on again
    lab/labctl [--backend B] partition on|off cut / heal the link between the nodes
    lab/labctl [--backend B] vip-node [--ask NODE]  the node that runs the VIP resource
    lab/labctl --backend containers steps [--render DIR]  run the plan's steps again, or
                                              apply DIR (a render made with --secrets-from)
    lab/labctl --backend containers dns-host NAME ADDRESS  the lab's DNS answers NAME with
                                              ADDRESS (a stand-in API server answers there)
    lab/labctl --backend vm pulumi [--timeout S] -- ARGS...  `pulumi ARGS --stack lab` against the lab
    lab/labctl --backend vm virsh ARGS...     virsh against the lab's libvirtd

The backend can also be chosen with HAPX_LAB_BACKEND. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import signal
import subprocess

from hapx.crm import CRM  # standard library only, like this program
from lab import labnet
from lab.backend import BACKENDS, Backend, backend
from lab.cli import run
from lab.labnet import LabError, log


def require_up(b: Backend) -> dict:
    state = b.load()
    if not state.get("lab") or not labnet.ns_exists(state.get("ns", "")):
        raise LabError(f"the {b.NAME} lab is not up (lab/labctl --backend {b.NAME} up)")
    return state


def words_of(args: list[str]) -> list[str]:
    return args[1:] if args[:1] == ["--"] else args


def remote_command(words: list[str]) -> str:
    """One word is a shell command line as it is (like ssh); several are quoted one by one."""
    return words[0] if len(words) == 1 else shlex.join(words)


def vip_node(state: dict, ask: str | None = None, timeout: float = 30) -> str | None:
    """The node that runs the VIP resource, asked of `ask` or of the first node that answers."""
    res = None
    for node in [ask] if ask else state["lab"]["nodes"]:
        res = labnet.ssh(state, node, f"sudo crm_resource --locate --resource {CRM.vip}", timeout=timeout, check=False)
        if res.returncode == 0:
            m = re.search(r"is running on: (\S+)", res.stdout)
            return m.group(1) if m else None
    raise LabError(f"no node answered `crm_resource --locate`: {res.stdout}{res.stderr}".rstrip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lab/labctl", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[1:]))
    parser.add_argument("--backend", default=os.environ.get("HAPX_LAB_BACKEND", "containers"),
                        choices=tuple(BACKENDS))
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("up", help="bring the lab up")
    p.add_argument("--render", help="containers: the render output to boot (default: render the containers stack)")
    p.add_argument("--default-timers", action="store_true",
                   help="containers: the containers stack with corosync's timers at hapx's defaults")
    p.add_argument("--keep-on-failure", action="store_true", help="leave a failed lab up to debug it")
    sub.add_parser("down", help="remove everything the lab made")
    sub.add_parser("status", help="what is up")
    for name, what in (("exec", "run a command on a node over SSH"),):
        p = sub.add_parser(name, help=what)
        p.add_argument("node")
        p.add_argument("command", nargs=argparse.REMAINDER)
    p = sub.add_parser("client", help="run a command inside the lab's network namespace")
    p.add_argument("command", nargs=argparse.REMAINDER)
    for name, what in (("kill", "power loss of a node"), ("start", "power a node on again")):
        sub.add_parser(name, help=what).add_argument("node")
    sub.add_parser("partition", help="cut (on) or heal (off) the link between the nodes").add_argument(
        "state", choices=("on", "off"))
    p = sub.add_parser("vip-node", help="print the node running the VIP (exit 3: it runs nowhere)")
    p.add_argument("--ask", metavar="NODE", help="the node to ask (default: the first that answers)")
    p = sub.add_parser("steps", help="containers: run the plan's steps again, or apply another render")
    p.add_argument("--render", help="a render of the same nodes made with --secrets-from the running one")
    p = sub.add_parser("dns-host", help="containers: point a name at another address in the lab's DNS "
                                        "(a stand-in answers there)")
    p.add_argument("name")
    p.add_argument("address")
    p = sub.add_parser("pulumi", help="vm: pulumi against the lab stack")
    p.add_argument("--timeout", type=float, help="seconds before pulumi is interrupted (its stack lock cleared)")
    p.add_argument("args", nargs=argparse.REMAINDER)
    p = sub.add_parser("virsh", help="vm: virsh against the lab's libvirtd")
    p.add_argument("args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)

    # SIGTERM and SIGHUP unwind like Ctrl-C, so `up` cleans up after itself.
    def interrupted(signum, _frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGHUP, interrupted)
    try:
        if os.geteuid() != 0:
            raise LabError("must run as root (network namespaces, libvirtd, containers)")
        b = backend(args.backend)
        return run_command(b, args)
    except LabError as err:
        log(f"error: {err}")
        return 1
    except KeyboardInterrupt:
        log("interrupted")
        return 130


def run_command(b: Backend, args: argparse.Namespace) -> int:
    """Dispatch one subcommand to the backend."""
    if args.cmd == "up":
        options = {"render": args.render} if args.render else {}
        if args.default_timers:
            if b.NAME != "containers" or args.render:
                raise LabError("--default-timers renders the containers stack: containers only, without --render")
            options["default_timers"] = True
        state = b.up(keep_on_failure=args.keep_on_failure, **options)
        lab = state["lab"]
        print(f"hapx {b.NAME} lab is up: " + ", ".join(f"{n} {ip}" for n, ip in lab["nodes"].items())
              + f", VIP {lab['vip']}")
        for k, v in state.get("timings", {}).items():
            print(f"  {k:<45} {v:7.1f} s")
        return 0
    if args.cmd == "down":
        b.down()
        return 0
    if args.cmd == "status":
        state = b.load()
        info = {"backend": b.NAME, "up": bool(state.get("lab")) and labnet.ns_exists(state.get("ns", "")),
                "namespace": state.get("ns"), "lab": state.get("lab"), "timings": state.get("timings")}
        if info["lab"]:
            info["lab"] = {k: v for k, v in info["lab"].items() if k != "stats_password"}
        print(json.dumps(info, indent=2))
        return 0 if info["up"] else 3
    state = require_up(b)
    if args.cmd == "exec":
        words = words_of(args.command)
        argv = labnet.ssh_argv(state, args.node)
        return subprocess.call(argv + (["--", remote_command(words)] if words else ["-t"]))
    if args.cmd == "client":
        words = words_of(args.command)
        if not words:
            raise LabError("no command given")
        return subprocess.call(labnet.in_ns(state["ns"], words))
    if args.cmd == "kill":
        b.kill(state, args.node)
        return 0
    if args.cmd == "start":
        b.start(state, args.node)
        return 0
    if args.cmd == "partition":
        labnet.isolate_ports(state["ns"], list(b.ports(state).values()), args.state == "on")
        log(f"partition {args.state}: the nodes {'cannot' if args.state == 'on' else 'can'} reach each other")
        return 0
    if args.cmd == "vip-node":
        node = vip_node(state, ask=args.ask)
        print(node or "nowhere")
        return 0 if node else 3
    if args.cmd == "steps":
        if not hasattr(b, "steps"):
            raise LabError("steps: the VM lab runs its steps through `pulumi up` (labctl --backend vm pulumi -- up)")
        b.steps(state, args.render)
        return 0
    if args.cmd == "dns-host":
        if not hasattr(b, "dns_host"):
            raise LabError("dns-host: the VM lab's DNS is the libvirt network's (virsh net-update)")
        b.dns_host(state, args.name, args.address)
        return 0
    if args.cmd == "pulumi":
        if not hasattr(b, "pulumi"):
            raise LabError("pulumi: only the VM lab runs the program through the engine")
        res = b.pulumi(state, *words_of(args.args), timeout=args.timeout or b.UP_TIMEOUT_S, check=False, echo=True)
        if res.returncode == 0 and words_of(args.args)[:1] in (["up"], ["refresh"]):
            b.refresh_facts(state)
        return res.returncode
    if args.cmd == "virsh":
        if not hasattr(b, "virsh"):
            raise LabError("virsh: only the VM lab has a libvirtd")
        return subprocess.call(b.in_libvirtd(state, ["virsh", "-c", "qemu:///system", *words_of(args.args)]))
    raise LabError(f"unknown command {args.cmd}")


if __name__ == "__main__":
    run(main)
