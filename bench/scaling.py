"""Several CPU processes: training throughput of 1 process (all cores) against 2 processes under
torchrun (gloo, one thread each), at the same global batch (64 streams × seq 100, 2×512 LSTM)."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import SHAKESPEARE, report


def chars_per_sec(out: Path) -> float:
    recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    rates = [r["chars_per_sec"] for r in recs if "chars_per_sec" in r]
    return statistics.median(rates[1:])  # the first window includes warm-up


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--precision", default="auto")
    args = ap.parse_args()
    common = [
        "train",
        str(SHAKESPEARE),
        "--max-steps",
        str(args.steps),
        "--eval-every",
        "100000",
        "--eval-chars",
        "1000",
        "--log-every",
        "10",
        "--quiet",
        "--precision",
        args.precision,
    ]
    with tempfile.TemporaryDirectory() as tmp:
        one, two = Path(tmp, "one"), Path(tmp, "two")
        subprocess.run(
            [sys.executable, "-m", "charrnn", *common, "--batch-size", "64", "--out", str(one)],
            check=True,
        )
        subprocess.run(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--standalone",
                "--nproc-per-node",
                "2",
                "-m",
                "charrnn",
                *common,
                "--batch-size",
                "32",
                "--out",
                str(two),
            ],
            check=True,
        )
        c1, c2 = chars_per_sec(one), chars_per_sec(two)
    report(
        "scaling_cpu",
        {
            "global_batch": "64 x 100",
            "precision": args.precision,
            "one_process_chars_per_sec": round(c1),
            "two_processes_chars_per_sec": round(c2),
            "one_process_steps_per_sec": round(c1 / 6400, 3),
            "two_processes_steps_per_sec": round(c2 / 6400, 3),
            "ratio": round(c2 / c1, 3),
        },
    )


if __name__ == "__main__":
    main()
