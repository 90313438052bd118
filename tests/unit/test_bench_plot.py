"""lab/bench-plot: saved benchmark results become one panel per backend and kind (the PNG itself: validate tier)."""

import pytest

from lab.cli import bench_plot


def result(backend: str, hard: list, switchover: list) -> dict:
    return {"backend": backend, "timers_ms": "300 360", "date": "2026-11-28T13:00:00+00:00",
            "runs": {"hard": [{"outage_s": v} for v in hard], "switchover": [{"outage_s": v} for v in switchover]}}


def test_panels_per_backend_and_kind_with_their_medians():
    panels = bench_plot.panels([result("vm", [6.0, 8.0, 7.0], []), result("containers", [0.8, 0.9], [0.0, 0.1, 0.0])])
    assert [(p["backend"], p["kind"]) for p in panels] == [("containers", "hard"), ("containers", "switchover"),
                                                          ("vm", "hard")]
    assert [p["median"] for p in panels] == pytest.approx([0.85, 0.0, 7.0])
    assert panels[2]["outages"] == [6.0, 8.0, 7.0]  # run order kept


def test_a_benchmark_cut_short_says_so():
    cut = {**result("containers", [0.8], []), "complete": False}
    assert bench_plot.panels([cut])[0]["note"].endswith(", cut short")
    assert not bench_plot.panels([result("containers", [0.8], [])])[0]["note"].endswith("cut short")
