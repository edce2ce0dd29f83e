"""Do the planned defaults fit other texts and budgets? Trains the defaults and a grid of explicit
shapes on five corpora at several budgets and compares their best validation losses.

The corpora are built at run time from text every machine here has (never copied into the
repository): the licence texts of /usr/share/common-licenses (first 86,000 characters of the
unique files, sorted), this Python's standard library (the built-in corpus), tiny-shakespeare
from ../shared, the first 5,000,000 characters of the sorted /usr/share/doc/*/copyright files, and
(a text the sizing rules were not tuned on) 5,000,000 characters of the rest of the standard
library. Each record carries its corpus's size and sha256.

Resumable: a cell (corpus, budget, run, seed) already in bench/results.jsonl is skipped. One run
at a time; nothing else heavy should run beside it (2 cores).

    python bench/defaults_suite.py --budgets 3m                 # the defaults and the grid, seed 1
    python bench/defaults_suite.py --budgets 3m --second-seeds  # seed 2: defaults + 2 best cells
    python bench/defaults_suite.py --runs layers3 --corpora copyright5m --budgets 3m --seeds 1,2,3
    python bench/defaults_suite.py --budgets 3m --runs defaults --before ../old   # an older charrnn
    python bench/defaults_suite.py --summary                    # the table (markdown on stdout)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import statistics
import subprocess
import sys
import sysconfig
import tempfile
from collections import Counter
from pathlib import Path

from common import RESULTS, ROOT, SHARED_CORPUS, report

BENCH = "defaults_suite"
GRID = {
    "1x256": ["--layers", "1", "--hidden", "256"],
    "2x256": ["--layers", "2", "--hidden", "256"],
    "2x512": ["--layers", "2", "--hidden", "512"],
    "3x512": ["--layers", "3", "--hidden", "512"],
}
RUNS = {"defaults": [], **GRID, "layers3": ["--layers", "3"]}
# Earlier defaults kept for the table: `@before` the long-run rule (an older checkout, --before),
# `@rules1` the plan's first rules (steps alone) and `@rules2` its second (no cap on weights per
# character), where today's rules plan otherwise.
BEFORE = ("before", "rules1", "rules2")
WORK = Path(os.environ.get("CHARRNN_SUITE_DIR") or Path(tempfile.gettempdir()) / "charrnn-suite")


def licences() -> str:
    seen, parts = set(), []
    for p in sorted(Path("/usr/share/common-licenses").iterdir()):
        real = p.resolve()
        if real.is_file() and real not in seen:
            seen.add(real)
            parts.append(real.read_text(encoding="utf-8", errors="replace"))
    return "".join(parts)[:86_000]


# The standard library packages of the built-in corpus, as `make corpus` builds it.
PYSTDLIB_PACKAGES = ("json", "email", "http", "asyncio", "collections")


def pystdlib() -> str:
    stdlib = Path(sysconfig.get_path("stdlib"))
    return "".join(
        f.read_text(encoding="utf-8")
        for p in PYSTDLIB_PACKAGES
        for f in sorted((stdlib / p).rglob("*.py"))
    )


def shakespeare() -> str:
    path = Path(os.environ.get("CHARRNN_CORPUS") or SHARED_CORPUS)
    if not path.is_file():
        sys.exit(f"defaults_suite: {path} is missing; point CHARRNN_CORPUS at tiny-shakespeare")
    return path.read_text(encoding="utf-8")


def first_chars(paths: list[Path], n: int = 5_000_000) -> str:
    """The first `n` characters of these files joined, reading no more of them than that needs."""
    parts, size = [], 0
    for p in paths:
        parts.append(p.read_text(encoding="utf-8", errors="replace"))
        size += len(parts[-1])
        if size >= n:
            break
    return "".join(parts)[:n]


def copyright5m() -> str:
    return first_chars(sorted(Path("/usr/share/doc").glob("*/copyright")))


def pystdlib5m() -> str:
    """A second large text, held out from the rule it judges (MIN_EPOCHS was set on copyright5m):
    the first 5,000,000 characters of the rest of the standard library (sorted paths; not the
    built-in corpus's packages, not site-packages)."""
    stdlib = Path(sysconfig.get_path("stdlib"))
    skip = {*PYSTDLIB_PACKAGES, "site-packages"}
    return first_chars(
        [f for f in sorted(stdlib.rglob("*.py")) if f.relative_to(stdlib).parts[0] not in skip]
    )


CORPORA = {
    "licences": licences,
    "pystdlib": pystdlib,
    "shakespeare": shakespeare,
    "copyright5m": copyright5m,
    "pystdlib5m": pystdlib5m,
}


def corpus(name: str) -> tuple[Path, dict]:
    """The corpus as a file under WORK, and what identifies it (chars, sha256, unigram entropy)."""
    text = CORPORA[name]()
    data = text.encode("utf-8")
    path = WORK / f"{name}.txt"
    WORK.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_bytes() != data:
        path.write_bytes(data)
    counts = Counter(text).values()
    unigram = -sum(n / len(text) * math.log(n / len(text)) for n in counts)
    info = {
        "chars": len(text),
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "vocab": len(counts),
        "unigram_entropy": round(unigram, 4),
    }
    return path, info


def recorded() -> list[dict]:
    if not RESULTS.exists():
        return []
    rows = [json.loads(line) for line in RESULTS.read_text().splitlines() if line.strip()]
    return [r for r in rows if r.get("bench") == BENCH]


def done(rows: list[dict], key: tuple) -> bool:
    return any((r["corpus"], r["sha256"], r["budget"], r["run"], r["seed"]) == key for r in rows)


def train(path: Path, budget: str, run: str, seed: int, code: Path = ROOT) -> dict:
    """One cell: `charrnn train` as a user types it (the charrnn in `code`: this checkout, or an
    older one for the figures before a change), and what its checkpoint says."""
    out = WORK / "run"
    cmd = [
        sys.executable,
        "-m",
        "charrnn",
        "train",
        str(path),
        "--time-budget",
        budget,
        "--rng-seed",
        str(seed),
        *RUNS[run],
        "--out",
        str(out),
        "--overwrite",
        "--json",
        "--quiet",
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=code)
    if r.returncode != 0:
        sys.exit(f"defaults_suite: {' '.join(cmd)} failed:\n{r.stderr}")
    result = json.loads(r.stdout)
    info = subprocess.run(
        [sys.executable, "-m", "charrnn", "inspect", result["last_path"], "--json"],
        capture_output=True,
        text=True,
        check=True,
        cwd=code,
    )
    meta = json.loads(info.stdout)
    model = meta["model"]
    return {
        "command": "charrnn train " + " ".join(cmd[4:-5]),
        "best_val_loss": result["best_val_loss"],
        "best_step": result["best_step"],
        "steps": result["step"],
        "epochs": result["epoch"],
        "shape": f"{model['layers']}x{model['hidden']}",
        "dropout": model["dropout"],
        "weight_drop": model["weight_drop"],
        "eval_every": meta["training"]["config"]["eval_every"],
        "evaluations": len(meta["history"]["val"]["step"]),
        "plan": meta.get("plan"),  # None from a charrnn before plans
    }


def best_cells(rows: list[dict], corpus_name: str, budget: str, n: int = 2) -> list[str]:
    grid = [
        r for r in rows if (r["corpus"], r["budget"]) == (corpus_name, budget) and r["run"] in GRID
    ]
    means = {
        run: statistics.mean(r["best_val_loss"] for r in grid if r["run"] == run)
        for run in {r["run"] for r in grid}
    }
    return sorted(means, key=means.get)[:n]


def summary(rows: list[dict]) -> str:
    lines = [
        "| corpus | budget | earlier defaults (rules: shape: losses) | defaults (shape: losses) | "
        "grid: best cell (losses) | gap | target max(0.02, 2×spread) | met |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in CORPORA:
        for b in _budgets([r for r in rows if r["corpus"] == c]):
            cell = [r for r in rows if (r["corpus"], r["budget"]) == (c, b)]
            d = [r for r in cell if r["run"] == "defaults"]
            best = best_cells(rows, c, b, 1)
            if not d or not best:
                continue
            g = [r for r in cell if r["run"] == best[0]]
            dm = statistics.mean(r["best_val_loss"] for r in d)
            gm = statistics.mean(r["best_val_loss"] for r in g)
            spreads = [_spread(x) for x in (d, g) if len(x) > 1]
            target = max(0.02, 2 * max(spreads)) if spreads else 0.02
            earlier = {t: [r for r in cell if r["run"] == f"defaults@{t}"] for t in BEFORE}
            was = "; ".join(f"{t}: {_shapes(b)}: {_losses(b)}" for t, b in earlier.items() if b)
            lines.append(
                f"| {c} | {b} | {was or '—'} | {_shapes(d)}: {_losses(d)} | {best[0]}: {_losses(g)} | "
                f"{dm - gm:+.4f} | {target:.3f} | {'yes' if dm - gm <= target else 'no'} |"
            )
    grids = [line for b in _budgets(rows) for line in ("", *_grid_table(rows, b))]
    return "\n".join([*lines, *grids, "", *_deep_table(rows)])


def _budgets(rows: list[dict]) -> list[str]:
    return sorted({r["budget"] for r in rows}, key=_seconds)


def _grid_table(rows: list[dict], budget: str) -> list[str]:
    """Every cell of one budget: best validation loss by seed, and the steps made (seed 1's)."""
    runs = ["defaults", *GRID]
    lines = [f"| {budget} | " + " | ".join(runs) + " |", "|---" * (len(runs) + 1) + "|"]
    for c in CORPORA:
        cells = []
        for run in runs:
            got = sorted(
                (r for r in rows if (r["corpus"], r["budget"], r["run"]) == (c, budget, run)),
                key=lambda r: r["seed"],
            )
            shape = f"{_shapes(got)}, " if got and run == "defaults" else ""
            cells.append(f"{_losses(got)} ({shape}{got[0]['steps']:,})" if got else "—")
        if any(x != "—" for x in cells):
            lines.append(f"| {c} | " + " | ".join(cells) + " |")
    return lines


def _deep_table(rows: list[dict]) -> list[str]:
    """The `--layers 3` criterion: best validation loss at least 1 nat/char under the unigram
    entropy, per seed (rows recorded before the deep-stack init carry their own run name)."""
    deep = [r for r in rows if r["run"].startswith("layers3")]
    lines = ["| corpus | budget | run | shape | seed | steps | best val | unigram − 1 | met |"]
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for r in sorted(deep, key=lambda r: (r["corpus"], r["run"], r["seed"])):
        bar = r["unigram_entropy"] - 1
        lines.append(
            f"| {r['corpus']} | {r['budget']} | {r['run']} | {r['shape']} | {r['seed']} | "
            f"{r['steps']} | {r['best_val_loss']:.4f} | {bar:.4f} | "
            f"{'yes' if r['best_val_loss'] <= bar else 'no'} |"
        )
    return lines if deep else []


def _shapes(rows: list[dict]) -> str:
    return ",".join(sorted({f"{r['shape']}/{r['dropout']:g}" for r in rows}))


def _spread(rows: list[dict]) -> float:
    v = [r["best_val_loss"] for r in rows]
    return max(v) - min(v)


def _losses(rows: list[dict]) -> str:
    return " / ".join(f"{r['best_val_loss']:.4f}" for r in sorted(rows, key=lambda r: r["seed"]))


def _seconds(budget: str) -> float:
    sys.path.insert(0, str(ROOT))
    from charrnn.training.config import parse_duration

    return parse_duration(budget)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpora", default=",".join(CORPORA))
    ap.add_argument("--budgets", default="3m,10m")
    ap.add_argument("--runs", default=",".join(["defaults", *GRID]))
    ap.add_argument("--seeds", default="1")
    ap.add_argument(
        "--second-seeds",
        action="store_true",
        help="seed 2 for the defaults and the grid's two best cells of each budget",
    )
    ap.add_argument(
        "--before",
        metavar="DIR",
        help="train with the charrnn of this checkout (an older commit); runs are named RUN@before",
    )
    ap.add_argument("--cells", type=int, default=2, help="with --second-seeds: how many best cells")
    ap.add_argument("--summary", action="store_true")
    args = ap.parse_args()
    if args.summary:
        print(summary(recorded()))
        return
    for name in args.corpora.split(","):
        path, info = corpus(name)
        for budget in args.budgets.split(","):
            jobs = [(run, int(s)) for run in args.runs.split(",") for s in args.seeds.split(",")]
            if args.second_seeds:
                jobs = [("defaults", 2)] + [
                    (run, 2) for run in best_cells(recorded(), name, budget, args.cells)
                ]
            code = Path(args.before).resolve() if args.before else ROOT
            for run, seed in jobs:
                label = f"{run}@before" if args.before else run
                if done(recorded(), (name, info["sha256"], budget, label, seed)):
                    continue
                figures = train(path, budget, run, seed, code)
                if args.before:
                    figures["code"] = _commit(code)
                report(
                    BENCH,
                    {
                        "corpus": name,
                        **info,
                        "budget": budget,
                        "run": label,
                        "seed": seed,
                        **figures,
                    },
                )


def _commit(checkout: Path) -> str:
    r = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=checkout
    )
    return r.stdout.strip()


if __name__ == "__main__":
    main()
