"""bench/tags.py's own pieces that decide its verdicts, on toy data (the bench itself, hours long,
is run alone; `--quick` is its manual smoke run): the independent judge, the interval, the
snippets, and the plan's units (coinciding runs trained once, under three hours)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import itertools

from tags_corpora import NaiveBayes, snippets, wilson


def test_the_judge_tells_two_alphabets_and_two_orders_apart() -> None:
    judge = NaiveBayes({"ab": "abba abab baab " * 50, "xy": "xyyx xyxy yxxy " * 50})
    assert judge.predict("abbaab") == "ab"
    assert judge.predict("yxxyyx") == "xy"
    # same letters, different habits: trigrams decide
    judge = NaiveBayes({"up": "abcabcabc" * 40, "down": "cbacbacba" * 40})
    assert judge.predict("abcab") == "up"
    assert judge.predict("cbacb") == "down"
    # an unseen character costs alike under both classes, and does not crash
    ll = NaiveBayes({"a": "aaaa", "b": "bbbb"}).log_likelihoods("zzz")
    assert ll[0] == pytest.approx(ll[1])


def test_wilson_interval_matches_known_values() -> None:
    lo, hi = wilson(5, 10)
    assert (round(lo, 4), round(hi, 4)) == (0.2366, 0.7634)
    lo, hi = wilson(0, 10)
    assert lo == 0 and round(hi, 4) == 0.2775
    lo, hi = wilson(200, 200)
    assert hi == pytest.approx(1) and round(lo, 4) == 0.9812
    assert wilson(0, 0) == (0.0, 1.0)


def test_snippets_are_disjoint_when_the_text_allows() -> None:
    text = "".join(chr(0x4E00 + i) for i in range(10_000))  # each character says where it is
    cut, overlap = snippets(text, 100, 50, seed=1)
    assert not overlap and len(cut) == 50 and all(len(c) == 100 for c in cut)
    starts = sorted(ord(c[0]) - 0x4E00 for c in cut)
    assert all(b - a >= 100 for a, b in itertools.pairwise(starts))
    cut, overlap = snippets(text, 1000, 50, seed=1)
    assert overlap and len(cut) == 50 and all(len(c) == 1000 for c in cut)
    assert snippets("short", 100, 5, seed=1) == ([], False)


def test_the_plan_trains_coinciding_runs_once_within_three_hours() -> None:
    from tags import plan_units
    from tags_units import FULL, Bench

    units = plan_units(Bench(Path("/nonexistent-tags-work"), FULL))
    trains = [u.key for u in units if u.key.startswith("train/")]
    assert len(trains) == len(set(trains)) == 16 + 4  # 2 corpora×2 budgets×2 seeds×2, + 4 ablations
    assert sum(u.estimate for u in units) < 3 * 3600
