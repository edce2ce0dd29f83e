"""A voiced model in the exported page's JavaScript engine, run in Node: its logits equal the numpy
engine's for a voice, a mix and no voice (every cell, float32 weights); greedy text equals
`Sampler`'s under a voice, a mix and a guided strength; scores equal `Scorer`'s; an unprimed
draw without a newline uses the voice's counts (voice a writes only a's alphabet); bad tags are
refused in one line; `export --tag` sets the page's initial voice."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from charrnn.infer.export import export
from charrnn.infer.numpy_engine import Engine
from charrnn.infer.sampler import Sampler
from charrnn.infer.score import Scorer
from tests.test_export_js import check
from tests.voiced import A_LETTERS, B_LETTERS, random_voiced, trained_voiced

TOL = 1e-5
TEXT = "abc gfe\nxyz tuv abba\nzz"
TAGS: list[object] = ["a", {"a": 0.3, "b": 0.7}, None]


def js(site: Path, job: dict) -> dict:
    """The Node checks' answer for a job on an exported site (test_export_js's runner)."""
    return check(site, job)  # type: ignore[return-value]


def weights(tag: object) -> np.ndarray | None:
    if tag is None:
        return None
    mix = {tag: 1.0} if isinstance(tag, str) else dict(tag)  # type: ignore[arg-type]
    w = np.array([mix.get("a", 0.0), mix.get("b", 0.0)])
    return w / w.sum()


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_page_logits_equal_the_numpy_engines_for_a_voice_a_mix_and_none(
    tmp_path: Path, cell: str
) -> None:
    ckpt = random_voiced(tmp_path / "m.ckpt", cell, layers=2, seed=7)
    export(ckpt, "web", tmp_path / "site", dtype="f32", evaluate=False)
    engine = Engine.load(ckpt, threads=1, deterministic=True)
    sampler, scorer = Sampler(engine), Scorer(engine)
    greedy = [
        {"seed": "ab", "length": 30, "tag": "b"},
        {"seed": "x", "length": 30, "tag": {"a": 1, "b": 3}},
        {"seed": "ab", "length": 30, "tag": "a", "tagStrength": 2.5},
        {"seed": "ab", "length": 30},
    ]
    got = js(
        tmp_path / "site",
        {
            "check": "voices",
            "logits": [{"tag": t, "text": TEXT} for t in TAGS],
            "greedy": greedy,
            "scores": [{"text": TEXT, "tag": t} for t in TAGS],
            "refusals": [],
        },
    )
    assert got["voices"] == ["a", "b"]
    ids = engine.vocab.encode(TEXT)
    for tag, rows in zip(TAGS, got["perStep"], strict=True):
        want = engine.forward(ids, engine.initial_state(1, weights(tag))).logits
        assert np.abs(np.array(rows) - want).max() <= TOL, tag
    for o, text in zip(greedy, got["texts"], strict=True):
        kw = {"tag": o.get("tag"), "tag_strength": o.get("tagStrength", 1.0)}
        assert text == sampler.generate(o["seed"], o["length"], temperature=0, **kw), o
    for tag, nats in zip(TAGS, got["scored"], strict=True):
        want = scorer.score(TEXT, voice=weights(tag))
        assert nats == pytest.approx(want.nats_per_char * want.chars, rel=1e-5), tag


def test_unprimed_without_a_newline_writes_in_the_voice_and_bad_tags_are_refused(
    tmp_path: Path,
) -> None:
    ckpt = trained_voiced(tmp_path / "m.ckpt", newline=False, steps=200)
    export(ckpt, "web", tmp_path / "site", dtype="f32", evaluate=False)
    sampler = Sampler(Engine.load(ckpt, threads=1, deterministic=True))
    greedy = [{"length": 60, "tag": "a"}, {"length": 60, "tag": "b"}]
    refusals = [
        {"tag": "c"},
        {"tag": {"a": -1}},
        {"tag": {"a": 0, "b": 0}},
        {"tag": "a", "tagStrength": -1},
        {"tagStrength": 2},
    ]
    got = js(
        tmp_path / "site",
        {"check": "voices", "logits": [], "greedy": greedy, "scores": [], "refusals": refusals},
    )
    a_text, b_text = got["texts"]
    assert set(a_text) <= set(A_LETTERS + " ") and set(b_text) <= set(B_LETTERS + " ")
    assert a_text == sampler.generate("", 60, temperature=0, tag="a")
    assert b_text == sampler.generate("", 60, temperature=0, tag="b")
    assert got["refused"] == [
        'Error: unknown voice "c"; this model\'s voices: a, b',
        'RangeError: voice "a": the weight must be a number >= 0, got -1',
        "RangeError: voice weights are all zero; give at least one a positive weight",
        "RangeError: tagStrength must be a number >= 0, got -1",
        "Error: tagStrength steers toward a voice; give one with tag",
    ]


def test_export_tag_sets_the_pages_initial_voice_and_refuses_a_bad_one(cli, tmp_path: Path) -> None:
    ckpt = random_voiced(tmp_path / "m.ckpt", "gru", layers=1, seed=2)
    r = cli("export", ckpt, "-o", "site", "--no-eval", "--tag", "a=1", "--tag", "b=3")
    assert r.code == 0, r.err
    manifest = json.loads(Path("site/model.json").read_text(encoding="utf-8"))
    assert manifest["sampling"]["tag"] == {"a": 0.25, "b": 0.75}
    assert manifest["voices"]["names"] == ["a", "b"] and manifest["model"]["voices"] == 2
    r = cli("export", ckpt, "-o", "site2", "--no-eval", "--tag", "zz")
    assert r.code == 2 and "unknown voice 'zz'; this model's voices: a, b" in r.err
