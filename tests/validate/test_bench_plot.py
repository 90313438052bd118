"""lab/bench-plot draws saved benchmark results with matplotlib: a real PNG, and a refusal of empty results."""

import json
import subprocess
import sys

from tests.conftest import PROJECT
from tests.unit.test_bench_plot import result

SCRIPT = PROJECT / "lab" / "bench-plot"


def test_saved_results_become_a_png(tmp_path):
    saved = tmp_path / "containers.json"
    saved.write_text(json.dumps(result("containers", [0.8, 0.9, 0.85], [0.0, 0.1])))
    out = tmp_path / "failover.png"
    res = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out), str(saved)], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps(result("containers", [], [])))
    res = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path / "x.png"), str(empty)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 1 and "no runs" in res.stderr
