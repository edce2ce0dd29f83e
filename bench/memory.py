"""Training memory does not grow with the corpus: peak RSS of `charrnn train` on a 5 MB and a 500 MB
dataset (same model, same steps), each in a fresh process. The ids are memory-mapped, so only the pages
a batch touches are read."""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from common import SHAKESPEARE, report

PROBE = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def make_corpus(path: Path, megabytes: int) -> None:
    """Tiny-shakespeare repeated (with a running counter, so no two copies are identical)."""
    base = SHAKESPEARE.read_text()
    with path.open("w") as f:
        n, i = 0, 0
        while n < megabytes * 1_000_000:
            block = f"== copy {i} ==\n" + base
            f.write(block)
            n, i = n + len(block), i + 1


def peak_rss_mb(*args: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, sys.executable, "-m", "charrnn", *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return int(out.split()[-1]) / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=50)
    args = ap.parse_args()
    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mb in (5, 500):
            text, ds = Path(tmp, f"c{mb}.txt"), Path(tmp, f"ds{mb}")
            make_corpus(text, mb)
            figures[f"prep_{mb}mb_peak_rss_mb"] = round(
                peak_rss_mb("prep", str(text), "-o", str(ds)), 1
            )
            text.unlink()
            figures[f"train_{mb}mb_peak_rss_mb"] = round(
                peak_rss_mb(
                    "train",
                    str(ds),
                    "--max-steps",
                    str(args.steps),
                    "--eval-every",
                    str(args.steps),
                    "--eval-chars",
                    "200000",
                    "--out",
                    str(Path(tmp, f"run{mb}")),
                    "--quiet",
                ),
                1,
            )
    figures["train_rss_ratio_500_over_5"] = round(
        figures["train_500mb_peak_rss_mb"] / figures["train_5mb_peak_rss_mb"], 3
    )
    report("memory", {**figures, "model": "lstm 2x512 (defaults)", "steps": args.steps})


if __name__ == "__main__":
    main()
