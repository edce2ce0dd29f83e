"""`make bench`: the quick benchmarks in sequence (about 15 minutes on 2 cores). The long quality runs
(10 and 60 minute budgets) are `python bench/quality.py --budget 10m` and `--budget 60m`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
QUICK = [
    "matmul.py",
    "startup.py",
    "sample_speed.py",
    "novelty_speed.py",
    "score_speed.py",
    "serve_load.py",
    "prep_speed.py",
    "train_throughput.py",
    "bf16_quality.py",
]

if __name__ == "__main__":
    for script in QUICK:
        print(f"# {script}", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, str(HERE / script)], check=True, cwd=HERE)
