"""Novelty index speed: building (and reloading) the suffix array of tiny-shakespeare's dataset, a
`novelty` query on 2,000-character samples, and the build of a ~100 MB synthetic corpus in a fresh
process with its peak RSS. Baselines: plain `in` over the corpus text for every 20-character window
(the obvious way to get the new-window share) and libdivsufsort's bare sort of the same bytes."""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import SHAKESPEARE, report, timeit

from charrnn.data.corpus_index import CorpusIndex
from charrnn.data.prep import prep

SAMPLE = 2000


def samples(text: str) -> dict[str, str]:
    """A verbatim copy, a copy with 5 % of characters changed, and word salad (the corpus's words in
    random order, much like a small model's output), each SAMPLE characters long."""
    rng = random.Random(0)
    start = rng.randrange(len(text) - SAMPLE)
    copy = text[start : start + SAMPLE]
    edited = list(copy)
    for k in rng.sample(range(SAMPLE), SAMPLE // 20):
        edited[k] = rng.choice("abcdefghijklmnopqrstuvwxyz ")
    words = text.split()
    salad = ""
    while len(salad) < SAMPLE:
        salad += rng.choice(words) + rng.choice("  \n")
    return {"copy": copy, "edited": "".join(edited), "salad": salad[:SAMPLE]}


def synthetic(megabytes: int) -> bytes:
    """tiny-shakespeare repeated, each copy's lines shuffled and one word in 50 upper-cased, so the
    corpus is large and repetitive without being one string over and over."""
    rng = random.Random(1)
    lines = SHAKESPEARE.read_text(encoding="utf-8").splitlines(keepends=True)
    parts, size = [], 0
    while size < megabytes * 1_000_000:
        rng.shuffle(lines)
        block = "".join(lines)
        block = " ".join(w.upper() if rng.random() < 0.02 else w for w in block.split(" "))
        parts.append(block.encode())
        size += len(parts[-1])
    return b"".join(parts)[: megabytes * 1_000_000]


def large_child(megabytes: int) -> None:
    """Run in a fresh process so its peak RSS is this build's alone."""
    data = synthetic(megabytes)
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "sa.npy"
        t = time.perf_counter()
        index = CorpusIndex.build(data, cache)
        build = time.perf_counter() - t
        del index
        t = time.perf_counter()
        index = CorpusIndex.build(data, cache)
        load = time.perf_counter() - t
        assert index.from_cache
        probe = data[5_000_000 : 5_000_000 + SAMPLE].decode("utf-8", "ignore")
        query = timeit(lambda: index.novelty(probe), repeat=3)
    print(json.dumps({"bytes": len(data), "build_s": build, "load_s": load, "query_s": query}))


def small(tmp: Path) -> dict:
    from pydivsufsort import divsufsort

    text = SHAKESPEARE.read_text(encoding="utf-8")
    raw = text.encode()
    prep([str(SHAKESPEARE)], tmp / "ds")
    t = time.perf_counter()
    index = CorpusIndex.for_dataset(tmp / "ds")
    build = time.perf_counter() - t
    assert not index.from_cache
    load = timeit(lambda: CorpusIndex.for_dataset(tmp / "ds"))
    bare_sort = timeit(lambda: divsufsort(raw))
    figures = {
        "corpus_bytes": len(raw),
        "build_s": round(build, 3),
        "load_cached_s": round(load, 3),
        "bare_divsufsort_s": round(bare_sort, 3),
        "build_vs_bare_sort": round(build / bare_sort, 2),
    }
    for name, sample in samples(text).items():
        sec = timeit(lambda s=sample: index.novelty(s), repeat=5)
        nov = index.novelty(sample)
        figures[f"novelty_{name}_ms"] = round(sec * 1000, 2)
        figures[f"novelty_{name}_longest"] = nov.longest_copy
        figures[f"novelty_{name}_new_share"] = round(nov.new_share, 3)
    salad = samples(text)["salad"]
    t = time.perf_counter()
    windows = [salad[i : i + 20] for i in range(len(salad) - 19)]
    new = sum(w not in text for w in windows) / len(windows)
    baseline = time.perf_counter() - t
    assert abs(new - index.novelty(salad).new_share) < 1e-9
    figures["baseline_in_windows_salad_ms"] = round(baseline * 1000, 1)
    figures["novelty_vs_baseline_speedup"] = round(baseline / (figures["novelty_salad_ms"] / 1000))
    lines = [w for w in text.splitlines() if w][:1000]
    figures["has_line_us"] = round(timeit(lambda: [index.has_line(x) for x in lines]) * 1000, 1)
    return figures


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--large-mb", type=int, default=100, help="synthetic corpus size; 0 skips it")
    ap.add_argument("--large-child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.large_child:
        large_child(args.large_child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        figures = small(Path(tmp))
    if args.large_mb:
        cmd = [sys.executable, __file__, "--large-child", str(args.large_mb)]
        out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
        figures |= {
            "large_bytes": out["bytes"],
            "large_build_s": round(out["build_s"], 2),
            "large_load_cached_s": round(out["load_s"], 2),
            "large_novelty_ms": round(out["query_s"] * 1000, 2),
            "large_peak_rss_mb": round(rss / 1e6),
            "large_peak_rss_per_corpus_byte": round(rss / out["bytes"], 1),
        }
    report("novelty_speed", figures, sample_chars=SAMPLE)


if __name__ == "__main__":
    main()
