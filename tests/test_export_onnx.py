"""The ONNX export and `--engine onnx`, run in onnxruntime itself: parity with the numpy engine for
every cell and 1 to 3 layers, one step and a 64-character chunk; metadata; int8 quality; the
sampler on top of it; and its refusals."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from charrnn import checkpoint
from charrnn.infer.numpy_engine import Engine

ort = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed")


def run(session, ids: np.ndarray, h: np.ndarray, c: np.ndarray | None) -> list[np.ndarray]:
    feeds = {"input_ids": ids.astype(np.int64), "h": h}
    if c is not None:
        feeds["c"] = c
    return session.run(None, feeds)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_f32_onnx_agrees_with_the_numpy_engine(
    cli, cell_models: dict[str, Path], cell: str
) -> None:
    ckpt = cell_models[cell]
    r = cli("export", ckpt, "-f", "onnx", "-o", cell, "--no-eval")
    assert r.code == 0, r.err
    model = onnx.load(f"{cell}/model.onnx")
    onnx.checker.check_model(model)
    meta = {p.key: p.value for p in model.metadata_props}
    engine = Engine.load(ckpt, threads=1)
    assert json.loads(meta["charrnn.vocab"]) == list(engine.vocab.chars)
    assert meta["charrnn.cell"] == cell and meta["charrnn.version"]
    assert json.loads(meta["charrnn.sampling"])["temperature"] == 1.0
    session = ort.InferenceSession(f"{cell}/model.onnx", providers=["CPUExecutionProvider"])
    L, H = engine.layers, engine.hidden
    ids = np.array(engine.vocab.encode("def parse(self, text):\n    return")[:64])
    ref = engine.forward(ids.tolist())
    zeros = np.zeros((L, 1, H), np.float32)
    out = run(session, ids[None], zeros, zeros if cell == "lstm" else None)
    assert np.abs(out[0][0] - ref.logits).max() < 1e-5  # the chunk
    assert np.abs(out[1][:, 0] - np.stack(ref.state.h)[:, 0]).max() < 1e-5
    state = ref.state.copy()
    step = engine.step([7], state)  # one step from that state, batch 1
    one = run(session, np.array([[7]]), out[1], out[2] if cell == "lstm" else None)
    assert np.abs(one[0][0, 0] - step[0]).max() < 1e-5
    # a batch of two streams from different states
    both = run(
        session,
        np.array([[7], [3]]),
        np.concatenate([out[1], zeros], axis=1),
        np.concatenate([out[2], zeros], axis=1) if cell == "lstm" else None,
    )
    fresh = engine.initial_state(1)
    assert np.abs(both[0][1, 0] - engine.step([3], fresh)[0]).max() < 1e-5


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_int8_onnx_is_quantized_and_costs_little(
    cli, cell_models: dict[str, Path], cell: str
) -> None:
    r = cli("export", cell_models[cell], "-f", "onnx", "--dtype", "int8", "-o", "q", "--json")
    assert r.code == 0, r.err
    info = json.loads(r.out)
    ops = {n.op_type for n in onnx.load("q/model.onnx").graph.node}
    body = [
        n.op_type
        for node in onnx.load("q/model.onnx").graph.node
        for a in node.attribute
        if a.type == onnx.AttributeProto.GRAPH
        for n in a.g.node
    ]
    if cell == "lstm":
        assert "DynamicQuantizeLSTM" in ops
    else:
        assert "MatMulInteger" in body or "DynamicQuantizeMatMul" in body
    q = info["quality"]
    assert q["dtype"] == "int8" and q["chars"] == 20_000
    assert abs(q["cost"]) < 0.05  # tiny models; the 10-minute models' figures are in docs/export.md
    assert cli("export", cell_models[cell], "-f", "onnx", "-o", "f", "--no-eval").code == 0
    assert Path("q/model.onnx").stat().st_size < 0.6 * Path("f/model.onnx").stat().st_size


def test_sample_with_the_onnx_engine_f32_writes_the_numpy_engines_greedy_text(
    cli, trained: Path
) -> None:
    numpy_run = cli("sample", trained, "--seed", "def ", "--temp", "0", "--length", "150")
    onnx_run = cli(
        "sample",
        trained,
        "--engine",
        "onnx",
        "--dtype",
        "f32",
        "--seed",
        "def ",
        "--temp",
        "0",
        "--length",
        "150",
    )
    assert onnx_run.code == 0, onnx_run.err
    assert onnx_run.out == numpy_run.out and len(numpy_run.out) > 150
    again = cli(
        "sample",
        trained,
        "--engine",
        "onnx",
        "--seed",
        "def ",
        "--length",
        "80",
        "--rng-seed",
        "5",
        "--num-samples",
        "3",
        "--json",
    )
    assert again.code == 0, again.err
    cached = sorted(p.name for p in (Path(os.environ["CHARRNN_CACHE"]) / "onnx").iterdir())
    fp = checkpoint.fingerprint(trained)
    assert [n.split("-")[:2] for n in cached] == [[fp, "f32"], [fp, "int8"]]


def test_python_api_scores_through_onnx(trained: Path) -> None:
    import charrnn

    s = charrnn.load(str(trained), engine="onnx", dtype="f32")
    ref = charrnn.load(str(trained))
    text = "import os\nimport sys\n"
    assert abs(s.score(text).nats_per_char - ref.score(text).nats_per_char) < 1e-5
    assert s.generate("def ", 50, temperature=0) == ref.generate("def ", 50, temperature=0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--engine", "onnx", "--device", "cuda"], "--engine onnx runs on the CPU"),
        (["--engine", "onnx", "--deterministic"], "leave it out with --engine onnx"),
    ],
)
def test_onnx_engine_refusals(cli, trained: Path, args: list[str], message: str) -> None:
    r = cli("sample", trained, "--length", "5", *args)
    assert r.code == 2 and message in r.err, r.err


def test_fingerprint_keys_the_cache(trained: Path) -> None:
    from charrnn.infer.onnx_engine import cache_path

    p = cache_path(checkpoint.fingerprint(trained), "int8")
    assert p.name.startswith(checkpoint.fingerprint(trained)) and p.suffix == ".onnx"


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("form", ["native", "matmul"])
def test_every_depth_and_form_agrees_with_the_numpy_engine(
    cell: str, layers: int, form: str
) -> None:
    """Weights at PyTorch's initial scale (uniform ±1/√hidden), so every cell and depth is covered
    beside the trained models above; the MatMul form is what int8 GRU/RNN exports quantize."""
    from charrnn.infer.export import onnx_graph
    from charrnn.model_config import ModelConfig, expected_shapes
    from charrnn.vocab import Vocab

    rng = np.random.default_rng(layers)
    cfg = ModelConfig(vocab_size=30, cell=cell, layers=layers, hidden=21, embed=7)
    bound = 1 / np.sqrt(cfg.hidden)
    t = {
        k: rng.uniform(-bound, bound, s).astype(np.float32)
        if k != "embed.weight"
        else rng.standard_normal(s).astype(np.float32)
        for k, s in expected_shapes(cfg).items()
    }
    engine = Engine(
        cfg,
        Vocab(tuple(chr(65 + i) for i in range(30))),
        {"model." + k: v for k, v in t.items()},
        1,
    )
    session = ort.InferenceSession(
        onnx_graph.build(cell, t, form).SerializeToString(), providers=["CPUExecutionProvider"]
    )
    ids = rng.integers(0, 30, 64)
    ref = engine.forward(ids.tolist())
    zeros = np.zeros((layers, 1, 21), np.float32)
    out = run(session, ids[None], zeros, zeros if cell == "lstm" else None)
    assert np.abs(out[0][0] - ref.logits).max() < 1e-5
    step = engine.step([4], ref.state.copy())
    one = run(session, np.array([[4]]), out[1], out[2] if cell == "lstm" else None)
    assert np.abs(one[0][0, 0] - step[0]).max() < 1e-5
