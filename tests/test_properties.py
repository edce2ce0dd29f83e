"""Property tests: the sampler's filters hold for arbitrary logits, and no combination of sample
options makes the CLI print a traceback."""

from __future__ import annotations

from pathlib import Path

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from charrnn.sampler import adjust_logits, pick

logit_rows = st.lists(st.floats(-20, 20, allow_nan=False), min_size=2, max_size=40, unique=True)


@given(logit_rows, st.integers(1, 40), st.floats(0.05, 3.0), st.integers(0, 2**31))
def test_never_outside_top_k(row: list[float], k: int, temperature: float, seed: int) -> None:
    logits = torch.tensor([row])
    allowed = set(torch.topk(logits, min(k, len(row)), dim=-1).indices[0].tolist())
    g = torch.Generator().manual_seed(seed)
    draws = {pick(logits, temperature, k, None, g).item() for _ in range(20)}
    assert draws <= allowed


@given(logit_rows, st.floats(0.01, 1.0))
def test_top_p_keeps_the_smallest_set_reaching_p(row: list[float], p: float) -> None:
    logits = torch.tensor([row], dtype=torch.float64)
    kept = torch.isfinite(adjust_logits(logits, 1.0, top_p=p))[0]
    probs = torch.softmax(logits, -1)[0]
    mass = probs[kept].sum().item()
    assert mass >= p - 1e-9 or kept.all()
    smallest_kept = probs[kept].min().item()
    assert mass - smallest_kept < p + 1e-9  # dropping any kept character would fall below p
    assert probs[~kept].max().item() <= smallest_kept if (~kept).any() else True


@given(logit_rows)
def test_temperature_zero_is_argmax(row: list[float]) -> None:
    logits = torch.tensor([row])
    assert pick(logits, 0.0, None, None, torch.Generator()).item() == int(torch.argmax(logits))


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
    },
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(opts=sample_options, echo=st.booleans())
def test_random_sample_options_never_crash(cli, trained: Path, opts: dict, echo: bool) -> None:
    args = [x for k, v in opts.items() for x in (k, str(v))] + ([] if echo else ["--no-echo"])
    r = cli("sample", trained, *args)
    assert r.code in (0, 2), r.err
    assert "Traceback" not in r.err and "internal error" not in r.err
    if r.code == 2:
        assert r.out == "" and len(r.err.strip().splitlines()) == 1
