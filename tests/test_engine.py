"""The numpy inference engine against the torch module, its batch invariance, and its loading."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from charrnn.infer import numpy_engine as engine_module
from charrnn.infer.numpy_engine import Engine
from charrnn.model import CharRNN, ModelConfig
from charrnn.vocab import Vocab


def module_and_engine(cell: str, deterministic: bool = True, **kw) -> tuple[CharRNN, Engine]:
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=37, cell=cell, **{"layers": 3, "hidden": 64, "embed": 16} | kw)
    model = CharRNN(cfg).eval()
    vocab = Vocab(tuple(chr(65 + i) for i in range(37)))
    weights = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    return model, Engine(cfg, vocab, weights, threads=1, deterministic=deterministic)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_engine_matches_module_forward_after_a_long_prime(cell: str) -> None:
    model, eng = module_and_engine(cell)
    ids = torch.randint(0, 37, (1, 1100), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = model(ids)[0][0].numpy()
    fwd = eng.forward(ids[0, :1000].numpy())
    assert np.abs(fwd.logits - ref[:1000]).max() < 1e-4
    state = fwd.state
    for t in range(1000, 1100):  # then character by character, as sampling does
        got = eng.step([ids[0, t].item()], state)[0]
        assert np.abs(got - ref[t]).max() < 1e-4, (cell, t)


def test_engine_matches_trained_weights(trained: Path) -> None:
    from charrnn import checkpoint
    from charrnn.model import load_model

    model = load_model(checkpoint.read_header(trained))
    eng = Engine.load(trained)
    ids = torch.tensor(
        [eng.vocab.encode(("To be, or not to be: that is the question.\n" * 30)[:1000])]
    )
    with torch.no_grad():
        ref = model(ids)[0][0].numpy()
    fwd = eng.forward(ids[0, :900].numpy())
    assert np.abs(fwd.logits - ref[:900]).max() < 1e-4
    for t in range(900, 1000):
        assert np.abs(eng.step([ids[0, t].item()], fwd.state)[0] - ref[t]).max() < 1e-4


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("hidden", [75, 96])
def test_a_stream_is_the_same_alone_or_in_any_batch(cell: str, hidden: int, monkeypatch) -> None:
    """Bit for bit, with products cut into several column blocks and the batch split over threads."""
    monkeypatch.setattr(engine_module, "BLOCK_BYTES", 16 * 1024)
    _, eng = module_and_engine(cell, layers=2, hidden=hidden)
    eng.threads = 2
    rng = np.random.default_rng(3)
    seqs = rng.integers(0, 37, (21, 40))
    batch = eng.initial_state(21)
    outs = [eng.step(seqs[:, t], batch) for t in range(40)]
    for row in (0, 7, 20):
        alone = eng.initial_state(1)
        for t in range(40):
            assert np.array_equal(eng.step(seqs[row : row + 1, t], alone)[0], outs[t][row])
    eng.threads = 1  # and the thread count never changes the arithmetic
    again = eng.initial_state(21)
    for t in range(40):
        assert np.array_equal(eng.step(seqs[:, t], again), outs[t])


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("hidden", [96, 512])
def test_a_text_read_in_pieces_leaves_the_state_of_one_read(cell: str, hidden: int) -> None:
    """Bit for bit, whatever the pieces (one, two, three characters; across the prime's chunks):
    a chat session reads a conversation turn by turn and must answer as one read of it does."""
    _, eng = module_and_engine(cell, deterministic=False, layers=2, hidden=hidden, embed=32)
    ids = np.random.default_rng(5).integers(0, 37, 4300)  # more than one PRIME_CHUNK
    whole = eng.forward(ids, last_only=True)
    for cuts in ([1, 2, 4, 7], [63, 64, 65, 300], [4095, 4097, 4098], [4299]):
        state, prev = None, 0
        for cut in [*cuts, len(ids)]:
            part = eng.forward(ids[prev:cut], state, last_only=True)
            state, prev = part.state, cut
        assert all(np.array_equal(a, b) for a, b in zip(whole.state.h, state.h, strict=True))
        assert np.array_equal(whole.logits[-1], part.logits[-1]), cuts


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_fast_batches_agree_with_one_row_arithmetic_and_repeat(cell: str) -> None:
    """The default mode's matrix-matrix products: each row within rounding of its one-row result,
    and a repeated batch repeats bit for bit."""
    _, exact = module_and_engine(cell, layers=2, hidden=96)
    _, fast = module_and_engine(cell, deterministic=False, layers=2, hidden=96)
    seqs = np.random.default_rng(4).integers(0, 37, (21, 30))
    big, again, ref = fast.initial_state(21), fast.initial_state(21), exact.initial_state(21)
    for t in range(30):
        a, b = fast.step(seqs[:, t], big), fast.step(seqs[:, t], again)
        assert np.array_equal(a, b)
        assert np.abs(a - exact.step(seqs[:, t], ref)).max() < 1e-4


def test_state_select_reorders_streams() -> None:
    _, eng = module_and_engine("lstm", layers=1, hidden=8)
    st = eng.initial_state(3)
    eng.step([1, 2, 3], st)
    picked = st.select([2, 2, 0])
    assert np.array_equal(picked.h[0][0], st.h[0][2]) and np.array_equal(picked.c[0][2], st.c[0][0])


def test_bf16_checkpoints_load(tmp_path: Path) -> None:
    from charrnn import checkpoint
    from charrnn.infer.numpy_engine import read_model_tensors

    w = torch.randn(4, 3)
    checkpoint.save(tmp_path / "x.ckpt", {"model.w": w.to(torch.bfloat16)}, _meta())
    got = read_model_tensors(checkpoint.read_header(tmp_path / "x.ckpt"))["model.w"]
    assert np.array_equal(got, w.to(torch.bfloat16).float().numpy())


def _meta() -> dict:
    return {
        k: v
        for k, v in {
            "model": {},
            "train": {},
            "vocab": [],
            "vocab_counts": [],
            "corpus": {},
            "state": {},
            "optim": {},
            "history": {},
            "parameters": 0,
            "versions": {},
        }.items()
    }


def test_cpu_sampling_never_imports_torch(trained: Path) -> None:
    code = (
        "import sys, charrnn\n"
        f"s = charrnn.load({str(trained)!r})\n"
        "s.generate('ROMEO:', 50, 0.8, rng_seed=1)\n"
        "from charrnn.cli import main\n"
        f"sys.argv = ['charrnn', 'sample', {str(trained)!r}, '-n', '20', '--rng-seed', '1']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_the_torch_path_agrees_with_the_numpy_engine(trained: Path) -> None:
    """The --device cuda/mps path, run here on the CPU: same logits, and the sampler runs on it."""
    from charrnn.infer.sampler import Sampler
    from charrnn.infer.torch_engine import TorchEngine

    tor, eng = TorchEngine.load(trained, "cpu"), Engine.load(trained)
    ids = eng.vocab.encode("ROMEO:\nWhat say you?")
    a, b = tor.forward(ids), eng.forward(ids)
    assert np.abs(a.logits - b.logits).max() < 1e-4
    ta, tb = a.state.select([0, 0]), b.state.select([0, 0])
    for c in eng.vocab.encode("Nothing."):
        assert np.abs(tor.step([c, c], ta) - eng.step([c, c], tb)).max() < 1e-4
    assert len(Sampler(tor).generate("ROMEO:", 40, 0.8, rng_seed=1)) == 40


@pytest.mark.parametrize(
    ("rows", "k", "n"),
    [(4096, 512, 2048), (4099, 512, 1536), (1000, 512, 2048), (4096, 512, 97), (4096, 512, 5000),
     (4096, 96, 384), (4096, 32, 32), (1100, 512, 5000)],
)  # fmt: skip
def test_products_in_blocks_equal_the_whole_product_bit_for_bit(rows: int, k: int, n: int) -> None:
    """A chunk's projection and head are computed a block of ~BLOCK_MACS multiply-adds between
    two pauses (a server's other streams never wait for a 4,096-row product); each row keeps the
    bits the whole product gives it, at layer widths and head widths small and large."""
    from charrnn.infer.numpy_engine import BLOCK_MACS, Engine
    from tests.conftest import drain

    rng = np.random.default_rng(rows + k + n)
    x = rng.standard_normal((rows, k)).astype(np.float32)
    w = rng.standard_normal((k, n)).astype(np.float32)
    got, pauses = drain(Engine._in_blocks(lambda b: b @ w, x, w))
    block = -(-BLOCK_MACS // (k * n))
    assert pauses == (0 if rows < 2 * block else len(range(0, rows - block // 2 + 1, block)))
    assert np.array_equal(got, x @ w)
