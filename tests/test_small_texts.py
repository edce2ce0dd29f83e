"""What a new user hits first: the textbook toy reproduces its sentence with the defaults, because a
small text trains on all of itself (no dropout, a warmup that fits the run), while explicit choices,
prep's splits and large enough texts keep their validation split."""

from __future__ import annotations

from pathlib import Path

import pytest

from charrnn import checkpoint
from charrnn.data.prep import prep
from charrnn.data.split import MIN_VAL_CHARS, auto_val_frac

from .conftest import TINY, corpus_text

TOY = "hello world, this is a sample text."


SLOW = pytest.mark.slow  # the default cell is enough for make test-fast


@pytest.mark.parametrize(
    "cell", [pytest.param("rnn", marks=SLOW), pytest.param("gru", marks=SLOW), "lstm"]
)
def test_the_textbook_toy_reproduces_its_sentence(cli, cell: str) -> None:
    Path("t.txt").write_text(TOY)
    r = cli(
        "train", "t.txt", "--cell", cell, "--layers", "1", "--hidden", "32", "--max-epochs", "100"
    )
    assert r.code == 0, r.err
    assert "t.txt: 35 chars, too few for a validation split" in r.err
    rule = "--dropout 0, --weight-drop 0 (" if cell == "lstm" else "--dropout 0 ("
    assert f"all of the text is for training: using {rule}" in r.err
    assert "warmup shortened to 25 steps" in r.err and "long-run defaults)" not in r.err
    r = cli("sample", "--seed", "hello", "--temp", "0", "--length", "30", "--no-echo")
    assert r.code == 0 and r.out == " world, this is a sample text."


def splits(run: str) -> dict:
    return checkpoint.read_header(f"{run}/last.ckpt").meta["corpus"]["splits"]


def test_a_validation_split_is_kept_when_asked_for_or_big_enough(cli) -> None:
    Path("t.txt").write_text(TOY)
    fast = [*TINY, "--max-steps", "2", "--dropout", "0.2"]
    r = cli("train", "t.txt", *fast, "--val-frac", "0.1", "-o", "explicit")
    assert r.code == 0 and splits("explicit")["val"] == 3 and "too few" not in r.err
    r = cli("train", "t.txt", *fast, "--max-steps", "4", "--resume", "explicit/last.ckpt")
    assert r.code == 0 and splits("explicit")["val"] == 3  # a resumed run keeps its splits
    assert cli("prep", "t.txt", "-o", "ds").code == 0  # prep's own splits are obeyed too
    r = cli("train", "ds", *fast, "-o", "from-ds")
    assert r.code == 0 and splits("from-ds")["val"] == 3 and "too few" not in r.err
    # the threshold: a 10% split of at least MIN_VAL_CHARS is kept, one character less is not
    n = 10 * MIN_VAL_CHARS
    Path("big.txt").write_text(corpus_text(n))
    Path("small.txt").write_text(corpus_text(n - 1))
    r = cli("train", "big.txt", *TINY, "--max-steps", "2", "-o", "big")
    assert r.code == 0 and splits("big") == {"train": n - 1000, "val": 1000, "test": 0}
    assert "too few" not in r.err and "all of the text is for training" not in r.err
    r = cli("train", "small.txt", *TINY, "--max-steps", "2", "-o", "small")
    assert r.code == 0 and splits("small")["val"] == 0 and "(10% would be 999, under" in r.err


def test_an_explicit_dropout_wins_over_the_all_text_rule(cli) -> None:
    Path("t.txt").write_text(TOY)
    r = cli("train", "t.txt", *TINY, "--max-steps", "2", "--dropout", "0.2", "-o", "r")
    assert r.code == 0 and "using --dropout" not in r.err
    assert checkpoint.read_header("r/last.ckpt").meta["model"]["dropout"] == 0.2
    r = cli("train", "t.txt", *TINY, "--max-steps", "2", "-o", "d")
    assert checkpoint.read_header("d/last.ckpt").meta["model"]["dropout"] == 0.0


def test_auto_val_frac_and_prep_record_the_fraction_used() -> None:
    assert auto_val_frac(10 * MIN_VAL_CHARS) == 0.1 and auto_val_frac(10 * MIN_VAL_CHARS - 1) == 0
    Path("t.txt").write_text(TOY)
    meta = prep(["t.txt"], Path("auto"), val_frac=None).meta
    assert meta["val_frac"] == 0.0 and meta["splits"]["val"] == 0
    assert prep(["t.txt"], Path("default"), val_frac=0.1).meta["splits"]["val"] == 3
