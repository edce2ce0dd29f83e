"""Several processes on one CPU machine: gradient equivalence of 2 ranks × batch B with 1 process ×
batch 2B, and the real CLI under torchrun. Both are time-limited so a hang fails instead of blocking."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch

from charrnn import checkpoint
from charrnn.data.prep import prep

from .conftest import TINY, corpus_text, run_cli, torchrun
from .dist_worker import on_two_ranks, train_steps

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]  # several processes each


def test_two_ranks_match_one_process_with_twice_the_batch() -> None:
    Path("c.txt").write_text(corpus_text(40_000))
    prep(["c.txt"], Path("ds"))
    single = train_steps("ds", "single", batch_size=8, steps=6)
    ranks = on_two_ranks("equiv", train_steps, "ds", "ddp", 4, 6)
    for rank in (0, 1):
        for k, v in single.items():
            assert torch.allclose(ranks[rank][k], v, atol=2e-5, rtol=1e-4), (rank, k)
    h1, h2 = checkpoint.read_header("single/last.ckpt"), checkpoint.read_header("ddp/last.ckpt")
    assert h2.meta["state"]["world_size"] == 2 and h1.meta["state"]["world_size"] == 1
    assert set(h1.tensors) == set(h2.tensors)  # the same file: no `module.` prefixes
    assert h2.tensors["carry.0"].shape == h1.tensors["carry.0"].shape == (2, 8, 32)


def test_torchrun_cli_smoke_then_resume_in_one_process() -> None:
    Path("c.txt").write_text(corpus_text(40_000))
    cmd = [
        *torchrun(2),
        "train",
        "c.txt",
        *TINY,
        "--max-steps",
        "6",
        "--eval-every",
        "3",
        "-o",
        "run",
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stderr.count("stopped (max-steps)") == 1  # rank 0 alone reports
    h = checkpoint.read_header("run/last.ckpt")
    assert h.meta["state"]["world_size"] == 2 and h.meta["state"]["step"] == 6
    assert h.meta["train"]["batch_size"] == 4
    one = run_cli("train", "--resume", "run/last.ckpt", "--max-steps", "8")
    assert one.returncode == 0, one.stderr
    h = checkpoint.read_header("run/last.ckpt")
    assert h.meta["state"]["world_size"] == 1 and h.meta["train"]["batch_size"] == 8
    three = subprocess.run(
        [*torchrun(3), "train", "--resume", "run/last.ckpt", "--max-steps", "9"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert three.returncode != 0 and "cannot be shared by 3 processes" in three.stderr


def test_the_same_command_resumes_after_torchrun_and_streams_are_counted_whole() -> None:
    Path("c.txt").write_text(corpus_text(40_000))
    model = ["--hidden", "32", "--embed", "8", "--seq-len", "16", "--log-every", "1"]
    args = ["train", "c.txt", *model, "--batch-size", "4", "-o", "run"]  # per process

    def two(*more: str) -> subprocess.CompletedProcess:
        cmd = [*torchrun(2), *args, *more]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=180)

    assert two("--max-steps", "4").returncode == 0
    again = two("--max-steps", "6", "--resume", "run/last.ckpt")  # the same options: silent
    assert again.returncode == 0 and "cannot change" not in again.stderr, again.stderr[-2000:]
    assert checkpoint.read_header("run/last.ckpt").meta["state"]["step"] == 6
    one = run_cli(*args, "--max-steps", "8", "--resume", "run/last.ckpt")
    assert one.returncode == 2 and one.stderr == (
        "charrnn: error: --batch-size (batch_size=) cannot change on resume: the checkpoint's run "
        "has 8 streams (4 per process × 2 processes); a batch size of 4 in one process would "
        "make 4: leave it out when resuming\n"
    )
    whole = ["train", "c.txt", *model, "--batch-size", "8", "-o", "run"]  # 8 streams in one
    ok = run_cli(*whole, "--max-steps", "8", "--resume", "run/last.ckpt")
    assert ok.returncode == 0, ok.stderr
    h = checkpoint.read_header("run/last.ckpt")
    assert h.meta["state"]["world_size"] == 1 and h.meta["state"]["step"] == 8
