"""The benchmark suite still runs: every benchmark at tiny sizes, finite figures, no speed claims."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from benchmarks.run import BENCHMARKS

REPO = Path(__file__).resolve().parent.parent


def test_smoke_run_produces_every_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "smoke.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--smoke", "--out", str(out)],
        # a guard against a hang, not a speed claim: the smoke run took 150 s on an idle CI
        # machine and 290 s on a loaded one (2026-12-06), too close to the 300 s it had
        cwd=REPO, capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert set(report["benchmarks"]) == set(BENCHMARKS)
    for name, result in report["benchmarks"].items():
        assert result["error"] is None, (name, result["error"])
        assert result["figures"], name
        assert all(math.isfinite(f["value"]) for f in result["figures"]), (name, result["figures"])
    assert report["commit"] and report["machine"]["nproc"] >= 1
