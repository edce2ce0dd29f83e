"""Prep speed and memory: `charrnn prep` on a 100 MB mixed-Unicode corpus (ASCII English, CJK, accented
Latin, emoji) in a fresh process, peak RSS measured; against a plain Python encoder (read it all, dict
lookup per character) on a 10 MB slice of the same text."""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import SHAKESPEARE, report

CJK = [chr(c) for c in range(0x4E00, 0x4E00 + 3000)]
EMOJI = [chr(c) for c in range(0x1F600, 0x1F650)] + ["👩🏽‍💻", "🇫🇷"]
ACCENTED = list("àâäéèêëîïôöùûüçœæ ÀÉÈÇ ñ ß ø å")


def build_corpus(path: Path, megabytes: int) -> None:
    """English from tiny-shakespeare interleaved with generated CJK, accented and emoji lines."""
    rng = random.Random(0)
    english = SHAKESPEARE.read_text().splitlines(keepends=True)
    target = megabytes * 1_000_000
    with path.open("w", encoding="utf-8") as f:
        written = 0
        while written < target:
            parts = [rng.choice(english) for _ in range(20)]
            parts.append("".join(rng.choice(CJK) for _ in range(rng.randint(10, 60))) + "。\n")
            parts.append("".join(rng.choice(ACCENTED) for _ in range(30)) + "\n")
            parts.append(" ".join(rng.choice(EMOJI) for _ in range(8)) + "\n")
            block = "".join(parts)
            f.write(block)
            written += len(block.encode())


def naive_mb_per_sec(path: Path, megabytes: int) -> float:
    t = time.perf_counter()
    text = path.read_bytes()[: megabytes * 1_000_000].decode("utf-8", errors="ignore")
    stoi = {c: i for i, c in enumerate(sorted(set(text)))}
    ids = np.array([stoi[c] for c in text], dtype=np.uint16)
    assert len(ids) == len(text)
    return megabytes / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--megabytes", type=int, default=100)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "mixed.txt"
        build_corpus(corpus, args.megabytes)
        size = corpus.stat().st_size
        probe = (
            "import resource, subprocess, sys, time; t = time.perf_counter(); "
            "subprocess.run(sys.argv[1:], check=True, capture_output=True); "
            "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
        )
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                probe,
                sys.executable,
                "-m",
                "charrnn",
                "prep",
                str(corpus),
                "-o",
                str(Path(tmp) / "ds"),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        seconds, rss_kb = float(out[0]), int(out[1])
        naive = naive_mb_per_sec(corpus, 10)
    mbps = size / 1e6 / seconds
    report(
        "prep_speed",
        {
            "corpus_mb": round(size / 1e6, 1),
            "seconds": round(seconds, 2),
            "charrnn_mb_per_sec": round(mbps, 1),
            "peak_rss_mb": round(rss_kb / 1024, 1),
            "naive_mb_per_sec": round(naive, 1),
            "ratio": round(mbps / naive, 2),
            "note": "seconds include interpreter start-up and imports",
        },
    )


if __name__ == "__main__":
    main()
