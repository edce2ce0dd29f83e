"""Voiced training (issue 42, item 2): batches whose voices are the spans' they were read from,
the balance modes' per-epoch shares and what the planner counts, the untagged share, a voiced run
and its --no-condition baseline through the CLI, and the exact resume of a balanced voiced run."""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np
import pytest
import torch

import charrnn
from charrnn import checkpoint
from charrnn.data.dataset import load_dataset
from charrnn.data.prep import prep
from charrnn.data.voices import TagOptions
from charrnn.model import ModelConfig
from charrnn.training.config import TrainConfig
from charrnn.training.loop import Trainer
from charrnn.training.voiced_batches import (
    PIECE,
    VoicedBatcher,
    make_batcher,
    pieces,
    voiced_config,
)

from .conftest import TINY
from .test_train import cut_at
from .test_voices_data import ALPHABETS, write_voices

SIZES = {"aa": [600], "bb": [500, 400], "cc": [900, 600]}  # 600, 900 and 1,500 characters


def labelled(sizes: dict = SIZES, val_frac: float = 0.2):
    write_voices(sizes=sizes)
    prep(["corpus"], Path("ds"), val_frac=val_frac, tags=TagOptions("dir"))
    return load_dataset(Path("ds"))


def batcher(ds, streams: int = 8, seq_len: int = 16, world: int = 1, rank: int = 0, **cfg):
    config = voiced_config(
        TrainConfig(batch_size=streams // world, seq_len=seq_len, **cfg), ds.voices.chars("train")
    )
    return make_batcher(ds.split("train"), ds.voices, config, rank, world)


def test_batches_carry_the_voice_of_the_span_each_character_was_read_from() -> None:
    ds = labelled()
    b = batcher(ds, untagged_share=0.25)
    assert isinstance(b, VoicedBatcher)
    names, step = ds.voices.names, 0
    for epoch in (0, 1):
        for t in range(b.steps_per_epoch):
            x, y, v = b.batch(t, epoch, step)
            assert (x[:, 1:] == y[:, :-1]).all() and v.shape == x.shape
            dropped = b.untagged(step)
            assert (v[dropped] == len(names)).all()
            for row in np.flatnonzero(~dropped):
                for char, voice in zip(ds.vocab.decode(x[row].tolist()), v[row], strict=True):
                    assert char in ALPHABETS[names[voice]]
            step += 1


def shares(b: VoicedBatcher, epoch: int) -> list[int]:
    order = b.order(epoch)
    return [int(order[order[:, 2] == v, 1].sum()) for v in range(b.voices)]


def test_each_balance_gives_its_stated_shares_and_the_planner_counts_them() -> None:
    ds = labelled()
    sizes = ds.voices.chars("train")
    assert sizes == [480, 720, 1200]
    assert shares(batcher(ds, balance="proportional"), 0) == sizes
    equal = batcher(ds, balance="equal")
    assert shares(equal, 0) == shares(equal, 3) == [800, 800, 800]
    capped = batcher(ds, balance="capped", voice_cap=600)
    assert shares(capped, 1) == [480, 600, 600] and capped.epoch_chars == 1680
    median = batcher(ds, balance="capped")  # the cap defaults to the median voice's size
    assert shares(median, 0) == [480, 720, 720]
    # deterministic per (seed, epoch); another epoch, another order
    again = batcher(ds, balance="equal")
    assert (again.order(2) == equal.order(2)).all() and not np.array_equal(
        equal.order(1), equal.order(2)
    )
    plan = charrnn.plan(
        "corpus", tags_from="dir", val_frac=0.2, balance="capped", voice_cap=600, max_steps=5
    )
    assert plan.record["inputs"]["train_chars"] == 1680
    assert plan.train.balance == "capped" and plan.model.voices == 3
    assert plan.model.voice_dim == 16
    assert "voices: 3, balance capped of up to 600 chars: 1,680 chars an epoch" in plan.notes[-1]
    cut = pieces(np.array([[0, 2 * PIECE + 7, 1], [2 * PIECE + 7, 3, 0]], dtype=np.int64))
    assert cut.tolist() == [
        [0, PIECE, 1],
        [PIECE, PIECE, 1],
        [2 * PIECE, 7, 1],
        [2 * PIECE + 7, 3, 0],
    ]


def test_the_untagged_share_is_as_asked_per_row_and_the_same_for_any_split_of_rows() -> None:
    ds = labelled()
    one = batcher(ds, streams=64, seq_len=4, untagged_share=0.3)
    drawn = [one.untagged(step).mean() for step in range(300)]
    assert statistics.mean(drawn) == pytest.approx(0.3, abs=0.02)
    assert (
        one.untagged(7) == batcher(ds, streams=64, seq_len=4, untagged_share=0.3).untagged(7)
    ).all()
    assert not (one.untagged(7) == one.untagged(8)).all()
    second = batcher(ds, streams=64, seq_len=4, world=2, rank=1, untagged_share=0.3)
    assert (second.untagged(7) == one.untagged(7)[32:]).all()


def test_a_voiced_run_records_its_voices_and_the_baseline_trains_unvoiced_on_the_same_splits(
    cli,
) -> None:
    write_voices(sizes=SIZES)
    args = ["train", "corpus", "--tags-from", "dir", "--val-frac", "0.2", *TINY]
    r = cli(*args, "--max-steps", "6", "--eval-every", "3", "-o", "voiced")
    assert r.code == 0, r.err
    assert "; aa " in r.err  # the per-voice figures on the evaluation line
    header = checkpoint.read_header("voiced/last.ckpt")
    meta, names = header.meta, ["aa", "bb", "cc"]
    assert header.format_version == 4
    assert meta["model"]["voices"] == 3 and meta["model"]["voice_dim"] == 16
    voices = meta["voices"]
    assert voices["names"] == names and voices["balance"] == "equal"
    assert voices["untagged_share"] == 0.1 and voices["voice_cap"] is None
    assert voices["chars"]["train"] == [480, 720, 1200] and voices["chars"]["val"] == [
        120,
        180,
        300,
    ]
    assert len(voices["counts"]) == 3 and all(
        len(c) == len(meta["vocab"]) for c in voices["counts"]
    )
    assert sorted(voices["val"]) == names
    step, *per_voice = meta["history"]["val_voices"][-1]
    assert step == 6 and meta["history"]["val"][-1] == [
        6,
        pytest.approx(statistics.mean(per_voice)),
    ]
    assert meta["history"]["val"][-1][1] == pytest.approx(statistics.mean(voices["val"].values()))

    r = cli(*args, "--max-steps", "6", "--eval-every", "3", "--no-condition", "-o", "base")
    assert r.code == 0, r.err
    base = checkpoint.read_header("base/last.ckpt")
    assert base.format_version == checkpoint.UNVOICED_FORMAT and "voices" not in base.meta
    assert "voices" not in base.meta["model"] and "voice.weight" not in str(base.tensors)
    off = base.meta["train"]["voices_off"]
    assert off["names"] == names and off["balance"] == "equal" and sorted(off["val"]) == names
    assert base.meta["corpus"] == meta["corpus"]  # the same dataset and splits
    # resumed with the first command, the baseline stays unvoiced
    r = cli(*args, "--max-steps", "8", "--no-condition", "--resume", "base/last.ckpt")
    assert r.code == 0, r.err
    assert "voices" not in checkpoint.read_header("base/last.ckpt").meta["model"]


def test_train_holds_out_each_voices_own_test_text(cli) -> None:
    write_voices(sizes=SIZES)
    args = ["train", "corpus", "--tags-from", "dir", "--val-frac", "0.2", "--test-frac", "0.1"]
    r = cli(*args, *TINY, "--max-steps", "2", "-o", "run")
    assert r.code == 0, r.err
    meta = checkpoint.read_header("run/last.ckpt").meta
    chars = meta["voices"]["chars"]
    assert chars["test"] == [60, 90, 150] and chars["val"] == [120, 180, 300]
    assert chars["train"] == [420, 630, 1050] and meta["corpus"]["splits"]["test"] == 300
    r = cli(*args[:-1], "0.9", *TINY, "--max-steps", "2", "-o", "bad")
    assert r.code == 2 and "must be in [0, 1) and sum to less than 1" in r.err, r.err


def test_a_voiced_models_layer_0_reads_the_width_an_unvoiced_models_does() -> None:
    """The voice rule: the character embedding gives up --voice-dim columns unless --embed is
    given, so voices cost the fused LSTM no width (and no training speed)."""
    from charrnn.training.plan import plan

    def model(**given):
        p = plan(given, vocab_size=60, train_chars=400_000, val_chars=40_000, voice_sizes=(1, 2))
        return p.model

    plain = plan({}, vocab_size=60, train_chars=400_000, val_chars=40_000).model
    assert plain.embed == 64 and plain.input_width == 64
    assert (model().embed, model().voice_dim, model().input_width) == (48, 16, 64)
    assert (model(voice_dim=8).embed, model(voice_dim=8).input_width) == (56, 64)
    assert (model(embed=32).embed, model(embed=32).input_width) == (32, 48)
    assert model(voice_dim=60).embed == 16  # never narrower than 16
    assert model(no_condition=True).voices == 0 and model(no_condition=True).embed == 64


def test_voice_options_need_labelled_text(cli) -> None:
    Path("t.txt").write_text("plain text " * 300)
    for option in (["--balance", "equal"], ["--no-condition"], ["--voice-dim", "8"]):
        r = cli("train", "t.txt", *option, "--max-steps", "1", *TINY)
        assert r.code == 2 and "applies to labelled text" in r.err, r.err


def test_a_balanced_voiced_run_resumes_exactly() -> None:
    """Cut in its second epoch: the piece order (seed, epoch) and the untagged rows (seed, step)
    are drawn again, not stored, and the weights end as the uninterrupted run's."""
    ds = labelled()
    model = ModelConfig(
        vocab_size=ds.vocab.size, hidden=24, embed=8, dropout=0.1, voices=3, voice_dim=4
    )
    cfg = TrainConfig(
        batch_size=8,
        seq_len=16,
        max_steps=30,
        eval_every=10,
        log_every=5,
        warmup=3,
        balance="equal",
        untagged_share=0.3,
    )
    whole = Trainer(ds, model, cfg, Path("whole"))
    assert whole.batcher.steps_per_epoch == 18
    whole.run()
    assert cut_at(ds, model, cfg, 22).reason == "interrupted"
    second = Trainer(
        ds, model, cfg, Path("split"), resume=checkpoint.read_header("split/last.ckpt")
    )
    assert second.run().step == 30
    a, b = whole.model.state_dict(), second.model.state_dict()
    assert "voice.weight" in a and all(torch.equal(a[k], b[k]) for k in a)
    assert whole.history["val_voices"] == second.history["val_voices"]
    # with another balance the run is another run
    other = Trainer(ds, model, cfg.with_(balance="proportional"), Path("other"))
    other.run()
    assert not torch.equal(a["voice.weight"], other.model.state_dict()["voice.weight"])
