"""What keeps a run from losing work or memory: divergence stops every rank together, an empty
corpus is named, a library caller's run directory is not wiped silently, and --no-repeat remembers
a bounded window."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from .dist_worker import on_two_ranks

PHRASE = "the quick brown fox jumps over a lazy dog while seven wise owls sing of rain and sun"


def _text(chars: int, seed: int = 0) -> str:
    rng, words = random.Random(seed), PHRASE.split()
    out: list[str] = []
    while sum(map(len, out)) < chars:
        out.append(" ".join(rng.choice(words) for _ in range(rng.randint(4, 12))) + ".\n")
    return "".join(out)[:chars]


# --- 1. a non-finite weight stops every rank with the same message ----------------------------------
def diverging_worker(dataset_dir: str, out_dir: str) -> dict:
    """One rank of a 2-process run whose rank 0 finds a non-finite weight at its first save.

    Spawned by elastic_launch: importable, and it returns the Diverged message instead of raising
    (any other error, a collective that timed out included, fails the launch)."""
    import time
    from datetime import timedelta

    import torch
    import torch.distributed as dist

    from charrnn.data.dataset import load_dataset
    from charrnn.model import ModelConfig
    from charrnn.training.config import TrainConfig
    from charrnn.training.loop import Diverged, Trainer

    torch.set_num_threads(1)
    # a hang shows up as a timeout error within the test's time, not after half an hour
    dist.init_process_group("gloo", timeout=timedelta(seconds=60))
    save = Trainer._save

    def poisoned(self: Trainer, best: bool) -> None:
        if self.world.rank == 0:  # only rank 0 sees it: every rank must still stop
            with torch.no_grad():
                next(self.model.parameters()).view(-1)[0] = float("inf")
        save(self, best)

    Trainer._save = poisoned  # type: ignore[method-assign]
    ds = load_dataset(Path(dataset_dir))
    model = ModelConfig(
        vocab_size=ds.vocab.size, hidden=16, embed=8, layers=1, dropout=0.0, weight_drop=0.0
    )
    cfg = TrainConfig(
        batch_size=2, seq_len=16, max_steps=6, eval_every=2, log_every=1, precision="fp32"
    )
    t0 = time.monotonic()
    try:
        Trainer(ds, model, cfg, Path(out_dir), device="cpu").run()
        return {"error": None, "seconds": time.monotonic() - t0}
    except Diverged as e:
        return {"error": str(e), "seconds": time.monotonic() - t0}
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_non_finite_weights_stop_every_rank_with_the_same_message() -> None:
    from charrnn.data.prep import prep

    Path("c.txt").write_text(_text(12_000))
    prep(["c.txt"], Path("ds"))
    ranks = on_two_ranks("diverge", diverging_worker, "ds", "run")
    assert (
        ranks[0]["error"]
        == ranks[1]["error"]
        == (
            "training diverged at step 2 (the weights became non-finite); nothing was saved, "
            "no checkpoint was written; try a lower --lr"
        )
    )
    assert max(r["seconds"] for r in ranks.values()) < 30  # the collective timeout is 60 s
    assert not Path("run/last.ckpt").exists()


# --- 2. an empty corpus names the file --------------------------------------------------------------
def test_an_empty_corpus_is_named() -> None:
    from charrnn.data.prep import prep
    from charrnn.errors import InputError

    Path("empty.txt").write_text("")
    with pytest.raises(InputError) as e:
        prep(["empty.txt"], Path("x"))
    assert str(e.value) == "empty.txt: no text to train on (0 characters)"
    assert not Path("x").exists()


# --- 3. a fresh Trainer never wipes a run it was not told to replace --------------------------------
def _tiny_trainer(out: str, **kw):
    from charrnn.data.dataset import load_dataset
    from charrnn.data.prep import prep
    from charrnn.model import ModelConfig
    from charrnn.training.config import TrainConfig
    from charrnn.training.loop import Trainer

    if not Path("ds").exists():
        Path("c.txt").write_text(_text(3_000))
        prep(["c.txt"], Path("ds"), val_frac=0)
    ds = load_dataset(Path("ds"))
    model = ModelConfig(vocab_size=ds.vocab.size, hidden=16, embed=8, layers=1)
    cfg = TrainConfig(batch_size=2, seq_len=16, max_steps=2, eval_every=2, precision="fp32")
    return Trainer(ds, model, cfg, Path(out), device="cpu", **kw)


def test_a_fresh_trainer_refuses_a_directory_holding_a_run() -> None:
    from charrnn.errors import InputError

    _tiny_trainer("run").run()
    held = {p: Path("run", p).read_bytes() for p in ("last.ckpt", "best.ckpt", "metrics.jsonl")}
    with pytest.raises(InputError) as e:
        _tiny_trainer("run").run()
    assert str(e.value) == (
        "run already holds a run (last.ckpt, best.ckpt, metrics.jsonl); pass overwrite=True "
        "(the CLI's --overwrite) to start afresh there, or resume it"
    )
    assert {p: Path("run", p).read_bytes() for p in held} == held  # nothing touched
    done = _tiny_trainer("run", overwrite=True).run()
    assert done.step == 2 and Path(done.last_path).exists()


def test_a_metrics_log_alone_is_a_run_too() -> None:
    from charrnn.errors import InputError

    Path("run").mkdir()
    Path("run/metrics.jsonl").write_text(json.dumps({"step": 1, "train_loss": 3.0}) + "\n")
    with pytest.raises(InputError, match=r"^run already holds a run \(metrics\.jsonl\); "):
        _tiny_trainer("run").run()
    assert Path("run/metrics.jsonl").read_text().startswith('{"step": 1')


# --- 4. --no-repeat looks back a bounded window -----------------------------------------------------
def _entries(guard) -> int:
    return sum(len(v) for v in guard.followers.values())


@pytest.mark.slow
def test_no_repeat_memory_is_bounded_on_a_long_stream() -> None:
    from charrnn.infer.controls import NO_REPEAT_WINDOW, Guard, Rules
    from charrnn.vocab import Vocab

    vocab = Vocab(tuple(chr(c) for c in range(ord("0"), ord("0") + 64)))
    g = Guard(Rules(no_repeat=4), vocab, "")
    ids = np.random.default_rng(0).integers(0, vocab.size, 1_000_000)
    chars = vocab.chars
    most = 0
    for k, i in enumerate(ids.tolist()):
        g.accept(chars[i])
        if k % 10_000 == 0:
            most = max(most, _entries(g))
    most = max(most, _entries(g))
    assert NO_REPEAT_WINDOW == 100_000
    assert 0.9 * NO_REPEAT_WINDOW < most <= NO_REPEAT_WINDOW  # 64**4 grams: nearly all distinct


@pytest.mark.parametrize("gap, banned", [(0, True), (-1, True), (1, False)])
def test_no_repeat_bans_a_sequence_seen_within_the_window_only(gap: int, banned: bool) -> None:
    """The gram "abcd" ended `distance` characters before the one the next draw would end."""
    from charrnn.infer.controls import NO_REPEAT_WINDOW, Guard, Rules
    from charrnn.vocab import Vocab

    vocab = Vocab(tuple("abcdxyz"))
    distance = NO_REPEAT_WINDOW + gap
    filler = ("xyz" * NO_REPEAT_WINDOW)[: distance - 4]
    guards = []
    for prime, rest in (("abcd" + filler + "abc", ""), ("abcd", filler + "abc")):  # prime or drawn
        g = Guard(Rules(no_repeat=4), vocab, prime)
        for ch in rest:
            g.accept(ch)
        mask = g.banned()
        assert (mask is not None and bool(mask[vocab.index("d")])) is banned, (gap, len(prime))
        assert _entries(g) <= NO_REPEAT_WINDOW
        guards.append(g)
    assert guards[0].followers == guards[1].followers  # a prime counts as drawn text does


def test_no_repeat_short_texts_behave_as_before() -> None:
    from charrnn.infer.controls import Guard, Rules
    from charrnn.vocab import Vocab

    vocab = Vocab(tuple("abc"))
    g = Guard(Rules(no_repeat=2), vocab, "ab")
    g.accept("c")
    g.accept("a")
    assert g.banned() is not None and g.banned()[vocab.index("b")]
    c = g.copy()
    c.accept("c")  # "ac" is new: the copy remembers it, the original does not
    assert "a" in c.followers and vocab.index("c") in c.followers["a"]
    assert vocab.index("c") not in g.followers["a"]
