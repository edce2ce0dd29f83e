"""Voices (issue 42): what conditioning on a voice buys and costs, on two labelled corpora built
at run time from Debian packages (bench/tags_corpora.py): man pages in five languages (distinct
voices) and five categories of English fortunes (close voices).

- Conditioning helps, never hurts: per-voice validation nats/char, voiced against the same run
  with `--no-condition`, at 3 and 10 minutes, both corpora, two seeds.
- It writes in the voice asked for: samples per voice at strengths 1, 1.5, 2, 3 judged by an
  independent character 3-gram naive Bayes (no charrnn code), beside their nats/char under the
  plain voiced model, and the same judge on real test snippets.
- It tells voices apart: `score --by-tag` accuracy on test snippets of 100, 300 and 1,000
  characters, with 95 % Wilson intervals, against the judge on the same snippets.
- Mixes are between: a two-voice mix at five weights, the judge's share for the first voice.
- Balance (proportional, equal, capped) and the untagged share at 10 minutes, close corpus.
- Cost: training and sampling chars/s voiced against unvoiced, five alternating runs each.

Resumable: each unit (one training run, one sample set, one attribution pass, one timing) is
written to --units (bench/tags-units.jsonl, committed; --work holds the corpora and runs) as it
ends and skipped when rerun. Run it alone (about three hours; `--plan` says what is left); the
figures go to bench/results.jsonl once every unit is done.

    python bench/tags.py --plan        # the units and their estimated machine time
    python bench/tags.py               # run what is left, then print the figures
    python bench/tags.py --markdown    # the docs' tables from what is done
    python bench/tags.py --quick       # every kind of unit on tiny corpora (a few minutes)
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from common import ROOT, report
from tags_corpora import ensure_packages
from tags_report import figures, markdown
from tags_units import (
    FULL,
    QUICK,
    Bench,
    attribution,
    cost_sample,
    cost_train,
    mix,
    samples,
    train,
    train_key,
)

from charrnn.training.config import parse_duration
from charrnn.training.voiced_batches import DEFAULT_BALANCE, DEFAULT_UNTAGGED_SHARE

BENCH = "tags"
TRAIN_OVERHEAD_S = 40  # start-up, plan, the last evaluation and saves (full scale; 2 cores)
# one numpy-engine step of a 64-row batch of the 10-minute model (1×256 on 2 cores: 1.1 ms
# measured under load; doubled for a margin)
STEP_S = 0.002


@dataclass
class Unit:
    key: str
    estimate: float  # seconds of machine time
    run: Callable[[], dict]


def plan_units(b: Bench) -> list[Unit]:
    """Every unit in the order they run: the runs the other figures read first, so a bench cut
    short still has them; coinciding configurations share one key."""
    s, units, seen = b.scale, [], set()
    quick = s is QUICK
    overhead = 6 if quick else TRAIN_OVERHEAD_S
    step = STEP_S / 10 if quick else STEP_S

    def add(key: str, estimate: float, run: Callable[[], dict]) -> None:
        if key not in seen:
            seen.add(key)
            units.append(Unit(key, estimate, run))

    def add_train(corpus, budget, seed, voiced, balance=None, share=None) -> str:
        """A run; a --no-condition baseline follows its voiced partner and trains its plan."""
        key = train_key(
            corpus,
            budget,
            seed,
            voiced,
            balance or DEFAULT_BALANCE,
            DEFAULT_UNTAGGED_SHARE if share is None else share,
        )
        partner = None if voiced else add_train(corpus, budget, seed, True, balance, share)
        add(
            key,
            parse_duration(budget) + overhead,
            lambda: train(
                b, corpus, budget, seed, voiced, balance, share, partner and b.store.result(partner)
            ),
        )
        return key

    def add_samples(corpus: str, run_key: str, strengths: tuple[float, ...]) -> None:
        n = (s.voices or 5) * sum(s.sample_len * (1 if x == 1 else 2) for x in strengths)
        add(
            f"samples/{run_key}",
            10 + n * step,
            lambda: samples(b, corpus, b.store.result(run_key), strengths),
        )

    top, first = s.budgets[-1], s.seeds[0]
    for corpus in s.caps:  # the run every other figure reads, and its baseline
        add_train(corpus, top, first, True)
        add_train(corpus, top, first, False)
    for corpus in s.caps:
        key = add_train(corpus, top, first, True)
        v = s.voices or 5
        add_samples(corpus, key, s.strengths)
        batches = sum(math.ceil(v * s.snippets / 64) * n for n in s.lengths)
        add(
            f"attribution/{key}",
            20 + v * batches * step,
            lambda c=corpus, k=key: attribution(b, c, b.store.result(k)),
        )
        add(
            f"mix/{key}",
            5 + len(s.mix_weights) * s.sample_len * step,
            lambda c=corpus, k=key: mix(b, c, b.store.result(k)),
        )
    for budget in s.budgets:
        for seed in s.seeds:
            for corpus in s.caps:
                add_train(corpus, budget, seed, True)
                add_train(corpus, budget, seed, False)
    steps = int(s.cost_train[s.cost_train.index("--max-steps") + 1])
    for rep in range(s.reps):  # alternating, so drift in the machine's speed hits both alike
        for voiced in (True, False):
            name = "voiced" if voiced else "unvoiced"
            add(
                f"cost/train/{name}/{rep}",
                8 + steps * (0.1 if quick else 1.1),
                lambda r=rep, v=voiced: cost_train(b, "close", r, v),
            )
    for rep in range(s.reps):
        for streams in s.cost_lengths:
            for variant in ("unvoiced", "s1", "s2"):
                model = f"cost/train/{'unvoiced' if variant == 'unvoiced' else 'voiced'}/0"
                add(
                    f"cost/sample/{streams}/{variant}/{rep}",
                    3,
                    lambda m=model, n=streams, v=variant: cost_sample(
                        b, b.store.result(m)["checkpoint"], n, v
                    ),
                )
    ab = s.ablation_budget
    for balance in s.balances:
        key = add_train("close", ab, first, True, balance=balance)
        add_samples("close", key, s.strengths)
    for share in s.shares:
        key = add_train("close", ab, first, True, share=share)
        add_samples("close", key, s.strengths)
    return units


def show_plan(b: Bench, units: list[Unit]) -> None:
    left = [u for u in units if u.key not in b.store]
    for u in units:
        rec = b.store.done.get(u.key)
        took = f"done in {rec['seconds']:.0f} s" if rec else f"~{u.estimate:.0f} s"
        print(f"{u.key:60s} {took}")
    total = sum(u.estimate for u in units)
    spent = sum(b.store.done[u.key]["seconds"] for u in units if u.key in b.store)
    print(
        f"{len(units)} units, {len(left)} left: ~{sum(u.estimate for u in left) / 60:.0f} min "
        f"of machine time left; the whole bench ~{total / 60:.0f} min estimated "
        f"({spent / 60:.1f} min spent so far), plus ~1 min to build and prepare the corpora"
    )


def main() -> None:
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=ROOT / "bench" / ".tags-work")
    ap.add_argument(
        "--units",
        type=Path,
        default=ROOT / "bench" / "tags-units.jsonl",
        help="the finished units (kept in the repository, so any clone resumes or reports)",
    )
    ap.add_argument("--quick", action="store_true", help="every kind of unit, tiny (smoke test)")
    ap.add_argument("--plan", action="store_true", help="list the units and their estimated time")
    ap.add_argument("--markdown", action="store_true", help="print the docs' tables")
    args = ap.parse_args()
    scale = QUICK if args.quick else FULL
    work = args.work / "quick" if args.quick else args.work
    b = Bench(work, scale, None if args.quick else args.units)
    units = plan_units(b)
    if args.plan:
        show_plan(b, units)
        return
    if args.markdown:
        print(markdown(b))
        return
    ensure_packages()
    t0 = time.monotonic()
    for u in units:
        if u.key in b.store:
            continue
        t = time.monotonic()
        result = u.run()
        b.store.put(u.key, time.monotonic() - t, result)
        print(json.dumps({"unit": u.key, "seconds": round(time.monotonic() - t, 1)}), flush=True)
    out = figures(b)
    for figure, value, target, ok in out["checks"]:
        print(f"{'PASS' if ok else 'FAIL'}  {figure}: {value}  (target {target})")
    out["machine_minutes_this_call"] = round((time.monotonic() - t0) / 60, 1)
    out["machine_minutes_all_units"] = round(
        sum(b.store.done[u.key]["seconds"] for u in units) / 60, 1
    )
    if args.quick:
        print(json.dumps(out))  # a smoke run records nothing
    else:
        report(BENCH, out)


if __name__ == "__main__":
    main()
