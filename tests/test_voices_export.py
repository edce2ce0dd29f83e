"""A voiced model through ml5, hub and viz: ml5 refuses it in one line without `--tag` and with
one bakes that voice (or mix) into layer 0's input bias (the baked model's logits are the voiced
model's in that voice); the hub folder carries the voices (sampling checkpoint, config.json, the
card's Voices section); `viz --tag` reads the text in that voice (its page's figures are the
scorer's in that voice), and `--tag` on a model without voices is one line."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from charrnn import checkpoint
from charrnn.infer.export import ml5
from charrnn.infer.numpy_engine import Engine, read_model_tensors
from charrnn.infer.score import Scorer
from charrnn.infer.voices import Voices
from charrnn.model_config import model_config
from tests.test_viz import decode, page_blob
from tests.voiced import random_voiced

TEXT = "abc gfe\nxyz tuv abba\nzz"
MIX = np.array([0.25, 0.75])


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return random_voiced(tmp_path_factory.mktemp("vexp") / "best.ckpt", "lstm", layers=2, seed=4)


def test_ml5_refuses_a_voiced_model_without_a_tag(cli, ckpt: Path) -> None:
    r = cli("export", ckpt, "-f", "ml5", "-o", "m", "--no-eval")
    assert r.code == 2 and r.err.count("\n") == 1
    assert "--format ml5 has no voice input" in r.err and "--tag NAME" in r.err
    assert not Path("m").exists()


def test_ml5_bakes_the_tagged_voice_into_layer_0s_bias(cli, ckpt: Path) -> None:
    r = cli("export", ckpt, "-f", "ml5", "-o", "m", "--no-eval", "--tag", "a=1", "--tag", "b=3")
    assert r.code == 0, r.err
    header = checkpoint.read_header(ckpt)
    tensors = {k.removeprefix("model."): v for k, v in read_model_tensors(header).items()}
    baked = ml5.with_voice(tensors, MIX)
    # the written variables are those of the baked tensors
    manifest = json.loads(Path("m/manifest.json").read_text())
    for name, value in ml5.variables(baked).items():
        got = np.fromfile(Path("m") / manifest[name]["filename"], "<f4")
        assert np.array_equal(got, value.ravel()), name
    # and the baked, unvoiced model reads as the voiced model in that mix
    voiced = Engine.load(ckpt, threads=1, deterministic=True)
    cfg = model_config(header)
    plain_cfg = dataclasses.replace(cfg, voices=0, voice_dim=0)
    plain = Engine(plain_cfg, voiced.vocab, baked, threads=1, deterministic=True)
    ids = voiced.vocab.encode(TEXT)
    want = voiced.forward(ids, voiced.initial_state(1, MIX)).logits
    assert np.abs(plain.forward(ids).logits - want).max() <= 1e-5
    other = voiced.forward(ids, voiced.initial_state(1, np.array([1.0, 0.0]))).logits
    assert np.abs(other - want).max() > 1e-3  # the voice matters: the bias is not a no-op


def test_hub_folder_carries_the_voices(cli, ckpt: Path) -> None:
    pytest.importorskip("huggingface_hub")
    r = cli("export", ckpt, "-f", "hub", "-o", "hub", "--no-eval", "--no-samples")
    assert r.code == 0, r.err
    folder = Path("hub")
    exported = Voices.from_header(checkpoint.read_header(folder / "model.safetensors"))
    assert exported is not None and exported.names == ("a", "b")
    assert json.loads((folder / "config.json").read_text())["voices"] == ["a", "b"]
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert "## Voices" in card and "| `a` |" in card and "| `b` | 270 | 1.2500 |" in card
    assert "--tag a" in card
    manifest = json.loads((folder / "web" / "model.json").read_text(encoding="utf-8"))
    assert manifest["voices"]["names"] == ["a", "b"]
    r = cli("sample", folder / "model.safetensors", "--tag", "b", "-n", "5", "--rng-seed", "1")
    assert r.code == 0, r.err


def test_viz_reads_the_text_in_the_tagged_voice(cli, ckpt: Path, tmp_path: Path) -> None:
    text = tmp_path / "t.txt"
    text.write_text(TEXT, encoding="utf-8")
    engine = Engine.load(ckpt, threads=1)
    scorer = Scorer(engine)
    seen = {}
    for args, w in (
        (["--tag", "b"], np.array([0.0, 1.0])),
        (["--tag", "a=1", "--tag", "b=3"], MIX),
    ):
        r = cli("viz", ckpt, text, "-o", "p.html", *args)
        assert r.code == 0, r.err
        data = page_blob(Path("p.html").read_text(encoding="utf-8"))
        want = scorer.score(TEXT, voice=w)
        assert data["meta"]["bpc"] == round(want.bpc, 4)
        assert "in voice " in data["meta"]["source"]
        seen[args[1]] = decode(data["seen_logprob"], "<f4")
    plain = cli("viz", ckpt, text, "-o", "p.html")
    assert plain.code == 0
    none = page_blob(Path("p.html").read_text(encoding="utf-8"))["meta"]["bpc"]
    assert none == round(scorer.score(TEXT).bpc, 4) != round(scorer.score(TEXT, voice=MIX).bpc, 4)
    assert not np.array_equal(seen["b"], seen["a=1"])


@pytest.mark.parametrize(
    ("tag", "says"),
    [("zz", "unknown voice 'zz'; this model's voices: a, b"), ("a=-1", "weights must be >= 0")],
)
def test_viz_tag_refusals_are_one_line(
    cli, ckpt: Path, tmp_path: Path, tag: str, says: str
) -> None:
    text = tmp_path / "t.txt"
    text.write_text(TEXT, encoding="utf-8")
    r = cli("viz", ckpt, text, "-o", "p.html", "--tag", tag)
    assert r.code == 2 and says in r.err and r.err.count("\n") == 1


def test_tag_on_a_model_without_voices_is_one_line(cli, trained: Path, tmp_path: Path) -> None:
    text = tmp_path / "t.txt"
    text.write_text("def f():\n", encoding="utf-8")
    for args in (
        ["viz", trained, text, "-o", "p.html"],
        ["export", trained, "-o", "s", "--no-eval"],
    ):
        r = cli(*args, "--tag", "x")
        assert r.code == 2 and "this model has no voices; leave out --tag" in r.err, args
