"""Training: the pure schedule and stopping rules, learning on real text, exact resume, tiny corpora."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from charrnn import checkpoint
from charrnn.data.dataset import load_dataset
from charrnn.data.prep import prep
from charrnn.errors import InputError
from charrnn.model import CharRNN, ModelConfig
from charrnn.training.averaging import Averaged, decay_at
from charrnn.training.config import TrainConfig, bpc, parse_duration
from charrnn.training.loop import Trainer, unigram_entropy
from charrnn.training.plan import effective_warmup, planned_steps
from charrnn.training.schedule import Progress, lr_at, stop_reason

from .conftest import corpus_text


def dataset(text: str, name: str = "ds", val_frac: float = 0.1):
    Path(f"{name}.txt").write_text(text, encoding="utf-8")
    prep([f"{name}.txt"], Path(name), val_frac=val_frac)
    return load_dataset(Path(name))


def cut_at(ds, model: ModelConfig, cfg: TrainConfig, step: int):
    """Train into ./split and stop there as Ctrl-C would (saving last.ckpt); the run's result."""
    first = Trainer(
        ds,
        model,
        cfg,
        Path("split"),
        should_stop=lambda: "interrupted" if first.progress.step >= step else None,
    )
    return first.run()


def test_schedule_warmup_then_cosine_to_floor() -> None:
    cfg = TrainConfig(lr=1e-3, warmup=10, min_lr=0.1)
    assert lr_at(0, 0.0, cfg) == pytest.approx(1e-4)
    assert lr_at(9, 0.0, cfg) == pytest.approx(1e-3)
    assert lr_at(10, 0.0, cfg) == pytest.approx(1e-3)
    assert lr_at(500, 0.5, cfg) == pytest.approx(0.55e-3)
    assert lr_at(900, 1.0, cfg) == pytest.approx(1e-4)
    assert lr_at(900, 3.0, cfg) == pytest.approx(1e-4)
    assert lr_at(900, None, cfg) == pytest.approx(1e-3)
    assert bpc(math.log(2)) == pytest.approx(1.0)


def test_average_warms_up_then_holds_the_default_cap() -> None:
    """The README's rule: (1 + t)/(10 + t) until the cap (reached near step 1,800 for the default
    0.995), and the running average it drives is the plain recurrence on the weights seen."""
    cap = TrainConfig().ema
    assert cap == 0.995
    first = next(t for t in range(100_000) if decay_at(t, cap) == cap)
    assert 1_700 < first < 1_900 and decay_at(first - 1, cap) < cap
    assert decay_at(0, cap) == 0.1 and decay_at(10**6, cap) == cap

    torch.manual_seed(0)
    model = CharRNN(ModelConfig(vocab_size=5, hidden=4, embed=3, layers=1, dropout=0.0))
    average, expected = Averaged(model, 0.5), [p.detach().clone() for p in model.parameters()]
    for step in range(12):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        average.update(step)
        d = decay_at(step, 0.5)
        live = list(model.parameters())
        expected = [d * e + (1 - d) * p.detach() for e, p in zip(expected, live, strict=True)]
    for got, want in zip(average.model.parameters(), expected, strict=True):
        torch.testing.assert_close(got, want)


def test_warmup_is_capped_to_fit_the_plan() -> None:
    """For a run without a stored plan (the Python API, a checkpoint from before plans), the
    loop caps warmup as runs always were: steps counted at the nominal rate."""
    spe = 156  # a 1 MB corpus's steps per epoch at batch 64 × seq-len 100
    ten_minutes = TrainConfig(time_budget=600, max_epochs=50)  # the default stop
    assert planned_steps(ten_minutes, spe) == 1219  # 600 s at 13,000 chars/s, 6,400 chars a step
    assert effective_warmup(ten_minutes, spe) == 100  # the tuned default run keeps its warmup
    toy = TrainConfig(max_epochs=100, batch_size=1, seq_len=31)  # the textbook toy: 1 step/epoch
    assert planned_steps(toy, 1) == 100 and effective_warmup(toy, 1) == 25
    assert effective_warmup(TrainConfig(time_budget=120), spe) == 61  # 244 planned
    assert effective_warmup(TrainConfig(time_budget=120), spe, world_size=2) == 30  # 122
    assert effective_warmup(TrainConfig(max_steps=200, max_epochs=1), spe) == 39  # the nearer
    assert effective_warmup(TrainConfig(max_steps=20, warmup=3), spe) == 3  # a short one stays
    assert effective_warmup(TrainConfig(max_steps=3), spe) == 0
    assert planned_steps(TrainConfig(), spe) is None and effective_warmup(TrainConfig(), spe) == 100


def test_durations_and_stopping_rules() -> None:
    assert parse_duration("90s") == 90 and parse_duration("10m") == 600
    assert (
        parse_duration("2h") == 7200
        and parse_duration("1h30m") == 5400
        and parse_duration("45") == 45
    )
    for bad in ("", "ten minutes", "10x", "-5m", "0s"):
        with pytest.raises(InputError, match="time budget"):
            parse_duration(bad)
    cfg = TrainConfig(max_steps=100, max_epochs=3, time_budget=60.0, patience=2)
    assert stop_reason(Progress(step=99, epoch=2, elapsed=59), cfg) is None
    assert stop_reason(Progress(step=100), cfg) == "max-steps"
    assert stop_reason(Progress(epoch=3), cfg) == "max-epochs"
    assert stop_reason(Progress(elapsed=60.5), cfg) == "time-budget"
    assert stop_reason(Progress(evals_since_best=2), cfg) == "patience"
    assert stop_reason(Progress(), cfg, "interrupted") == "interrupted"


def test_config_rejects_out_of_range_values() -> None:
    for bad in (
        {"batch_size": 0},
        {"seq_len": -1},
        {"lr": 0.0},
        {"lr": float("nan")},
        {"precision": "int4"},
        {"min_lr": 2.0},
    ):
        with pytest.raises(InputError):
            TrainConfig(**bad)
    for bad in ({"layers": 0}, {"hidden": -4}, {"dropout": 1.0}, {"cell": "transformer"}):
        with pytest.raises(InputError):
            ModelConfig(vocab_size=10, **bad)


@pytest.mark.slow
def test_loss_falls_well_below_unigram_entropy() -> None:
    ds = dataset(corpus_text(200_000))
    ent = unigram_entropy(list(ds.vocab.counts))
    cfg = TrainConfig(batch_size=16, seq_len=64, max_steps=150, eval_every=50, warmup=20, lr=1e-2)
    r = Trainer(
        ds, ModelConfig(vocab_size=ds.vocab.size, hidden=128, embed=32), cfg, Path("run")
    ).run()
    evals = [json.loads(x) for x in Path("run/metrics.jsonl").read_text().splitlines()]
    val = [e["val_loss"] for e in evals if "val_loss" in e]
    assert len(val) == 3 and val[-1] < val[0]
    assert r.best_val_loss == min(val) < 0.8 * ent
    train = [e for e in evals if "train_loss" in e]
    assert {"step", "epoch", "train_loss", "lr", "chars_per_sec"} <= train[0].keys()


@pytest.mark.parametrize(
    ("cell", "precision", "regularisers"),
    [
        ("lstm", "fp32", {"weight_drop": 0.25, "locked_dropout": True}),
        pytest.param("gru", "bf16", {"weight_drop": 0.25}, marks=pytest.mark.slow),  # bf16 on a CPU
        ("rnn", "fp32", {}),
    ],
)
def test_resumed_run_ends_with_identical_weights(
    cell: str, precision: str, regularisers: dict
) -> None:
    """Raw weights and their average alike; weight-drop and locked-dropout masks are redrawn
    exactly as the uninterrupted run drew them."""
    ds = dataset(corpus_text(60_000))
    model = ModelConfig(
        vocab_size=ds.vocab.size, cell=cell, hidden=48, embed=16, dropout=0.2, **regularisers
    )
    cfg = TrainConfig(
        batch_size=8,
        seq_len=32,
        max_steps=40,
        eval_every=15,
        log_every=5,
        warmup=5,
        precision=precision,
    )
    whole = Trainer(ds, model, cfg, Path("whole"))
    whole.run()
    assert cut_at(ds, model, cfg, 22).reason == "interrupted"
    header = checkpoint.read_header("split/last.ckpt")
    assert header.meta["state"]["step"] == 22 and not header.meta["state"]["finished"]
    second = Trainer(ds, model, cfg, Path("split"), resume=header)
    assert second.run().step == 40
    a, b = whole.model.state_dict(), second.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert whole.average is not None and second.average is not None
    a, b = whole.average.model.state_dict(), second.average.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], whole.model.state_dict()[k]) for k in a)
    # evaluation records agree exactly (training records average over a window the cut splits)
    evals = [
        [x for x in Path(d, "metrics.jsonl").read_text().splitlines() if "val_loss" in x]
        for d in ("whole", "split")
    ]
    assert evals[0] == evals[1] and len(evals[0]) == 3


def test_shifted_windows_resume_exactly_and_change_the_run() -> None:
    """--shift-windows: a run cut inside its second epoch and resumed ends with the uninterrupted
    run's weights (the offsets are drawn from the seed and the epoch, not stored), and the shifted
    run is a different run from the plain one."""
    ds = dataset(corpus_text(6_000))
    model = ModelConfig(vocab_size=ds.vocab.size, hidden=32, embed=8, dropout=0.1)
    cfg = TrainConfig(
        batch_size=8, seq_len=40, max_steps=40, eval_every=15, warmup=5, shift_windows=True
    )
    whole = Trainer(ds, model, cfg, Path("whole"))
    assert whole.batcher.steps_per_epoch == 16 and whole.batcher.max_shift > 0
    whole.run()
    assert cut_at(ds, model, cfg, 22).reason == "interrupted"
    second = Trainer(
        ds, model, cfg, Path("split"), resume=checkpoint.read_header("split/last.ckpt")
    )
    assert second.run().step == 40
    a, b = whole.model.state_dict(), second.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    plain = Trainer(ds, model, cfg.with_(shift_windows=False), Path("plain"))
    plain.run()
    assert not all(torch.equal(a[k], plain.model.state_dict()[k]) for k in a)


def test_toy_corpus_shrinks_batch_and_uses_train_loss() -> None:
    ds = dataset("hello world, hello there.", val_frac=0.0)
    notes = []
    cfg = TrainConfig(max_steps=5, eval_every=5, log_every=1)
    r = Trainer(
        ds,
        ModelConfig(vocab_size=ds.vocab.size, hidden=16, embed=8),
        cfg,
        Path("toy"),
        on_event=lambda e: notes.append(getattr(e, "message", None)),
    ).run()
    assert r.step == 5 and r.best_val_loss is not None
    assert any(n and "using batch 1 × seq-len 24" in n for n in notes)
    assert any(n and "no validation split: best.ckpt follows the training loss" in n for n in notes)
    assert checkpoint.read_header("toy/best.ckpt").meta["train"]["batch_size"] == 1


def test_divergence_stops_and_keeps_last_good_checkpoint() -> None:
    ds = dataset(corpus_text(30_000))
    m = ModelConfig(vocab_size=ds.vocab.size, hidden=32, embed=8)
    Trainer(ds, m, TrainConfig(max_steps=10, eval_every=10, precision="fp32"), Path("r")).run()
    before = Path("r/last.ckpt").read_bytes()
    header = checkpoint.read_header("r/last.ckpt")
    cfg = TrainConfig(
        max_steps=60, eval_every=5, log_every=1, lr=1e30, warmup=0, grad_clip=0, precision="fp32"
    )
    from charrnn.training.loop import Diverged

    with pytest.raises(Diverged, match=r"diverged|non-finite"):
        Trainer(ds, m, cfg, Path("r"), resume=header).run()
    assert Path("r/last.ckpt").read_bytes() == before


def _input_reach(layers: int, hidden: int) -> float:
    """How much the top layer's output at init depends on the text: the change when every stream's
    input is swapped for another's, relative to the output's spread."""
    torch.manual_seed(0)
    m = CharRNN(ModelConfig(vocab_size=40, layers=layers, hidden=hidden, embed=16, dropout=0.0))
    x = torch.randint(0, 40, (16, 50))
    with torch.no_grad():
        a, _ = m.rnn(m.embed(x))
        b, _ = m.rnn(m.embed(x.roll(1, 0)))
    return float((a - b).std() / a.std())


@pytest.mark.parametrize("hidden", [64, 256])
def test_a_three_layer_lstm_starts_able_to_pass_its_input_up(hidden: int) -> None:
    # PyTorch's init leaves a third layer about a third as sensitive to the text as a second
    # (docs/defaults.md, "Three layers that did not learn"); the deep-stack init must not
    assert _input_reach(3, hidden) >= 0.9 * _input_reach(2, hidden)
    m = CharRNN(ModelConfig(vocab_size=40, layers=2, hidden=hidden))
    forget = m.rnn.bias_ih_l0[hidden : 2 * hidden]
    assert forget.abs().max() <= 1 / hidden**0.5  # two layers keep PyTorch's init (uniform ±1/√H)
