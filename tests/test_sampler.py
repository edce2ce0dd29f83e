"""Sampling: logits adjustment, the fast step against the module, seeds, greedy, stop strings."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import charrnn
from charrnn.errors import InputError
from charrnn.model import CharRNN, ModelConfig
from charrnn.sampler import FastStep, Sampler, adjust_logits, pick
from charrnn.vocab import Vocab


def test_adjust_logits_temperature_top_k_top_p() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.15, 0.1]]))
    scaled = torch.softmax(adjust_logits(logits, 2.0), -1)
    assert torch.allclose(scaled, torch.softmax(logits / 2, -1))
    tiny = torch.softmax(adjust_logits(logits, 1e-300), -1)  # overflows without the max shift
    assert torch.equal(tiny, torch.nn.functional.one_hot(logits.argmax(-1), 4).float())
    k2 = adjust_logits(logits, 1.0, top_k=2)
    assert torch.isinf(k2[0, 2:]).all() and torch.isfinite(k2[0, :2]).all()
    p = adjust_logits(logits, 1.0, top_p=0.7)  # 0.5 < 0.7 <= 0.75: keep two
    assert torch.isfinite(p[0, :2]).all() and torch.isinf(p[0, 2:]).all()
    assert torch.isfinite(adjust_logits(logits, 1.0, top_p=0.3)[0]).sum() == 1  # always one
    assert torch.isfinite(adjust_logits(logits, 1.0, top_p=1.0)).all()
    g = torch.Generator().manual_seed(0)
    assert pick(logits, 0.0, None, None, g).item() == 0


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_fast_step_matches_module_forward(cell: str) -> None:
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(vocab_size=37, cell=cell, layers=3, hidden=64, embed=16)).eval()
    ids = torch.randint(0, 37, (4, 30))
    with torch.no_grad():
        ref, _ = model(ids)
        _, state = model(ids[:, :10])
    step = FastStep(model)
    step.set_state(state)
    for t in range(10, 30):
        got = step(ids[:, t])
        assert torch.allclose(got, ref[:, t], atol=1e-4, rtol=0), (cell, t)


def small_sampler(text: str = "abc\nabd\n") -> Sampler:
    torch.manual_seed(1)
    vocab = Vocab.from_text(text)
    return Sampler(CharRNN(ModelConfig(vocab_size=vocab.size, hidden=16, embed=8)).eval(), vocab)


def test_same_seed_same_text_and_greedy_equals_top_k_1() -> None:
    s = small_sampler()
    a = s.generate("ab", 200, 1.0, rng_seed=5)
    assert a == s.generate("ab", 200, 1.0, rng_seed=5) and len(a) == 200
    assert a != s.generate("ab", 200, 1.0, rng_seed=6)
    greedy = s.generate("ab", 100, 0.0, rng_seed=1)
    assert greedy == s.generate("ab", 100, 0.0, rng_seed=2) == s.generate("ab", 100, 1.3, top_k=1)
    batch = s.generate_batch("ab", 50, 3, rng_seed=9)
    assert len(batch) == 3 and all(len(b) == 50 for b in batch)


def test_stop_strings_and_priming() -> None:
    s = small_sampler()
    text = s.generate("a", 500, 1.0, rng_seed=3)
    cut = text.find("\n")
    assert cut >= 0
    assert s.generate("a", 500, 1.0, rng_seed=3, stop="\n") == text[:cut]
    assert "".join(s.stream("", 20, 1.0, rng_seed=4)) == s.generate("", 20, 1.0, rng_seed=4)
    with pytest.raises(InputError, match="'z'"):
        s.generate("az", 5)
    assert len(s.generate("azzz", 5, unknown="skip")) == 5
    assert s.generate("a", 0) == ""


def test_prime_without_newline_in_vocab_draws_first_char() -> None:
    s = small_sampler("xyz" * 5)
    out = s.generate("", 30, 1.0, rng_seed=0)
    assert len(out) == 30 and set(out) <= set("xyz")


def test_long_prime_and_long_output_stream(trained: Path) -> None:
    s = charrnn.load(str(trained))
    prime = ("To be, or not to be: that is the question.\n" * 2400)[:100_000]
    assert len(s.generate(prime, 10, 0.8, rng_seed=1)) == 10
    stream = s.stream("A", 10**8, 1.0, rng_seed=1)
    first = [next(stream) for _ in range(2000)]
    assert len(first) == 2000
    stream.close()
