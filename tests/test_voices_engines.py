"""Voiced models at inference, below the CLI: both engines against the torch module with voice ids
(a voice, no voice, and a mix against the weighted embedding computed directly), the state
carrying each row's voice, and guidance (strength 1 is the plain voiced draw; strength 2 is
u + 2(c − u) recomputed step by step from the engine)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from charrnn import checkpoint
from charrnn.errors import InputError
from charrnn.infer.beam import beam_search
from charrnn.infer.controls import Guard, Rules
from charrnn.infer.engine import InferenceEngine
from charrnn.infer.logits import Filters
from charrnn.infer.numpy_engine import Engine
from charrnn.infer.sampler import Options, Sampler
from charrnn.infer.stream import Stream, draw
from charrnn.infer.torch_engine import TorchEngine
from charrnn.model import CharRNN, load_model
from tests.voiced import random_voiced

TOL = 1e-4
TEXT = "abc gfe\nxyz tuv abba\nzz"
MIX = np.array([0.3, 0.7])


@pytest.fixture(scope="module", params=["lstm", "gru", "rnn"])
def ckpt(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp(f"voiced-{request.param}")
    return random_voiced(base / "model.ckpt", request.param, layers=2, seed=3)


def engines(path: Path) -> list[InferenceEngine]:
    return [Engine.load(path, threads=1, deterministic=True), TorchEngine.load(path, "cpu")]


def module_logits(model: CharRNN, ids: list[int], voice: int) -> np.ndarray:
    with torch.no_grad():
        x = torch.tensor([ids])
        out, _ = model(x, None, torch.full_like(x, voice))
    return out[0].numpy()


def mixed_logits(model: CharRNN, ids: list[int], weights: np.ndarray) -> np.ndarray:
    """The model fed the weighted voice embedding at every step, computed directly in torch."""
    V = model.cfg.voices
    with torch.no_grad():
        x = torch.tensor([ids])
        mix = torch.tensor(weights, dtype=torch.float32) @ model.voice.weight[:V]
        inp = torch.cat([model.embed(x), mix.expand(1, len(ids), -1)], dim=-1)
        out, _ = model.rnn(inp)
        return model.head(out)[0].numpy()


def test_engines_equal_the_module_for_a_voice_no_voice_and_a_mix(ckpt: Path) -> None:
    model = load_model(checkpoint.read_header(ckpt))
    ids = Engine.load(ckpt).vocab.encode(TEXT)
    cases = [(np.eye(2)[0], 0), (np.eye(2)[1], 1), (None, 2)]
    for engine in engines(ckpt):
        for weights, vid in cases:
            want = module_logits(model, ids, vid)
            fwd = engine.forward(ids, engine.initial_state(1, weights))
            assert np.abs(fwd.logits - want).max() < TOL
            kept = engine.forward(ids, engine.initial_state(1, weights), keep_states=True)
            assert np.abs(kept.logits - want).max() < TOL
            state = engine.initial_state(1, weights)
            steps = np.concatenate([engine.step([i], state) for i in ids])
            assert np.abs(steps - want).max() < TOL
        got = engine.forward(ids, engine.initial_state(1, MIX)).logits
        assert np.abs(got - mixed_logits(model, ids, MIX)).max() < TOL
        assert np.abs(engine.forward(ids).logits - module_logits(model, ids, 2)).max() < TOL


def test_rows_keep_their_voice_through_select_concat_and_the_numpy_layout(ckpt: Path) -> None:
    """A batch of three voices steps each row as that voice alone (bit for bit in the numpy
    engine's deterministic mode), through select, concat and a torch → numpy hand-over."""
    npe, te = engines(ckpt)
    ids = npe.vocab.encode(TEXT)
    alone = [npe.initial_state(1, w) for w in (np.eye(2)[0], MIX, None)]
    batch = type(alone[0]).concat(alone).select([2, 0, 1]).copy()
    for i in ids[:8]:
        got = npe.step([i, i, i], batch)
        want = [npe.step([i], s)[0] for s in alone]
        assert np.array_equal(got, np.stack([want[2], want[0], want[1]]))
    tstate = te.initial_state(3, np.stack([np.eye(2)[1], MIX, MIX]))
    te.step(ids[:3], tstate)
    moved = npe.from_numpy(te.to_numpy(tstate.select([0, 2])))
    back = te.from_numpy(te.to_numpy(tstate.select([0, 2])))
    assert np.abs(npe.step(ids[3:5], moved) - te.step(ids[3:5], back)).max() < TOL


def test_voices_are_refused_by_an_unvoiced_engine(tmp_path: Path) -> None:
    from tests.test_engine_parity import save_checkpoint

    path = save_checkpoint(tmp_path / "plain.ckpt", "lstm")
    for engine in engines(path):
        assert engine.to_numpy(engine.initial_state(2)).voice is None
        with pytest.raises(InputError, match="no voices"):
            engine.initial_state(1, np.eye(2)[0])


def _hand_sample(engine: Engine, prime: str, seed: int, n: int, weights, strength: float) -> str:
    """Sampling written out from the engine alone: voiced (and untagged) streams of batch 1 and
    the combination u + S·(c − u) recomputed here at every step."""
    ids = engine.vocab.encode(prime)
    voiced = engine.forward(ids, engine.initial_state(1, weights))
    plain = engine.forward(ids, engine.initial_state(1, None))
    c, u = voiced.logits[-1:], plain.logits[-1:]
    stream = Stream(seed, Guard(Rules(), engine.vocab, prime))
    out = []
    for _ in range(n):
        logits = c if strength == 1 else u + np.float32(strength) * (c - u)
        ch = draw(engine.vocab, Filters(), [stream], logits)[0]
        out.append(engine.vocab.chars[ch])
        stream.take(ch, engine.vocab)
        c, u = engine.step([ch], voiced.state), engine.step([ch], plain.state)
    return "".join(out)


@pytest.mark.parametrize("strength", [1.0, 2.0])
def test_guidance_equals_the_formula_step_by_step(ckpt: Path, strength: float) -> None:
    engine = Engine.load(ckpt, threads=1, deterministic=True)
    sampler = Sampler(engine)
    for seed in (1, 2):
        want = _hand_sample(engine, "ab\n", seed, 60, np.eye(2)[1], strength)
        got = sampler.generate("ab\n", 60, tag="b", tag_strength=strength, rng_seed=seed)
        assert got == want
    batch = sampler.generate_batch("ab\n", 60, 3, tag="b", tag_strength=strength, rng_seed=1)
    assert batch[0] == _hand_sample(engine, "ab\n", 1, 60, np.eye(2)[1], strength)
    assert batch[2] == _hand_sample(engine, "ab\n", 3, 60, np.eye(2)[1], strength)


def test_a_mix_is_the_normalised_weights_and_beam_reads_the_guided_distribution(
    ckpt: Path,
) -> None:
    sampler = Sampler(Engine.load(ckpt, threads=1, deterministic=True))
    half = sampler.generate("ab", 40, tag={"a": 1, "b": 3}, rng_seed=5)
    assert half == sampler.generate("ab", 40, tag={"a": 0.25, "b": 0.75}, rng_seed=5)
    assert half != sampler.generate("ab", 40, tag="b", rng_seed=5)
    for strength in (1.0, 2.5):
        opts = Options(40, Filters(0.0), tag="a", tag_strength=strength)
        greedy = sampler.samples("ab", opts, 0)[0].text
        assert beam_search(sampler, "ab", opts, 1).text == greedy


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"tag": "c"}, "unknown voice 'c'; this model's voices: a, b"),
        ({"tag": {"a": -1.0}}, "weights must be >= 0"),
        ({"tag": {"a": 0, "b": 0}}, "all zero"),
        ({"tag": "a", "tag_strength": -0.5}, "--tag-strength must be >= 0"),
        ({"tag_strength": 2.0}, "give one with --tag"),
    ],
)
def test_refusals_are_one_line(ckpt: Path, kw: dict, message: str) -> None:
    sampler = Sampler(Engine.load(ckpt))
    with pytest.raises(InputError) as e:
        sampler.generate("ab", 5, **kw)
    assert message in str(e.value) and "\n" not in str(e.value)
