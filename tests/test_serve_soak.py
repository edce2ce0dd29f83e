"""bench/serve_soak.py for half a minute with a small model (the 10-minute 2×512 run is the bench's,
run alone): every kind of request in its mix ran, and none got a 5xx or a dropped connection."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def test_the_soak_runs_every_kind_of_request_without_a_5xx() -> None:
    args = ["--minutes", "0.5", "--layers", "1", "--hidden", "64", "--score-chars", "5000"]
    r = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "serve_soak.py"), *args, "--no-record"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.splitlines()[-1])
    assert out["every_kind_ran"], out["requests"]
    assert out["no_5xx"]["5xx"] == 0, out["requests"]
    assert out["no_5xx"]["transport_errors"] == 0, out["requests"]
    assert all(v > 0 for v in out["longest_step_gap_ms"].values()), out["longest_step_gap_ms"]
    assert out["rss_mb"]["reference"] > 0 and out["ttfc"]["without_heavy"]["n"] > 0
