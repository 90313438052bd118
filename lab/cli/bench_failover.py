"""Failover benchmark on the hapx lab (a benchmark, not a test): how long clients lose the VIP.

    lab/bench-failover [--backend containers|vm] [--runs 20] [--kind hard|switchover|both]
                       [--interval 0.05] [--load]

A client inside the lab's namespace starts a request to https://VIP:6443/healthz every
--interval seconds (300 ms connect timeout, 1 s in all), each without waiting for the one
before (lab/probe.py watch). Each run takes the node running the VIP away and measures the
outage: from the start of the last good request before the first failure to the start of the
first good one after.
  hard:        `labctl kill` of the active node (a container's init and link, or `virsh
               destroy` of a VM); then `labctl start` and wait (bounded) until it is online in
               the cluster again with HAProxy before the next run.
  switchover:  `crm node standby` of the active node; then `crm node online`.
--load keeps every core of the host busy meanwhile (one CPU burner per core, at the nodes' own
priority), as a busy hypervisor would. Prints each run, and as its last line the summary
(`hard: median X s, max Y s over N runs; switchover: median Z s, W failed requests`). Also
saves every run as it ends to
build/bench/BACKEND.json (--save; "complete" once every run is in), then draws every result
saved there into build/bench/failover.png (lab/bench-plot; the VM's panels appear once `make
bench-vm` has saved its own). Uses the lab that is up; if none is, brings one up and takes it
down at the end.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from lab.backend import BACKENDS
from lab.cli import run
from lab.labclient import (
    CRM,
    LAB_DIR,
    LABCTL,
    PROJECT,
    VENV_PYTHON,
    Lab,
    Poller,
    burners,
    labctl,
    stop_burners,
    wait_until,
)

BENCH_DIR = PROJECT / "build" / "bench"
RECOVER_BOUND_S = 120
REJOIN_BOUND_S = 300

# What the survivor's journal says about a hard failover, first occurrence after the kill. The
# container lab's nodes share the host's clock, so these are comparable with the kill's time.
MILESTONES = (
    ("token", r"\[TOTEM \] A processor failed, forming new configuration"),
    ("membership", r"\[TOTEM \] A new membership \(.*\) was formed\. Members left"),
    ("dc", r"pacemaker-controld\[\d+\]: .*State transition S_ELECTION -> S_INTEGRATION"),
    ("sched", r"pacemaker-schedulerd\[\d+\]: .*Calculated transition"),
    ("vip", rf"pacemaker-controld\[\d+\]: .*Result of (start|migrate_from) operation for {CRM.vip} on \S+: ok"),
)
REASK = "Re-asking for the CIB"
REASK_SLEEP_S = 1.0  # Pacemaker 2.1's sleep(1) before it asks again


def measure(lab: Lab, action, restore, label: str, expect_drop: bool, interval: float) -> dict:
    """One run: poll, take the active node away with `action(node)`, measure, then `restore(node)`."""
    active = lab.vip_node()
    if not active:
        raise RuntimeError("the VIP runs nowhere")
    survivor = lab.other(active)
    poller = Poller(lab, interval=interval)
    try:
        poller.wait_for("ready", timeout=60)
        mark = poller.mark()
        t0 = time.time()
        t_action = action(active) or t0
        if expect_drop:
            # Watch only the client until it is served again: asking the survivor over SSH
            # (crm_mon) during the failover would take CPU from the Pacemaker it measures.
            poller.wait_for("down", timeout=RECOVER_BOUND_S, after=mark)
            poller.wait_for("up", timeout=RECOVER_BOUND_S, after=mark)
        # Done when the VIP runs on the survivor and answers again (or never dropped).
        wait_until("VIP on the survivor", lambda: lab.vip_node(ask=survivor) == survivor,
                   timeout=RECOVER_BOUND_S, interval=0.5)
        deadline = time.monotonic() + RECOVER_BOUND_S
        while time.monotonic() < deadline:
            evs = [e for e in poller.events[mark:] if e["event"] in ("down", "up")]
            if not evs or evs[-1]["event"] == "up":
                break
            time.sleep(0.2)
        time.sleep(2)  # a late blip still counts
    finally:
        summary = poller.stop()
    outages = [o for o in summary["outages"] if o["to"] >= t0]
    outage = sum(o["outage_s"] for o in outages)
    if summary["still_down"]:
        raise RuntimeError(f"{label}: the VIP did not answer again within {RECOVER_BOUND_S}s")
    steps = breakdown(lab, survivor, t_action) if expect_drop else {}
    if steps and outages:
        steps["last_ok"] = outages[0]["from"] - t_action
        steps["served"] = outages[-1]["to"] - t_action
    t_restore = time.monotonic()
    restore(active)
    return {"from": active, "to": survivor, "outage_s": round(outage, 2), "blips": len(outages),
            "failed_probes": summary["failed"], "refused": summary["refused"], "broken": summary["broken"],
            "restore_s": round(time.monotonic() - t_restore, 1), "steps": steps}


def breakdown(lab: Lab, survivor: str, t_kill: float) -> dict:
    """Seconds from the kill to each milestone in the survivor's journal (and pacemaker's
    detail log, for the controller's "Re-asking for the CIB" when its debug output is on)."""
    since = f"@{t_kill - 1:.3f}"
    # The detail log's lines start "Mon DD HH:MM:SS.mmm" in the node's time zone: `date` turns
    # the re-asks' times into epoch seconds, printed as "REASK <epoch>".
    res = lab.exec(survivor, f"sudo journalctl -o short-unix --no-pager --since {since}; "
                             f"sudo grep -h '{REASK}' /var/log/pacemaker/pacemaker.log 2>/dev/null | tail -5 | "
                             "while read -r mon day clock _; do "
                             "echo REASK $(date -d \"$mon $day $clock\" +%s.%N); done",
                   timeout=60, check=False)
    found: dict = {}
    reasks = []
    for line in res.stdout.splitlines():
        if line.startswith("REASK "):
            try:
                reasks.append(float(line.split()[1]))
            except (IndexError, ValueError):
                pass
            continue
        try:
            t = float(line.split(" ", 1)[0])
        except ValueError:
            continue
        if t < t_kill:
            continue
        for name, pattern in MILESTONES:
            if name not in found and re.search(pattern, line):
                found[name] = t - t_kill
    # A re-ask costs a blocking one-second sleep between the new membership and the scheduler:
    # the controller's own line says so when its debug output is on, the gap says so always.
    found["reask"] = ("membership" in found and "sched" in found
                      and (found["sched"] - found["membership"] >= REASK_SLEEP_S
                           or any(found["membership"] - 0.01 <= r - t_kill <= found["sched"] + 0.01 for r in reasks)))
    return found


def steps_line(steps: dict) -> str:
    names = (("last_ok", "last good probe"), ("token", "token lost"), ("membership", "membership"),
             ("dc", "DC elected"), ("sched", "scheduler"), ("vip", "VIP started"), ("served", "served"))
    text = ", ".join(f"{label} {steps[k]:+.2f}" for k, label in names if k in steps)
    return text + (" (re-asked for the CIB: +1 s)" if steps.get("reask") else "")


def hard_kill(lab: Lab):
    def action(node: str) -> float | None:
        return lab.kill(node)

    def restore(node: str) -> None:
        lab.start(node)
        other = lab.other(node)
        # The next run must find HAProxy warm on the standby again, not still starting.
        wait_until(f"{node} online with HAProxy running", lambda: lab.settled(other),
                   timeout=REJOIN_BOUND_S, interval=3)
    return action, restore


def switchover(lab: Lab):
    def action(node: str) -> None:
        lab.exec(lab.other(node), f"sudo crm node standby {node}", timeout=60)

    def restore(node: str) -> None:
        lab.exec(lab.other(node), f"sudo crm node online {node}", timeout=60)
        wait_until(f"{node} out of standby",
                   lambda: 'standby="false"' in _node_line(lab, node), timeout=120, interval=1)
        wait_until(f"{node} running HAProxy again", lambda: lab.settled(lab.other(node)),
                   timeout=REJOIN_BOUND_S, interval=2)
    return action, restore


def _node_line(lab: Lab, node: str) -> str:
    xml = lab.crm_status(lab.other(node))["xml"]
    return next((line for line in xml.splitlines() if f'<node name="{node}"' in line), "")


def run_series(lab: Lab, kind: str, runs: int, interval: float, results: list[dict], keep) -> list[dict]:
    """`runs` runs of one kind, each appended to `results` and kept (`keep()`) as it ends."""
    action, restore = (hard_kill if kind == "hard" else switchover)(lab)
    for i in range(1, runs + 1):
        r = measure(lab, action, restore, f"{kind} run {i}", expect_drop=kind == "hard", interval=interval)
        results.append(r)
        keep()
        print(f"  {kind:<10} run {i}: {r['from']} -> {r['to']}: outage {r['outage_s']:6.2f} s "
              f"({r['blips']} blip(s), {r['failed_probes']} failed probes, {r['refused']} of them refused; "
              f"restore took {r['restore_s']} s)",
              flush=True)
        if r["steps"]:
            print(f"             s after the kill: {steps_line(r['steps'])}", flush=True)
    med = statistics.median(r["outage_s"] for r in results)
    print(f"  {kind:<10} median outage over {runs} runs: {med:.2f} s "
          f"(min {min(r['outage_s'] for r in results):.2f}, max {max(r['outage_s'] for r in results):.2f})",
          flush=True)
    with_steps = [r["steps"] for r in results if r["steps"]]
    if with_steps:
        keys = [k for k in ("last_ok", "token", "membership", "dc", "sched", "vip", "served")
                if all(k in st for st in with_steps)]
        medians = {k: statistics.median(st[k] for st in with_steps) for k in keys}
        print(f"  {kind:<10} medians, s after the kill: {steps_line(medians)}; "
              f"re-asked for the CIB in {sum(1 for st in with_steps if st.get('reask'))} of {len(with_steps)} runs",
              flush=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(prog="lab/bench-failover", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[1:]))
    parser.add_argument("--backend", choices=tuple(BACKENDS), default="containers")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--kind", choices=("hard", "switchover", "both"), default="both")
    parser.add_argument("--interval", type=float, default=0.05, help="the client's probe interval (s)")
    parser.add_argument("--load", action="store_true", help="keep every core of the host busy meanwhile")
    parser.add_argument("--save", type=Path, help="where to write the runs as JSON (default build/bench/BACKEND.json)")
    args = parser.parse_args()
    save = args.save or BENCH_DIR / f"{args.backend}.json"
    results: dict[str, list[dict]] = {}
    saved = {"backend": args.backend, "interval_s": args.interval, "runs": results, "complete": False,
             "host_load": "every core busy" if args.load else "none added",
             "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}

    def keep() -> None:
        """Every run is saved as it ends: a benchmark cut short still leaves its runs to draw."""
        save.parent.mkdir(parents=True, exist_ok=True)
        save.write_text(json.dumps(saved, indent=1) + "\n")

    brought_up = False
    if labctl(args.backend, "status", check=False, timeout=60).returncode != 0:
        print(f"bench-failover: bringing the {args.backend} lab up", flush=True)
        brought_up = True
        if subprocess.run([sys.executable, str(LABCTL), "--backend", args.backend, "up"], timeout=3600).returncode:
            return 1
    load: list = []
    try:
        lab = Lab(args.backend)
        first = next(iter(lab.nodes))
        timers = " ".join(lab.exec(first, f"sudo corosync-cmapctl -g runtime.config.totem.{k}", check=False)
                          .stdout.strip().split(" = ")[-1] for k in ("token", "consensus"))
        print(f"bench-failover: {args.backend}, VIP {lab.vip}, poll every {args.interval * 1000:.0f} ms "
              f"(300 ms connect), token/consensus {timers} ms", flush=True)
        saved["timers_ms"] = timers
        saved["placement"] = placement(lab, first)
        print(f"bench-failover: the VIP's placement: {saved['placement']}; host load: {saved['host_load']}", flush=True)
        load = burners() if args.load else []
        for kind in ["hard", "switchover"] if args.kind == "both" else [args.kind]:
            run_series(lab, kind, args.runs, args.interval, results.setdefault(kind, []), keep)
    except KeyboardInterrupt:
        print("bench-failover: interrupted", file=sys.stderr)
        return 130
    finally:
        stop_burners(load)
        if brought_up:
            subprocess.run([sys.executable, str(LABCTL), "--backend", args.backend, "down"], timeout=900)
    summary = []
    if "hard" in results:
        hard = [r["outage_s"] for r in results["hard"]]
        summary.append(f"hard: median {statistics.median(hard):.2f} s, max {max(hard):.2f} s over {len(hard)} runs")
    if "switchover" in results:
        sw = results["switchover"]
        failed, refused, broken = (sum(r[k] for r in sw) for k in ("failed_probes", "refused", "broken"))
        print(f"switchover: {failed} failed requests in {len(sw)} runs: {refused} refused (the VIP nowhere), "
              f"{broken} broken in flight as the address moved, {failed - refused - broken} other", flush=True)
        summary.append(f"switchover: median {statistics.median(r['outage_s'] for r in sw):.2f} s, "
                       f"{failed} failed requests")
    saved["complete"] = True
    keep()
    print(f"bench-failover: runs saved to {save}", flush=True)
    rc = plot(save.parent)
    print("; ".join(summary), flush=True)
    return rc


def placement(lab: Lab, node: str) -> str:
    """The VIP's placement in the live CIB: off-dc when the rule on #is_dc is there, else sticky."""
    res = lab.exec(node, f"sudo cibadmin --query --xpath \"//rsc_location[@id='{CRM.vip_location}']\"", check=False)
    return "off-dc" if res.returncode == 0 and CRM.vip_location in res.stdout else "sticky"


def plot(directory: Path) -> int:
    """Draw the saved results in `directory` (lab/bench-plot) beside them."""
    # The picture needs matplotlib, a dev requirement: the project's venv has it.
    res = subprocess.run([str(VENV_PYTHON), str(LAB_DIR / "bench-plot"),
                          "--out", str(directory / "failover.png"), *sorted(str(p) for p in directory.glob("*.json"))],
                         timeout=120)
    return res.returncode


if __name__ == "__main__":
    run(main)
