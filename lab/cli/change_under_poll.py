"""Apply a changed stack configuration to the running lab while a client polls the VIP (a
benchmark, not a test): how many requests a day-2 change costs.

    lab/change-under-poll --config FILE [--backend containers] [--interval 0.05]

Renders FILE (a Pulumi.<stack>.yaml for the lab's nodes, e.g. a copy of Pulumi.containers.yaml
with other timers) with the running lab's secrets (`hapx.cli.render --secrets-from`), applies it with
the plan's steps (`labctl steps --render`) while a client inside the lab's namespace polls
https://VIP:6443/healthz every --interval seconds, and prints the requests, the failed ones,
every outage, where the VIP ran before and after, the memberships corosync formed on each node
and the totem timers now running. Exits 1 if a step failed, a connection was refused, or
requests failed for longer than a move of the VIP breaks those in flight.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from lab.cli import run
from lab.labclient import PROJECT, Lab, apply_under_poll, render_with_secrets, served_throughout

MOVE_BLIP_S = 1.0  # the longest run of requests a move of the VIP may break in flight (native speed)


def main() -> int:
    parser = argparse.ArgumentParser(prog="lab/change-under-poll", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[1:]))
    parser.add_argument("--config", required=True, help="the stack file to apply (Pulumi.<stack>.yaml)")
    parser.add_argument("--stack", default="containers", help="the stack name the file is rendered as")
    parser.add_argument("--backend", choices=("containers",), default="containers")
    parser.add_argument("--interval", type=float, default=0.05, help="the client's probe interval (s)")
    args = parser.parse_args()
    lab = Lab(args.backend)
    first = next(iter(lab.nodes))

    def timers() -> str:
        keys = ("token", "consensus", "interface.0.knet_ping_interval", "interface.0.knet_ping_timeout")
        return " ".join(lab.exec(first, f"sudo corosync-cmapctl -g runtime.config.totem.{k}", check=False)
                        .stdout.strip().split(" = ")[-1] for k in keys)

    with tempfile.TemporaryDirectory(prefix="change-under-poll-", dir=PROJECT / "build") as tmp:
        out = render_with_secrets(lab, args.stack, Path(args.config), Path(tmp) / "render")
        before, vip_before, timers_before = lab.membership_changes(), lab.vip_node(), timers()
        print(f"change-under-poll: VIP on {vip_before}; token/consensus/knet ping interval/timeout "
              f"{timers_before} ms; applying {args.config}", flush=True)
        t0 = time.monotonic()
        res, summary = apply_under_poll(lab, out, args.interval)
        took = time.monotonic() - t0
    lab = Lab(args.backend)
    after, vip_after = lab.membership_changes(), lab.vip_node()
    changes = {n: after[n] - before[n] for n in lab.nodes}
    if res.returncode != 0:
        print(res.stdout + res.stderr, file=sys.stderr)
    outages = ", ".join(f"{o['outage_s']:.2f} s" for o in summary["outages"]) or "none"
    print(f"change-under-poll: steps {'ok' if res.returncode == 0 else 'FAILED'} in {took:.0f} s; "
          f"timers now {timers()} ms; VIP {vip_before} -> {vip_after}; memberships formed {changes}; "
          f"{summary['probes']} requests, {summary['failed']} failed ({summary['refused']} refused, "
          f"{summary['broken']} broken in flight as the VIP moved); outages: {outages}")
    return 0 if res.returncode == 0 and served_throughout(summary, MOVE_BLIP_S) else 1


if __name__ == "__main__":
    run(main)
