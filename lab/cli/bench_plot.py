"""Draw saved failover benchmark results (lab/bench-failover's JSON) as one PNG.

    lab/bench-plot [--out build/bench/failover.png] RESULT.json...

Each run's outage is a bar, one panel per backend (containers, vm) and kind (hard node loss,
planned switchover), the median marked. Needs matplotlib (a dev requirement: .venv has it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from lab.cli import run

KINDS = (("hard", "hard node loss"), ("switchover", "planned switchover"))
BACKENDS = ("containers", "vm")
LABELS = {"containers": "containers (native speed)", "vm": "VMs (software emulation)"}


def panels(results: list[dict]) -> list[dict]:
    """One panel per backend and kind that has runs: the outages in run order and their median."""
    out = []
    for res in sorted(results, key=lambda r: BACKENDS.index(r["backend"]) if r["backend"] in BACKENDS else 9):
        for kind, label in KINDS:
            outages = [r["outage_s"] for r in res["runs"].get(kind, [])]
            if outages:
                out.append({"backend": res["backend"], "kind": kind,
                            "title": f"{LABELS.get(res['backend'], res['backend'])}: {label}",
                            "note": f"token/consensus {res.get('timers_ms', '?')} ms, {res.get('date', '')[:10]}"
                                    + (f", {res['placement']}" if res.get("placement") else "")
                                    + (f", host load: {res['host_load']}"
                                       if res.get("host_load", "none added") != "none added" else "")
                                    + ("" if res.get("complete", True) else ", cut short"),
                            "outages": outages, "median": statistics.median(outages)})
    return out


def draw(panel_list: list[dict], out: Path) -> None:
    """The PNG: one row per panel, bars per run, the median as a line with its value."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(panel_list), 1, figsize=(8, 2.3 * len(panel_list)), squeeze=False)
    for ax, p in zip(axes[:, 0], panel_list, strict=True):
        runs = range(1, len(p["outages"]) + 1)
        bars = ax.bar(runs, p["outages"], color="#d9534f" if p["kind"] == "hard" else "#5b8def", width=0.7)
        # Every run's value on its bar: a run without any outage still shows (as 0).
        ax.bar_label(bars, labels=[f"{v:.2f}".rstrip("0").rstrip(".") for v in p["outages"]], fontsize=6, padding=1)
        ax.axhline(p["median"], color="black", linestyle="--", linewidth=1)
        top = max(max(p["outages"]), p["median"], 0.1)
        ax.set_ylim(0, top * 1.45)
        ax.text(0.995, 0.96, f"median {p['median']:.2f} s (dashed), max {max(p['outages']):.2f} s",
                transform=ax.transAxes, va="top", ha="right", fontsize=9,
                bbox={"facecolor": "white", "edgecolor": "0.7", "boxstyle": "round,pad=0.2"})
        ax.set_title(f"{p['title']}  ({p['note']})", fontsize=10, loc="left")
        ax.set_ylabel("outage (s)")
        ax.set_xticks(list(runs))
        ax.tick_params(axis="x", labelsize=7)
    axes[-1, 0].set_xlabel("run")
    fig.suptitle("hapx failover: how long a client polling the VIP lost it, each run", fontsize=11)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100, metadata={"Software": None})
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(prog="lab/bench-plot", description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path, help="JSON written by lab/bench-failover")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "build" / "bench"
                        / "failover.png")
    args = parser.parse_args()
    try:
        found = panels([json.loads(p.read_text()) for p in args.results])
    except (OSError, ValueError, KeyError) as err:
        print(f"bench-plot: {err}", file=sys.stderr)
        return 1
    if not found:
        print("bench-plot: no runs in the results given", file=sys.stderr)
        return 1
    draw(found, args.out)
    print(f"bench-plot: {len(found)} panel(s) drawn to {args.out}")
    return 0


if __name__ == "__main__":
    run(main)
