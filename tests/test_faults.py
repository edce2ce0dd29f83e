"""Faults, done for real to real processes: kill -9, a full disk, Ctrl-C / SIGTERM, two trainers on one
run directory, numerical blow-up, resuming on other text. Nothing is lost and nothing half-written."""

from __future__ import annotations

import random
import resource
import signal
import subprocess
import time
from pathlib import Path

import pytest

from charrnn import checkpoint
from charrnn.model import load_model

from .conftest import CLI, TINY, corpus_text, run_cli


def corpus(name: str = "c.txt", n: int = 40_000, offset: int = 0) -> str:
    Path(name).write_text(corpus_text(offset + n)[offset:], encoding="utf-8")
    return name


def start(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def wait_for_step(
    run: Path, step: int = 1, proc: subprocess.Popen | None = None, timeout: float = 60
) -> None:
    """Until metrics.jsonl shows training at or past `step` (failing early if the process died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"training exited {proc.returncode}: {proc.stderr.read()[-1000:]}")
        m = run / "metrics.jsonl"
        if m.exists() and any(f'"step": {s},' in m.read_text() for s in range(step, step + 50)):
            return
        time.sleep(0.05)
    raise AssertionError(f"training in {run} did not reach step {step}")


def wait_for_file(path: Path, proc: subprocess.Popen, timeout: float = 60) -> None:
    """Until `path` exists (failing early if the process died)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"training exited {proc.returncode}: {proc.stderr.read()[-1000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not appear")
        time.sleep(0.05)


def loads(path: Path) -> int:
    """A checkpoint on disk must always load whole; returns its step."""
    header = checkpoint.read_header(path)
    load_model(header)
    checkpoint.load_tensors(header)
    return header.meta["state"]["step"]


def temp_files(run: Path) -> list[str]:
    return [p.name for p in run.iterdir() if p.name.endswith(".tmp") or ".tmp-" in p.name]


@pytest.mark.slow
def test_kill_9_at_random_moments_then_resume() -> None:
    c, run = corpus(), Path("run")
    rng = random.Random(1234)
    args = [
        *TINY,
        "--eval-every",
        "2",
        "--eval-chars",
        "500",
        "--max-steps",
        "100000",
        "--out",
        "run",
    ]
    kills = 0
    for attempt in range(6):
        resume = ["--resume", "run/last.ckpt"] if attempt else []
        p = start("train", c, *args, *resume)
        wait_for_step(run, 1, p)
        if not attempt:  # a first kill before the first save would leave no run to resume
            wait_for_file(run / "last.ckpt", p)
        time.sleep(rng.uniform(0.0, 0.8))  # checkpoints are written every ~2 steps: hit some saves
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
        kills += 1
        for ckpt in run.glob("*.ckpt"):
            loads(ckpt)
    assert kills == 6 and (run / "last.ckpt").exists()
    step = loads(run / "last.ckpt")
    done = run_cli("train", "--resume", "run/last.ckpt", "--max-steps", str(step + 3))
    assert done.returncode == 0, done.stderr
    assert loads(run / "last.ckpt") == step + 3
    assert temp_files(run) == []


@pytest.mark.slow
def test_full_disk_keeps_previous_checkpoints_whole() -> None:
    c = corpus()
    first = subprocess.run(
        [*CLI, "train", c, *TINY, "--max-steps", "4", "--eval-every", "2", "--out", "run"],
        capture_output=True,
        timeout=120,
    )
    assert first.returncode == 0
    before = {f: Path("run", f).read_bytes() for f in ("last.ckpt", "best.ckpt")}
    limit = len(before["last.ckpt"]) // 2

    def small_disk() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    r = run_cli("train", "--resume", "run/last.ckpt", "--max-steps", "8", preexec_fn=small_disk)
    assert r.returncode == 1, r.stderr
    assert "could not save" in r.stderr and "the previous file is intact" in r.stderr
    assert "Traceback" not in r.stderr
    assert {f: Path("run", f).read_bytes() for f in before} == before
    assert temp_files(Path("run")) == []


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_saves_and_says_how_to_resume(sig: int, code: int) -> None:
    c = corpus()
    p = start("train", c, *TINY, "--max-steps", "100000", "--eval-every", "1000", "--out", "run")
    wait_for_step(Path("run"), 3, p)
    p.send_signal(sig)
    _, err = p.communicate(timeout=60)
    assert p.returncode == code, err
    assert "resume with: charrnn train --resume run/last.ckpt" in err.decode()
    h = checkpoint.read_header("run/last.ckpt")
    assert h.meta["state"]["step"] >= 3 and h.meta["state"]["stop_reason"] == "interrupted"
    r = subprocess.run(
        [
            *CLI,
            "train",
            "--resume",
            "run/last.ckpt",
            "--max-steps",
            str(h.meta["state"]["step"] + 2),
        ],
        capture_output=True,
        timeout=120,
    )
    assert r.returncode == 0


@pytest.mark.slow
def test_second_ctrl_c_quits_at_once() -> None:
    c = corpus()
    p = start(
        "train",
        c,
        *TINY,
        "--hidden",
        "256",
        "--batch-size",
        "64",
        "--seq-len",
        "64",
        "--max-steps",
        "100000",
        "--eval-every",
        "1",
        "--out",
        "run",
    )
    wait_for_step(Path("run"), 1, p)
    p.send_signal(signal.SIGINT)
    p.send_signal(signal.SIGINT)
    p.communicate(timeout=30)
    assert p.returncode == 130
    for ckpt in Path("run").glob("*.ckpt"):
        loads(ckpt)


@pytest.mark.slow
def test_second_trainer_on_same_run_dir_is_refused() -> None:
    c = corpus()
    a = start("train", c, *TINY, "--max-steps", "100000", "--eval-every", "2", "--out", "run")
    try:
        wait_for_step(Path("run"), 3, a)
        t = time.monotonic()
        b = subprocess.run(
            [*CLI, "train", c, *TINY, "--out", "run", "--overwrite"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert b.returncode == 2 and f"pid {a.pid}" in b.stderr, b.stderr
        assert time.monotonic() - t < 15
    finally:
        a.kill()
        a.wait()
    # a dead holder does not hold the lock: the run resumes
    step = loads(Path("run/last.ckpt"))
    r = run_cli("train", "--resume", "run/last.ckpt", "--max-steps", str(step + 2), timeout=60)
    assert r.returncode == 0, r.stderr
    assert loads(Path("run/last.ckpt")) == step + 2


def test_blow_up_stops_and_keeps_last_good(cli) -> None:
    c = corpus()
    assert cli("train", c, *TINY, "--max-steps", "4", "--eval-every", "2", "--out", "run").code == 0
    before = Path("run/last.ckpt").read_bytes()
    r = cli(
        "train",
        "--resume",
        "run/last.ckpt",
        "--max-steps",
        "40",
        "--lr",
        "1e30",
        "--grad-clip",
        "0",
        "--warmup",
        "0",
    )
    assert r.code == 1 and "diverged" in r.err and "last good checkpoint is run/last.ckpt" in r.err
    assert Path("run/last.ckpt").read_bytes() == before
    r = cli(
        "train", c, *TINY, "--max-steps", "40", "--lr", "1e30", "--grad-clip", "0", "--out", "r2"
    )
    assert r.code == 1 and "diverged" in r.err


def test_resume_on_other_text_is_refused_unless_allowed(cli) -> None:
    a = corpus("a.txt", 30_000)
    b = "b.txt"  # the same characters in another order: same vocabulary, other text
    Path(b).write_text("".join(reversed(Path(a).read_text().splitlines(keepends=True))))
    assert cli("train", a, *TINY, "--max-steps", "2", "--out", "run").code == 0
    r = cli("train", b, "--resume", "run/last.ckpt", "--max-steps", "4")
    assert r.code == 2 and "trained on other text" in r.err and "--allow-new-corpus" in r.err
    r = cli("train", b, "--resume", "run/last.ckpt", "--max-steps", "4", "--allow-new-corpus")
    assert r.code == 0, r.err
    Path("zh.txt").write_text("完全不同的文字，完全不同的字符。" * 200, encoding="utf-8")
    r = cli(
        "train", "zh.txt", "--resume", "run/last.ckpt", "--max-steps", "6", "--allow-new-corpus"
    )
    assert r.code == 2 and "different vocabulary" in r.err
