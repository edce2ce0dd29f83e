"""Both inference engines against the torch module, through the protocol callers use: steps of a
batch, a whole sequence (logits, final state, per-position states), a sequence in slices, scoring,
the numpy state layout and the logits a state predicts. Both engines run on this CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import charrnn
from charrnn import checkpoint
from charrnn.infer.engine import EngineState, InferenceEngine
from charrnn.infer.numpy_engine import Engine
from charrnn.infer.sampler import Sampler
from charrnn.infer.score import Scorer
from charrnn.infer.torch_engine import TorchEngine
from charrnn.model import CharRNN, ModelConfig, load_model, state_tensors
from charrnn.training.config import TrainConfig
from charrnn.training.state import metadata
from charrnn.vocab import Vocab

CELLS = ["lstm", "gru", "rnn"]
KINDS = ["numpy", "torch"]
TOL = 1e-4
CHARS = "\n !,.abcdefghijklmnopqrstuvwxyz"
VOCAB = Vocab(tuple(CHARS), tuple(range(5, 5 + len(CHARS))))
TEXT = "the quick brown fox, jumps over the lazy dog!\nand then it sleeps.\n" * 3


def save_checkpoint(path: Path, cell: str) -> Path:
    """A small random-initialised model written as a real checkpoint."""
    torch.manual_seed({"lstm": 1, "gru": 2, "rnn": 3}[cell])
    cfg = ModelConfig(vocab_size=VOCAB.size, cell=cell, layers=2, hidden=24, embed=8)
    model = CharRNN(cfg)
    with torch.no_grad():  # larger weights than the default init: states that move
        for p in model.parameters():
            p.mul_(2.0)
    meta = metadata(cfg, TrainConfig(), VOCAB, {}, {}, {})
    meta |= {"history": {"train": [], "val": []}, "parameters": 0}
    checkpoint.save(path, {f"model.{k}": v for k, v in model.state_dict().items()}, meta)
    return path


@pytest.fixture(scope="module", params=CELLS)
def ckpt(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp(f"parity-{request.param}")
    return save_checkpoint(base / "model.ckpt", request.param)


def load(kind: str, path: Path) -> InferenceEngine:
    if kind == "numpy":
        return Engine.load(path, threads=1, deterministic=True)
    return TorchEngine.load(path, "cpu")


def module(path: Path) -> CharRNN:
    return load_model(checkpoint.read_header(path))


def reference(model: CharRNN, ids: list[int]) -> tuple[np.ndarray, list[np.ndarray], list]:
    """The module one character at a time from zeros: logits per position, and every layer's h
    (and c) per position, as layers × T × hidden."""
    state = model.init_state(1)
    logits, hs, cs = [], [], []
    with torch.no_grad():
        for ch in ids:
            out, state = model(torch.tensor([[ch]]), state)
            logits.append(out[0, 0].numpy())
            ts = state_tensors(state)
            hs.append(ts[0][:, 0].numpy().copy())
            cs.append(ts[1][:, 0].numpy().copy() if len(ts) > 1 else None)
    h = list(np.stack(hs, axis=1))
    c = list(np.stack(cs, axis=1)) if cs[0] is not None else []
    return np.stack(logits), h, c


def close(a: np.ndarray, b: np.ndarray) -> None:
    np.testing.assert_allclose(a, b, rtol=0, atol=TOL)


@pytest.mark.parametrize("kind", KINDS)
def test_both_engines_declare_the_protocol(kind: str, ckpt: Path) -> None:
    engine = load(kind, ckpt)
    assert isinstance(engine, InferenceEngine)
    assert isinstance(engine.initial_state(2), EngineState)
    assert engine.cfg.cell == engine.cell and engine.header is not None


@pytest.mark.parametrize("kind", KINDS)
def test_step_a_batch_of_three_streams(kind: str, ckpt: Path) -> None:
    model, engine = module(ckpt), load(kind, ckpt)
    ids = np.random.default_rng(0).integers(0, VOCAB.size, (3, 12))
    with torch.no_grad():
        ref, ref_state = model(torch.as_tensor(ids), model.init_state(3))
    state = engine.initial_state(3)
    for t in range(ids.shape[1]):
        close(engine.step(ids[:, t], state), ref[:, t].numpy())
    held = engine.to_numpy(state)
    ts = state_tensors(ref_state)
    for i in range(model.cfg.layers):
        close(held.h[i], ts[0][i].numpy())
        if len(ts) > 1:
            assert held.c is not None
            close(held.c[i], ts[1][i].numpy())
    assert (held.c is None) == (model.cfg.cell != "lstm")
    engine.close()


@pytest.mark.parametrize("kind", KINDS)
def test_forward_logits_final_state_and_per_position_states(kind: str, ckpt: Path) -> None:
    model, engine = module(ckpt), load(kind, ckpt)
    ids = VOCAB.encode(TEXT)
    logits, hidden, cells = reference(model, ids)
    fwd = engine.forward(ids)
    close(fwd.logits, logits)
    assert fwd.hidden is None and fwd.cells is None
    final = engine.to_numpy(fwd.state)
    for i in range(model.cfg.layers):
        close(final.h[i][0], hidden[i][-1])
        if cells:
            assert final.c is not None
            close(final.c[i][0], cells[i][-1])
    last = engine.forward(ids, last_only=True)
    assert last.logits.shape == (1, VOCAB.size)
    close(last.logits[0], logits[-1])

    kept = engine.forward(ids, keep_states=True)
    close(kept.logits, logits)
    assert kept.hidden is not None and len(kept.hidden) == model.cfg.layers
    for got, want in zip(kept.hidden, hidden, strict=True):
        assert isinstance(got, np.ndarray) and got.shape == (len(ids), model.cfg.hidden)
        close(got, want)
    if model.cfg.cell == "lstm":
        assert kept.cells is not None and len(kept.cells) == model.cfg.layers
        for got, want in zip(kept.cells, cells, strict=True):
            assert isinstance(got, np.ndarray) and got.shape == (len(ids), model.cfg.hidden)
            close(got, want)
    else:
        assert kept.cells is None
    engine.close()


@pytest.mark.parametrize("kind", KINDS)
def test_a_sequence_continues_from_a_state(kind: str, ckpt: Path) -> None:
    """forward from a state, then step on: the same as reading the whole text at once."""
    model, engine = module(ckpt), load(kind, ckpt)
    ids = VOCAB.encode(TEXT)
    logits, _, _ = reference(model, ids)
    first = engine.forward(ids[:50], last_only=True)
    rest = engine.forward(ids[50:150], first.state)
    close(rest.logits, logits[50:150])
    state = rest.state
    for t in range(150, 160):
        close(engine.step([ids[t]], state)[0], logits[t])
    close(engine.head_logits(state)[0], logits[159])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("keep", [False, True])
def test_forward_steps_pauses_and_equals_forward(kind: str, keep: bool, ckpt: Path) -> None:
    engine = load(kind, ckpt)
    ids = VOCAB.encode(TEXT)
    start = engine.forward(VOCAB.encode("abc"), last_only=True).state
    steps = engine.forward_steps(ids, start, last_only=False, keep_states=keep, every=16)
    pauses = 0
    while True:
        try:
            next(steps)
            pauses += 1
        except StopIteration as done:
            sliced = done.value
            break
    assert pauses >= len(ids) // 16 - 1
    whole = engine.forward(ids, start, keep_states=keep)
    close(sliced.logits, whole.logits)
    a, b = engine.to_numpy(sliced.state), engine.to_numpy(whole.state)
    for x, y in zip(a.h + (a.c or []), b.h + (b.c or []), strict=True):
        close(x, y)
    if keep:
        assert sliced.hidden is not None and whole.hidden is not None
        parts = zip(
            sliced.hidden + (sliced.cells or []), whole.hidden + (whole.cells or []), strict=True
        )
        for x, y in parts:
            close(x, y)
    # the state given is not changed by reading from it
    again = engine.forward(ids, start, keep_states=keep)
    close(again.logits, whole.logits)


@pytest.mark.parametrize("kind", KINDS)
def test_scoring_agrees_with_the_module(kind: str, ckpt: Path) -> None:
    model, engine = module(ckpt), load(kind, ckpt)
    text = TEXT
    ids = torch.tensor([VOCAB.index(c) for c in "\n" + text])
    with torch.no_grad():
        out, _ = model(ids[None, :-1])
        nats = torch.nn.functional.cross_entropy(out[0].double(), ids[1:], reduction="sum")
    score = Scorer(engine).score(text)
    assert score.chars == len(text)
    assert abs(score.nats - nats.item()) < TOL * len(text)
    assert abs(score.nats_per_char - nats.item() / len(text)) < TOL
    chunks = list(Scorer(engine).chunks(text, keep_states=True, chunk=64))
    assert sum(float(c.nats.sum()) for c in chunks) == pytest.approx(score.nats, abs=1e-3)
    assert all(c.hidden is not None and len(c.hidden[0]) == len(c.ids) for c in chunks)


@pytest.mark.parametrize("kind", KINDS)
def test_numpy_layout_round_trip_and_head_logits(kind: str, ckpt: Path) -> None:
    engine = load(kind, ckpt)
    ids = VOCAB.encode(TEXT[:40])
    fwd = engine.forward(ids, last_only=True)
    held = engine.to_numpy(fwd.state)
    assert all(isinstance(h, np.ndarray) and h.shape == (1, 24) for h in held.h)
    back = engine.from_numpy(held)
    again = engine.to_numpy(back)
    for x, y in zip(held.h + (held.c or []), again.h + (again.c or []), strict=True):
        assert np.array_equal(x, y)
    close(engine.head_logits(back)[0], fwd.logits[-1])
    # a restored state steps as the original does, and is independent of the stored copy
    a = engine.step([3], fwd.state)
    b = engine.step([3], back)
    close(a, b)
    assert np.array_equal(engine.to_numpy(engine.from_numpy(held)).h[0], held.h[0])


def test_numpy_and_torch_engines_agree(ckpt: Path) -> None:
    ids = VOCAB.encode(TEXT)
    a, b = load("numpy", ckpt), load("torch", ckpt)
    fa, fb = a.forward(ids, keep_states=True), b.forward(ids, keep_states=True)
    close(fa.logits, fb.logits)
    assert fa.hidden is not None and fb.hidden is not None
    for x, y in zip(fa.hidden + (fa.cells or []), fb.hidden + (fb.cells or []), strict=True):
        close(x, y)
    # a state moves between them through the numpy layout
    st = b.from_numpy(a.to_numpy(fa.state))
    close(b.step([5], st), a.step([5], fa.state))


def test_load_auto_and_cuda_on_this_machine(ckpt: Path) -> None:
    auto = charrnn.load(str(ckpt), device="auto")
    assert isinstance(auto, Sampler)
    if torch.cuda.is_available():
        assert isinstance(auto.engine, TorchEngine)
        cuda = charrnn.load(str(ckpt), device="cuda")
        assert cuda.score(TEXT).chars == len(TEXT)  # keep_states reaches the torch engine
        return
    if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        assert isinstance(auto.engine, Engine)
    assert auto.score(TEXT).chars == len(TEXT)
    with pytest.raises(charrnn.InputError) as err:
        charrnn.load(str(ckpt), device="cuda")
    assert "\n" not in str(err.value) and "cuda" in str(err.value).lower()
