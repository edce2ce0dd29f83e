"""Resuming with the first command plus --resume: options equal to the checkpoint's pass silently, a
real change to the model's shape or the data streams is refused in one line, and training choices
(--lr, --dropout, stopping rules) may change."""

from __future__ import annotations

import json
from pathlib import Path

from charrnn import checkpoint

from .conftest import corpus_text

FIRST = ["c.txt", "--batch-size", "16", "--seq-len", "50", "--hidden", "32", "--embed", "8"]


def test_the_same_command_resumes(cli) -> None:
    Path("c.txt").write_text(corpus_text(20_000))
    args = ["train", *FIRST, "--cell", "gru", "--layers", "1", "--out", "r"]
    assert cli(*args, "--max-steps", "4").code == 0
    r = cli(*args, "--max-steps", "8", "--resume", "r/last.ckpt")
    assert r.code == 0, r.err
    assert "cannot change" not in r.err and "note: resuming" not in r.err
    assert checkpoint.read_header("r/last.ckpt").meta["state"]["step"] == 8


def test_the_same_command_resumes_where_a_small_corpus_shrank_the_batch(cli) -> None:
    Path("t.txt").write_text("hello world, this is a sample text.")
    args = ["train", "t.txt", "--batch-size", "64", "--seq-len", "100", "--hidden", "16", "-o", "t"]
    assert cli(*args, "--max-epochs", "3").code == 0
    assert checkpoint.read_header("t/last.ckpt").meta["train"]["batch_size"] == 1
    r = cli(*args, "--max-epochs", "6", "--resume", "t/last.ckpt")
    assert r.code == 0, r.err
    assert checkpoint.read_header("t/last.ckpt").meta["state"]["step"] == 6


def test_a_real_change_is_refused_naming_both_values(cli) -> None:
    Path("c.txt").write_text(corpus_text(20_000))
    assert cli("train", *FIRST, "--max-steps", "2", "--out", "r").code == 0
    before = Path("r/last.ckpt").read_bytes()
    resume = ["train", *FIRST, "--max-steps", "4", "--resume", "r/last.ckpt"]
    for change, message in (
        (
            ["--batch-size", "32"],
            "--batch-size (batch_size=) cannot change on resume: the checkpoint's run has 16 "
            "streams; a batch size of 32 in one process would make 32: leave it out when resuming",
        ),
        (
            ["--seq-len", "25"],
            "--seq-len (seq_len=) cannot change on resume: the checkpoint has 50, this asks for 25; "
            "leave it out when resuming",
        ),
        (
            ["--hidden", "64"],
            "--hidden cannot change on resume: the checkpoint's model has 32, this asks for 64; "
            "leave --hidden out when resuming",
        ),
        (["--embed", "16"], "--embed cannot change on resume: the checkpoint's model has 8,"),
        (["--layers", "3"], "--layers cannot change on resume: the checkpoint's model has 2,"),
        (["--cell", "rnn"], "--cell cannot change on resume: the checkpoint's model has lstm,"),
    ):
        r = cli(*resume, *change)
        assert r.code == 2, (change, r.err)
        assert r.err == f"charrnn: error: {message}" + r.err.split(message, 1)[1], change
        assert r.err.count("\n") == 1 and r.out == "", change
    assert Path("r/last.ckpt").read_bytes() == before


def test_dropout_may_change_on_resume_like_the_learning_rate(cli) -> None:
    Path("c.txt").write_text(corpus_text(20_000))
    assert cli("train", *FIRST, "--max-steps", "2", "--out", "r").code == 0
    r = cli("train", *FIRST, "--max-steps", "4", "--resume", "r/last.ckpt", "--dropout", "0.1")
    assert r.code == 0, r.err
    h = checkpoint.read_header("r/last.ckpt")
    assert h.meta["model"]["dropout"] == 0.1 and h.meta["state"]["step"] == 4
    r = cli("train", *FIRST, "--max-steps", "6", "--resume", "r/last.ckpt", "--dropout", "1.5")
    assert r.code == 2 and "dropout must be in [0, 1)" in r.err


def _as_format_2(path: str) -> None:
    """Rewrite a checkpoint as one written before plans: format 2, no plan in its metadata."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(path, "pt") as f:
        meta = dict(f.metadata())
    tensors = load_file(path)
    del meta["plan"]
    meta["charrnn.format"] = "2"
    save_file(tensors, path, metadata=meta)


def test_a_resumed_run_uses_its_stored_plan_and_never_plans_again(cli) -> None:
    Path("c.txt").write_text(corpus_text(20_000))
    first = ["train", *FIRST, "--time-budget", "10m", "--out", "r"]
    assert cli(*first, "--max-steps", "6").code == 0
    before = checkpoint.read_header("r/last.ckpt").meta
    assert before["plan"]["chosen"]["eval_every"] == before["train"]["eval_every"]
    # planned afresh, a 40-step run would evaluate less often and warm up for longer
    again = cli(*first[:-2], "--out", "other", "--max-steps", "40", "--dry-run", "--json")
    fresh_train = json.loads(again.out)["train"]
    assert (fresh_train["eval_every"], fresh_train["warmup"]) != (
        before["train"]["eval_every"],
        before["train"]["warmup"],
    )
    r = cli(*first, "--max-steps", "40", "--resume", "r/last.ckpt")
    assert r.code == 0, r.err
    assert "plan:" not in r.err  # nothing was planned, so nothing is shown
    after = checkpoint.read_header("r/last.ckpt").meta
    assert after["state"]["step"] == 40 and after["plan"] == before["plan"]
    assert after["train"]["eval_every"] == before["train"]["eval_every"]
    assert after["train"]["warmup"] == before["train"]["warmup"]


def test_a_checkpoint_from_before_plans_resumes_under_the_old_rules(cli) -> None:
    from charrnn.training.config import TrainConfig
    from charrnn.training.plan import effective_warmup

    Path("c.txt").write_text(corpus_text(20_000))
    args = ["train", *FIRST, "--layers", "1", "--warmup", "100", "--out", "r"]
    assert cli(*args, "--max-steps", "4").code == 0
    _as_format_2("r/last.ckpt")
    assert checkpoint.read_header("r/last.ckpt").format_version == 2
    r = cli(*args, "--max-steps", "30", "--resume", "r/last.ckpt")
    assert r.code == 0, r.err
    after = checkpoint.read_header("r/last.ckpt").meta
    assert after["state"]["step"] == 30 and "plan" not in after
    # the loop fits a plan-less run's warmup as before: at most a quarter of its 30 planned steps
    assert "warmup shortened to 7 steps" in r.err
    cfg = TrainConfig.from_dict(after["train"]).with_(warmup=100)
    assert after["train"]["warmup"] == effective_warmup(cfg, 10**6) == 7
