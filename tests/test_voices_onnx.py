"""A voiced model in ONNX: the exported graph takes the voice mix as `voice_weights` and its logits
in onnxruntime equal the numpy engine's for a voice, a mix and no voice, rows of one batch in
different voices, both graph forms (native and the int8 path's MatMul Scan); `--engine onnx`
samples with a voice and keeps it through the numpy layout; the graph cache tells voiced from
unvoiced."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from charrnn import checkpoint
from charrnn.infer.export import onnx_graph
from charrnn.infer.numpy_engine import Engine, read_model_tensors
from charrnn.infer.sampler import Sampler
from tests.voiced import random_voiced

ort = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed")

TOL = 1e-5
TEXT = "abc gfe\nxyz tuv abba\nzz"
MIX = np.array([0.3, 0.7])


@pytest.fixture(scope="module", params=["lstm", "gru", "rnn"])
def ckpt(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp(f"voiced-onnx-{request.param}")
    return random_voiced(base / "model.ckpt", request.param, layers=2, seed=5)


def session(data: bytes | str):
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def run(sess, ids: np.ndarray, weights: np.ndarray, layers: int, hidden: int, lstm: bool):
    zeros = np.zeros((layers, len(ids), hidden), np.float32)
    feeds = {"input_ids": ids.astype(np.int64), "h": zeros, "voice_weights": weights}
    if lstm:
        feeds["c"] = zeros
    return sess.run(None, feeds)[0]


def test_exported_graph_equals_the_numpy_engine_for_a_voice_a_mix_and_none(cli, ckpt: Path) -> None:
    assert cli("export", ckpt, "-f", "onnx", "-o", "g", "--no-eval").code == 0
    model = onnx.load("g/model.onnx")
    onnx.checker.check_model(model)
    meta = {p.key: p.value for p in model.metadata_props}
    assert json.loads(meta["charrnn.voices"]) == ["a", "b"]
    assert "voice_weights" in meta["charrnn.inputs"]
    engine = Engine.load(ckpt, threads=1, deterministic=True)
    ids = np.array(engine.vocab.encode(TEXT))
    sess = session("g/model.onnx")
    lstm = engine.cell == "lstm"
    cases = {"a": np.array([1.0, 0.0]), "mix": MIX, "none": None}
    for name, w in cases.items():
        want = engine.forward(ids.tolist(), engine.initial_state(1, w)).logits
        fed = np.zeros((1, 2), np.float32) if w is None else w[None].astype(np.float32)
        got = run(sess, ids[None], fed, engine.layers, engine.hidden, lstm)[0]
        assert np.abs(got - want).max() <= TOL, name
    # one batch, a row per case: [1, V] broadcasts, [batch, V] gives each row its own
    rows = np.array([[1.0, 0.0], MIX, [0.0, 0.0]], np.float32)
    both = run(sess, np.stack([ids] * 3), rows, engine.layers, engine.hidden, lstm)
    for r, w in enumerate(cases.values()):
        want = engine.forward(ids.tolist(), engine.initial_state(1, w)).logits
        assert np.abs(both[r] - want).max() <= TOL, r
    # the voice is in the graph: another mix gives other logits
    other = run(
        sess, ids[None], np.array([[0.0, 1.0]], np.float32), engine.layers, engine.hidden, lstm
    )
    assert (
        np.abs(
            other[0] - run(sess, ids[None], rows[:1], engine.layers, engine.hidden, lstm)[0]
        ).max()
        > 1e-3
    )


def test_the_matmul_form_takes_the_voice_too(ckpt: Path) -> None:
    header = checkpoint.read_header(ckpt)
    tensors = {k.removeprefix("model."): v for k, v in read_model_tensors(header).items()}
    engine = Engine.load(ckpt, threads=1, deterministic=True)
    graph = onnx_graph.build(engine.cell, tensors, "matmul").SerializeToString()
    ids = np.array(engine.vocab.encode(TEXT))
    got = run(
        session(graph),
        ids[None],
        MIX[None].astype(np.float32),
        engine.layers,
        engine.hidden,
        engine.cell == "lstm",
    )[0]
    want = engine.forward(ids.tolist(), engine.initial_state(1, MIX)).logits
    assert np.abs(got - want).max() <= TOL


def test_onnx_engine_samples_with_a_voice_and_keeps_it_through_the_numpy_layout(
    ckpt: Path,
) -> None:
    from charrnn.infer.onnx_engine import OnnxEngine

    numpy_engine = Engine.load(ckpt, threads=1, deterministic=True)
    engine = OnnxEngine.load(ckpt, dtype="f32")
    ids = numpy_engine.vocab.encode(TEXT)
    for w in (np.array([0.0, 1.0]), MIX, None):
        want = numpy_engine.forward(ids, numpy_engine.initial_state(1, w))
        got = engine.forward(ids, engine.initial_state(1, w))
        assert np.abs(got.logits - want.logits).max() <= TOL
        # the server keeps states in numpy's layout: the row's constant, and back again
        held = engine.to_numpy(got.state)
        assert np.abs(held.voice - want.state.voice).max() <= 1e-6
        back = engine.from_numpy(held)
        assert np.abs(back.voice - got.state.voice).max() <= 1e-5
        nxt = engine.step([3], back)
        assert np.abs(nxt - numpy_engine.step([3], want.state.copy())).max() <= TOL
    greedy = {}
    for e in (numpy_engine, engine):
        greedy[type(e).__name__] = Sampler(e).generate("ab", 40, temperature=0, tag="b")
    assert greedy["Engine"] == greedy["OnnxEngine"]


def test_a_voiced_models_cached_graph_takes_the_voice(tmp_path: Path) -> None:
    """The cache key holds the builder's version (bumped for the voice input), so a graph built
    before voices is never reused for a voiced model; the file's fingerprint tells models apart."""
    from charrnn.infer import onnx_cache
    from charrnn.infer.onnx_engine import OnnxEngine

    voiced = random_voiced(tmp_path / "v.ckpt", "gru", layers=1, seed=1)
    OnnxEngine.load(voiced, dtype="f32")
    cached = onnx_cache.path(checkpoint.fingerprint(voiced), "f32")
    names = [i.name for i in onnx.load_from_string(cached.read_bytes()).graph.input]
    assert names == ["input_ids", "h", "voice_weights"]
    assert f"graph{onnx_graph.GRAPH_VERSION}" in cached.name and onnx_graph.GRAPH_VERSION >= 2
