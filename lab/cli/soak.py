"""Idle soak on the hapx lab (a benchmark, not a test): does the cluster stay put with its timers?

    lab/soak [--backend containers|vm] [--minutes 10] [--load]

Counts corosync's membership changes on every node ("A new membership ... was formed" in its
journal) over the soak, notes where the VIP runs before and after, and polls the VIP once a
second. Prints the figures; exits 1 on any membership change, VIP move or failed request.
Uses the lab that is up (`make containers`, `make lab`). --load keeps every core of the host
busy for the whole soak (one CPU burner per core, at the nodes' own priority), as a busy
hypervisor would (`make soak-loaded`).
"""

from __future__ import annotations

import argparse
import time

from lab.backend import BACKENDS
from lab.cli import run
from lab.labclient import Lab, Poller, burners, stop_burners


def main() -> int:
    parser = argparse.ArgumentParser(prog="lab/soak", description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=tuple(BACKENDS), default="containers")
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--load", action="store_true", help="keep every core of the host busy meanwhile")
    args = parser.parse_args()
    lab = Lab(args.backend)
    first = next(iter(lab.nodes))
    token = lab.exec(first, "sudo corosync-cmapctl -g runtime.config.totem.token").stdout.strip()
    consensus = lab.exec(first, "sudo corosync-cmapctl -g runtime.config.totem.consensus").stdout.strip()
    before, vip_before = lab.membership_changes(), lab.vip_node()
    load = burners() if args.load else []
    print(f"soak: {args.minutes:g} min {'with every core busy' if load else 'idle'}; {token}; {consensus}; "
          f"VIP on {vip_before}", flush=True)
    poller = Poller(lab, interval=1.0, max_seconds=args.minutes * 60 + 300)
    try:
        poller.wait_for("ready", timeout=60)
        end = time.monotonic() + args.minutes * 60
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(60, left))
            print(f"soak: {max(0, left - 60) / 60:4.1f} min left", flush=True)
    finally:
        stop_burners(load)
        summary = poller.stop()
    after, vip_after = lab.membership_changes(), lab.vip_node()
    changes = {n: after[n] - before[n] for n in lab.nodes}
    print(f"soak: membership changes {changes}; VIP {vip_before} -> {vip_after}; "
          f"{summary['probes']} requests, {summary['failed']} failed")
    return 0 if not any(changes.values()) and vip_after == vip_before and summary["failed"] == 0 else 1


if __name__ == "__main__":
    run(main)
