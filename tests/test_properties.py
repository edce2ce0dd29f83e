"""Property tests: the sampler's filters hold for arbitrary logits, and no combination of sample
options makes the CLI print a traceback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from charrnn.infer.logits import Filters, adjust, draw, probabilities

logit_rows = st.lists(st.floats(-20, 20, allow_nan=False), min_size=2, max_size=40, unique=True)


def pick(row: list[float], filters: Filters, u: float) -> int:
    return draw(probabilities(adjust(np.array(row), filters)), u)


@given(
    logit_rows,
    st.integers(1, 40),
    st.floats(0.05, 3.0),
    st.lists(st.floats(0, 0.999999), min_size=1, max_size=20),
)
def test_never_outside_top_k(row: list[float], k: int, temperature: float, us: list[float]) -> None:
    allowed = set(np.argsort(-np.array(row))[: min(k, len(row))].tolist())
    assert {pick(row, Filters(temperature, top_k=k), u) for u in us} <= allowed


@given(logit_rows, st.floats(0.01, 1.0))
def test_top_p_keeps_the_smallest_set_reaching_p(row: list[float], p: float) -> None:
    kept = np.isfinite(adjust(np.array(row), Filters(1.0, top_p=p)))
    x = np.array(row, dtype=np.float64)
    probs = np.exp(x - x.max()) / np.exp(x - x.max()).sum()
    mass = probs[kept].sum()
    assert mass >= p - 1e-9 or kept.all()
    smallest_kept = probs[kept].min()
    assert mass - smallest_kept < p + 1e-9  # dropping any kept character would fall below p
    assert probs[~kept].max() <= smallest_kept if (~kept).any() else True


@given(logit_rows, st.floats(0.0, 1.0))
def test_min_p_keeps_those_near_the_most_likely(row: list[float], m: float) -> None:
    kept = np.isfinite(adjust(np.array(row), Filters(1.0, min_p=m)))
    x = np.array(row, dtype=np.float64)
    ratio = np.exp(x - x.max())
    assert kept[np.argmax(x)] and (ratio[kept] >= m * (1 - 1e-9)).all()
    assert (ratio[~kept] < m * (1 + 1e-9)).all()


@given(logit_rows, st.floats(0, 0.999999))
def test_temperature_zero_is_argmax(row: list[float], u: float) -> None:
    assert pick(row, Filters(0.0), u) == int(np.argmax(row))


sample_options = st.fixed_dictionaries(
    {},
    optional={
        "--temp": st.one_of(st.floats(-2, 3, allow_nan=False), st.just(0.0)),
        "--top-k": st.integers(-3, 100),
        "--top-p": st.floats(-0.5, 1.5, allow_nan=False),
        "--length": st.integers(-5, 60),
        "--num-samples": st.integers(-1, 4),
        "--seed": st.text(max_size=12).filter(lambda s: s != "-"),  # "-" reads stdin
        "--stop": st.text(min_size=1, max_size=3),
        "--rng-seed": st.integers(0, 2**31),
        "--separator": st.text(max_size=4),
        "--unknown": st.sampled_from(["error", "skip", "bogus"]),
        "--min-p": st.floats(-0.5, 1.5, allow_nan=False),
        "--no-repeat": st.integers(-1, 6),
        "--ban": st.text(max_size=3),
        "--until": st.sampled_from(["sentence", "line", "paragraph", "word"]),
        "--min-words": st.integers(-1, 5),
        "--max-words": st.integers(-1, 8),
        "--beam": st.integers(-1, 3),
        "--records": st.integers(-1, 3),
    },
)


@pytest.mark.slow
@settings(
    max_examples=min(settings().max_examples, 400),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(opts=sample_options, echo=st.booleans())
def test_random_sample_options_never_crash(cli, trained: Path, opts: dict, echo: bool) -> None:
    args = [x for k, v in opts.items() for x in (k, str(v))] + ([] if echo else ["--no-echo"])
    r = cli("sample", trained, *args)
    assert r.code in (0, 2), r.err
    assert "Traceback" not in r.err and "internal error" not in r.err
    if r.code == 2:
        assert r.out == "" and len(r.err.strip().splitlines()) == 1


# Each option: values a user may give, and (second) values that must be refused with one line.
TRAIN_OPTIONS = {
    "--cell": (st.sampled_from(["lstm", "gru", "rnn"]), st.just("transformer")),
    "--layers": (st.integers(1, 3), st.integers(-1, 0)),
    "--hidden": (st.integers(1, 24), st.integers(-2, 0)),
    "--embed": (st.integers(1, 8), st.integers(-1, 0)),
    "--dropout": (st.floats(0, 0.9), st.floats(1, 1.5) | st.floats(-0.5, -0.01)),
    "--batch-size": (st.integers(1, 40), st.integers(-1, 0)),
    "--seq-len": (st.integers(1, 300), st.integers(-1, 0)),
    "--lr": (st.floats(1e-5, 1) | st.just(1e30), st.floats(-1, 0)),
    "--warmup": (st.integers(0, 5), st.just(-2)),
    "--grad-clip": (st.floats(0, 10), st.just(-1.0)),
    "--weight-decay": (st.floats(0, 1), st.just(-0.5)),
    "--time-budget": (
        st.sampled_from(["5s", "1m", "1h30m"]),
        st.sampled_from(["0", "-3s", "soon"]),
    ),
    "--patience": (st.integers(1, 3), st.integers(-1, 0)),
    "--eval-every": (st.integers(1, 4), st.integers(-1, 0)),
    "--eval-chars": (st.integers(1, 500), st.integers(-5, 0)),
    "--val-frac": (st.floats(0, 0.9), st.floats(1, 1.2) | st.floats(-0.2, -0.01)),
    "--precision": (st.sampled_from(["auto", "fp32", "bf16"]), st.sampled_from(["fp16", "fp8"])),
}


@st.composite
def train_options(draw: st.DrawFn) -> dict:
    """Mostly valid combinations (so real runs happen), sometimes with one bad value among them."""
    names = draw(st.lists(st.sampled_from(sorted(TRAIN_OPTIONS)), unique=True, max_size=8))
    opts = {k: draw(TRAIN_OPTIONS[k][0]) for k in names}
    if names and draw(st.booleans()):
        bad = draw(st.sampled_from(names))
        opts[bad] = draw(TRAIN_OPTIONS[bad][1])
    return opts


@pytest.mark.slow
@settings(
    max_examples=min(settings().max_examples, 60),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(opts=train_options())
def test_random_train_options_never_crash(cli, opts: dict) -> None:
    """Any option combination on a small corpus: a run (exit 0, or 1 for a divergence) or one line."""
    Path("toy.txt").write_text("the quick brown fox jumps over the lazy dog.\n" * 20)
    args = [x for k, v in opts.items() for x in (k, str(v))]
    r = cli("train", "toy.txt", "--max-steps", "3", "--out", "run", "--overwrite", "-q", *args)
    event(f"exit {r.code}")
    assert r.code in (0, 1, 2), r.err
    assert "Traceback" not in r.err and "internal error" not in r.err, r.err
    if r.code != 0:
        assert r.out == "" and len(r.err.strip().splitlines()) == 1, r.err
