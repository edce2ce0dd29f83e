"""Shared by the bench scripts: machine description, matmul peaks, timing, and the results file.

Every figure a bench reports is a ratio against a plain baseline run in the same process, because
these machines are shared and absolute times drift; the peaks let throughput be read as a fraction.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results.jsonl"
SHARED_CORPUS = ROOT.parent / "shared" / "corpora" / "tinyshakespeare.txt"


def __getattr__(name: str) -> Path:
    """`from common import SHAKESPEARE`: the standard corpus, from $CHARRNN_CORPUS or ../shared, or
    a one-line exit saying how to get it (the benchmarks that need no corpus never ask)."""
    if name != "SHAKESPEARE":
        raise AttributeError(name)
    path = Path(os.environ.get("CHARRNN_CORPUS") or SHARED_CORPUS)
    if not path.is_file():
        sys.exit(
            f"bench: {path} is missing; get tiny-shakespeare (corpora/README.md says where) "
            "and point CHARRNN_CORPUS at it"
        )
    return path


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
    }


def timeit(fn: Callable[[], object], repeat: int = 5, warmup: int = 1) -> float:
    """Median wall seconds of fn over `repeat` runs after `warmup`."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def matmul_peaks(n: int = 1024) -> dict:
    """Measured GFLOP/s of an n×n matmul in fp32 and bf16 (the machine's practical peaks)."""
    import torch

    out = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        sec = timeit(lambda a=a, b=b: a @ b, repeat=20, warmup=3)
        out[f"matmul_{name}_gflops"] = round(2 * n**3 / sec / 1e9, 1)
    return out


def report(bench: str, figures: dict, **extra: object) -> dict:
    """Print one JSON object and append it to bench/results.jsonl."""
    rec = {
        "bench": bench,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        **figures,
        **extra,
    }
    line = json.dumps(rec)
    print(line)
    with RESULTS.open("a") as f:
        f.write(line + "\n")
    sys.stdout.flush()
    return rec
