"""`charrnn score` and `model.score`: figures against an independent computation, per-character
records against the engine, lines, several models, unknown characters, dynamic evaluation."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import charrnn
from charrnn import checkpoint
from charrnn.infer.numpy_engine import Engine
from charrnn.infer.score import Scorer
from charrnn.model import CharRNN, ModelConfig
from charrnn.vocab import Vocab

from .conftest import corpus_text


def _val_text(n: int) -> str:
    """The first n characters of the validation split `trained` evaluated (its last 10%)."""
    text = corpus_text()
    return text[len(text) - int(len(text) * 0.1) :][:n]


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_figures_match_a_hand_computation_with_the_module(cell: str) -> None:
    """Every character predicted once: the first after an implicit newline, then each after the
    text before it, summed from torch's own cross-entropy over the module's forward."""
    torch.manual_seed(1)
    vocab = Vocab(tuple("\n abcdefgh"))
    cfg = ModelConfig(vocab_size=vocab.size, cell=cell, layers=2, hidden=16, embed=8)
    model = CharRNN(cfg).eval()
    engine = Engine(cfg, vocab, {k: v.detach().numpy() for k, v in model.state_dict().items()})
    text = "abc hag\nfeed a cab " * 30
    ids = torch.tensor([vocab.index(c) for c in "\n" + text])
    with torch.no_grad():
        logits, _ = model(ids[None, :-1])
        nats = torch.nn.functional.cross_entropy(logits[0].double(), ids[1:], reduction="sum")
    s = Scorer(engine).score(text)
    assert s.chars == len(text) and not s.unknown
    assert s.nats_per_char == pytest.approx(nats.item() / len(text), rel=1e-5)
    assert s.bpc == pytest.approx(s.nats_per_char / math.log(2))
    assert s.perplexity == pytest.approx(math.exp(s.nats_per_char))
    # chunking does not change the figures
    small = sum(c.nats.sum() for c in Scorer(engine).chunks(text, chunk=7))
    assert small == pytest.approx(s.nats, rel=1e-6)


def test_cli_table_json_and_python_api_agree(cli, trained: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text(_val_text(2000), encoding="utf-8")
    b.write_text(corpus_text(1500), encoding="utf-8")
    r = cli("score", trained, a, b, "--json")
    assert r.code == 0, r.err
    objs = [json.loads(line) for line in r.out.splitlines()]
    assert [o["file"] for o in objs] == [str(a), str(b)]
    keys = {"checkpoint", "file", "chars", "unknown", "nats_per_char", "bpc", "perplexity"}
    assert keys <= set(objs[0])
    api = charrnn.load(str(trained)).score(a.read_text(encoding="utf-8"))
    assert objs[0]["chars"] == api.chars == 2000
    assert objs[0]["nats_per_char"] == pytest.approx(api.nats_per_char, abs=1e-6)
    table = cli("score", trained, a, b)
    lines = table.out.splitlines()
    assert lines[0].split()[:3] == ["file", "chars", "unknown"] and len(lines) == 4
    total = lines[3].split()
    assert total[0] == "total" and total[1] == "3,500"
    expect = (objs[0]["nats_per_char"] * 2000 + objs[1]["nats_per_char"] * 1500) / 3500
    assert float(total[3]) == pytest.approx(expect, abs=1e-4)
    piped = cli("score", trained, "--json", stdin=a.read_text(encoding="utf-8"))
    assert json.loads(piped.out)["nats_per_char"] == objs[0]["nats_per_char"]


def test_per_char_records_are_the_engines_probabilities(cli, trained: Path) -> None:
    text = "def main(self):\n    return self.value"
    r = cli("score", trained, "--per-char", "--top-k", "4", stdin=text)
    assert r.code == 0, r.err
    recs = [json.loads(line) for line in r.out.splitlines()]
    assert [x["i"] for x in recs] == list(range(len(text)))
    assert "".join(x["char"] for x in recs) == text
    engine = Engine.load(trained)
    ids = [engine.vocab.index(c) for c in "\n" + text]
    logits = engine.forward(ids[:-1]).logits.astype(np.float64)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    for j, rec in enumerate(recs):
        assert len(rec["top"]) == 4
        best = np.argsort(-probs[j], kind="stable")[:4]
        assert [c for c, _ in rec["top"]] == [engine.vocab.chars[k] for k in best]
        assert [p for _, p in rec["top"]] == pytest.approx(probs[j][best], abs=2e-6)
        assert rec["nats"] == pytest.approx(-math.log(probs[j][ids[j + 1]]), abs=1e-4)


def test_lines_are_scored_each_on_its_own_in_input_order(cli, trained: Path) -> None:
    lines = ["import os", "return self.value", "qzxj vvkw", "for key in data:", "if x is None:"]
    r = cli(
        "score", trained, "--lines", stdin="\n".join(lines[:2]) + "\n\n  \n" + "\n".join(lines[2:])
    )
    assert r.code == 0, r.err
    rows = [line.split("\t") for line in r.out.splitlines()]
    assert [t for _, t in rows] == lines  # blank lines skipped, order kept
    scorer = Scorer(Engine.load(trained))
    for value, line in rows:
        assert float(value) == pytest.approx(scorer.score(line).nats_per_char, abs=1e-4)
    ranked = sorted(rows, key=lambda x: float(x[0]))
    assert ranked[-1][1] == "qzxj vvkw"  # gibberish is the least likely


def test_several_models_rank_best_first(cli, trained: Path, tmp_path: Path) -> None:
    weak = tmp_path / "weak"
    text = tmp_path / "t.txt"
    text.write_text(_val_text(1500), encoding="utf-8")
    (tmp_path / "c.txt").write_text(corpus_text(20_000), encoding="utf-8")
    r = cli("train", tmp_path / "c.txt", "--max-steps", "3", "--hidden", "32", "-o", weak)
    assert r.code == 0, r.err
    for order in ([trained, weak / "best.ckpt"], [weak / "best.ckpt", trained]):
        r = cli("score", "-m", order[0], "-m", order[1], text)
        assert r.code == 0, r.err
        body = r.out.splitlines()[1:]
        assert [row.split()[0] for row in body] == [trained.parent.name, "weak"]


def test_unknown_characters_are_skipped_counted_and_named(cli, trained: Path) -> None:
    r = cli("score", trained, "--json", stdin="the king ☃ said é☃")
    assert r.code == 0
    obj = json.loads(r.out)
    assert obj["unknown"] == 3 and obj["chars"] == len("the king  said ")
    assert obj["unknown_chars"] == {"☃": 2, "é": 1}
    assert "'☃' ×2" in r.err and "'é' ×1" in r.err
    r = cli("score", trained, "--unknown", "error", stdin="the king ☃")
    assert r.code == 2 and r.out == "" and "'☃'" in r.err and "Traceback" not in r.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.txt"], "missing.txt: no such file"),
        (["--lines", "--json"], "choose one"),
        (["-", "-"], "stdin"),
    ],
)
def test_bad_input_is_one_line(cli, trained: Path, args: list[str], message: str) -> None:
    r = cli("score", trained, *args, stdin="abc")
    assert r.code == 2 and message in r.err and len(r.err.strip().splitlines()) == 1


def test_not_utf8_is_refused(cli, trained: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"caf\xe9")
    r = cli("score", trained, bad)
    assert r.code == 2 and "not UTF-8" in r.err


def test_adapt_lowers_the_figure_and_leaves_the_checkpoint_alone(cli, trained: Path) -> None:
    before = hashlib.sha256(trained.read_bytes()).hexdigest()
    r = cli("score", trained, "--adapt", "--json", stdin=_val_text(4000))
    assert r.code == 0, r.err
    obj = json.loads(r.out)
    assert obj["adapt_nats_per_char"] < obj["nats_per_char"] - 0.002  # measured: -0.006
    assert obj["adapt_bpc"] == pytest.approx(obj["adapt_nats_per_char"] / math.log(2), abs=1e-5)
    assert hashlib.sha256(trained.read_bytes()).hexdigest() == before


def test_scoring_the_validation_text_gives_the_recorded_loss(trained: Path) -> None:
    """The run evaluated the first 20,000 validation characters as 32 streams from cold states;
    one stream over the same text lands within 0.01 nats/char (README "charrnn score")."""
    best = checkpoint.read_header(trained).meta["state"]["best_val_loss"]
    s = charrnn.load(str(trained)).score(_val_text(20_000))
    assert abs(s.nats_per_char - best) < 0.01, (s.nats_per_char, best)


def test_known_characters_are_found_as_the_vocabulary_finds_them(trained: Path) -> None:
    """Scorer.known reads code points in numpy; it must agree with the vocabulary's own lookup,
    lone surrogates and characters outside the vocabulary included."""
    scorer = Scorer(Engine.load(trained))
    vocab = scorer.vocab
    rng = np.random.default_rng(3)
    alphabet = [*vocab.chars, "é", "\udcff", "😀", "\x00", "ÿ"]
    for _ in range(20):
        text = "".join(rng.choice(alphabet, size=int(rng.integers(0, 300))))
        pos, ids, skipped = scorer.known(text)
        want_pos, want_ids = vocab.locate(text)
        assert pos.tolist() == want_pos and ids.tolist() == want_ids
        assert skipped == {c: text.count(c) for c in set(text) if c not in vocab}


def test_a_long_score_pauses_every_few_hundred_rows_with_the_same_figures(trained: Path) -> None:
    """The server hands the worker back between pieces of a score (`pause`); every piece of
    work outside the engine is at most ROWS_BETWEEN_PAUSES rows, and pausing changes no figure."""
    from charrnn.infer import score as score_mod

    engine = Engine.load(trained)
    text = _val_text(9000)
    paused: list[int] = []
    scorer = Scorer(engine, pause=lambda: paused.append(1))
    got = scorer.score(text)
    assert len(paused) >= len(text) // score_mod.ROWS_BETWEEN_PAUSES
    assert got.nats == Scorer(engine).score(text).nats
    positions, ids, _ = scorer.known(text)
    paused.clear()
    records = [r for part in scorer.records(positions, ids, 3) for r in part]
    assert len(records) == len(ids) and len(paused) >= 2 * (len(ids) // 512)
