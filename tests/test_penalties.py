"""The logit bias and the repetition penalties (OpenAI's definitions, on characters): step (0) of the
one drawing pipeline, checked against a hand computation on the engine's logits, and through the
Python API and `charrnn sample`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import charrnn
from charrnn.infer.logits import Filters, shift_rows
from charrnn.infer.numpy_engine import Engine


def test_shift_is_openais_formula_row_by_row() -> None:
    logits = np.array([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]], np.float32)
    f = Filters(frequency_penalty=0.5, presence_penalty=0.25, logit_bias=((0, 10.0), (3, -1.5)))
    got = shift_rows(logits, f, [{1: 3, 3: 1}, {}])
    expected = np.array(
        [[11.0, 2.0 - 3 * 0.5 - 0.25, 3.0, 4.0 - 1.5 - 0.5 - 0.25], [11.0, 2.0, 3.0, 2.5]]
    )
    assert np.array_equal(got, expected)
    assert got.dtype == np.float64


def test_bias_bans_and_forces_characters(trained: Path) -> None:
    model = charrnn.load(str(trained))
    common = max(
        set(model.generate("def ", 300, rng_seed=1)),
        key=model.generate("def ", 300, rng_seed=1).count,
    )
    texts = [model.generate("def ", 100, rng_seed=s, logit_bias={common: -100}) for s in range(100)]
    assert not any(common in t for t in texts)
    forced = model.generate("def ", 50, rng_seed=3, logit_bias={"q": 100})
    assert forced == "q" * 50


def test_penalties_change_the_draw_as_computed(trained: Path) -> None:
    """Greedy with a frequency penalty: each character is the argmax of the logits minus
    count × penalty, with counts over what was written, recomputed here step by step."""
    model = charrnn.load(str(trained))
    got = model.generate("import ", 120, temperature=0, frequency_penalty=0.8, presence_penalty=0.3)
    engine = Engine.load(trained, threads=1)
    vocab = engine.vocab
    fwd = engine.forward(vocab.encode("import "), last_only=True)
    logits, state, counts, text = fwd.logits[-1], fwd.state, np.zeros(vocab.size), ""
    for _ in range(120):
        shifted = logits.astype(np.float64) - counts * 0.8 - (counts > 0) * 0.3
        ch = int(np.argmax(shifted))
        text += vocab.chars[ch]
        counts[ch] += 1
        logits = engine.step([ch], state)[0]
    assert got == text
    plain = model.generate("import ", 120, temperature=0)
    assert got != plain  # the penalties did something


def test_sample_cli_takes_the_same_controls(cli, trained: Path) -> None:
    args = ["sample", trained, "--seed", "def ", "--length", "80", "--rng-seed", "9", "--no-echo"]
    r = cli(
        *args, "--frequency-penalty", "0.7", "--presence-penalty", "-0.2", "--logit-bias", "e=-3"
    )
    assert r.code == 0, r.err
    api = charrnn.load(str(trained)).generate(
        "def ", 80, rng_seed=9, frequency_penalty=0.7, presence_penalty=-0.2, logit_bias={"e": -3.0}
    )
    assert r.out == api
    assert cli(*args, "--logit-bias", "\\n=-100").out.count("\n") == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--frequency-penalty", "2.5"], "--frequency-penalty must be in [-2, 2]"),
        (["--presence-penalty", "-3"], "--presence-penalty must be in [-2, 2]"),
        (["--logit-bias", "e=101"], "--logit-bias must be in [-100, 100]"),
        (["--logit-bias", "e"], "--logit-bias takes CHAR=BIAS"),
        (["--logit-bias", "e=x"], "is not a number"),
        (["--logit-bias", "☃=1"], "not in the model's vocabulary: '☃'"),
        (["--beam", "3", "--logit-bias", "e=1"], "does not combine with --logit-bias"),
    ],
)
def test_bad_values_are_one_line(cli, trained: Path, args: list[str], message: str) -> None:
    r = cli("sample", trained, "--length", "5", *args)
    assert r.code == 2 and message in r.err and len(r.err.strip().splitlines()) == 1, r.err
