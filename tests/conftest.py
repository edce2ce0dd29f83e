"""Shared fixtures: an isolated working directory, an in-process CLI runner, the built-in corpus
(this Python's own standard library source, so a bare clone needs nothing beside it), and one small
model trained once per session on it for the sampling and inspect tests."""

from __future__ import annotations

import functools
import io
import os
import signal
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import settings

from tests.serving import served  # noqa: F401  (the fixture that starts real servers)
from tests.serving_app import tiny  # noqa: F401  (a tiny model for in-process app tests)

# CI runs a fixed set of examples (HYPOTHESIS_PROFILE=ci); elsewhere each run explores new ones.
settings.register_profile("ci", derandomize=True, deadline=None)
settings.register_profile("thorough", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

ROOT = Path(__file__).resolve().parents[1]
# The built-in corpus, as `make corpus` builds it: these packages of the standard library.
STDLIB_PACKAGES = ("json", "email", "http", "asyncio", "collections")


CLI = [sys.executable, "-m", "charrnn"]
# A model small enough that a real training process starts, steps and saves in about a second.
TINY = [
    "--hidden",
    "32",
    "--embed",
    "8",
    "--batch-size",
    "4",
    "--seq-len",
    "16",
    "--log-every",
    "1",
]


def torchrun(processes: int) -> list[str]:
    """The command prefix for `charrnn` under torchrun with this many local processes."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    return [*launcher, "--nproc-per-node", str(processes), "-m", "charrnn"]


def run_cli(*args: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    """`charrnn ARGS...` in a real subprocess, output captured as text."""
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, **kw)


def stdlib_dirs() -> list[Path]:
    """The built-in corpus's directories in this Python (what `make corpus` prepares)."""
    root = Path(sysconfig.get_path("stdlib"))
    return [root / name for name in STDLIB_PACKAGES]


@functools.cache
def _corpus() -> str:
    files = [f for d in stdlib_dirs() for f in sorted(d.rglob("*.py"))]
    text = "".join(f.read_text(encoding="utf-8") for f in files)
    # ASCII only: then every non-ASCII character is one the test models never saw, on any Python.
    return "".join(c for c in text if c.isascii())


def corpus_text(n: int | None = None) -> str:
    """The first n characters (all without n) of the built-in corpus: this Python's json, email,
    http, asyncio and collections sources, files in sorted order, non-ASCII characters dropped.

    Its length and vocabulary differ between Python versions: tests compare computations or check
    properties on it, never figures that depend on the version (write the text for those)."""
    text = _corpus()
    return text if n is None else text[:n]


@pytest.fixture(autouse=True)
def _isolate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test runs in its own directory with its own dataset cache and no inherited checkpoint."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHARRNN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("CHARRNN_CHECKPOINT", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    # plans at the fixed reference speed: a test's run must not depend on how busy the host is
    # (test_calibrate measures for real)
    monkeypatch.setenv("CHARRNN_NO_CALIBRATE", "1")


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch):
    """Run `charrnn ARGS...` in-process through the real entry point (exit codes and all)."""
    from charrnn.cli import main

    def run(*args: object, stdin: str | bytes | None = None) -> Result:
        monkeypatch.setattr(sys, "argv", ["charrnn", *map(str, args)])
        if stdin is not None:
            data = stdin.encode() if isinstance(stdin, str) else stdin
            monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))
        handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        capsys.readouterr()
        code = 0
        try:
            main()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        finally:
            for s, h in handlers.items():
                signal.signal(s, h)
        cap = capsys.readouterr()
        return Result(code, cap.out, cap.err)

    return run


@pytest.fixture(scope="session")
def corpus_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """corpus_text() in a file: the text `trained` learns from."""
    path = tmp_path_factory.mktemp("corpus") / "pystdlib.txt"
    path.write_text(corpus_text(), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory, corpus_file: Path) -> Path:
    """A 2×96 LSTM trained for 120 steps on the built-in corpus (`corpus_file`); its best.ckpt."""
    from charrnn.data.dataset import load_dataset
    from charrnn.data.prep import prep
    from charrnn.model import ModelConfig
    from charrnn.training.config import TrainConfig
    from charrnn.training.loop import Trainer

    base = tmp_path_factory.mktemp("trained")
    prep([str(corpus_file)], base / "ds")
    ds = load_dataset(base / "ds")
    model = ModelConfig(vocab_size=ds.vocab.size, hidden=96, embed=32)
    cfg = TrainConfig(
        batch_size=16, seq_len=64, max_steps=120, eval_every=60, eval_chars=20_000, precision="fp32"
    )
    Trainer(ds, model, cfg, base / "run").run()
    return base / "run" / "best.ckpt"


@pytest.fixture(scope="session")
def cell_models(tmp_path_factory: pytest.TempPathFactory, corpus_file: Path) -> dict[str, Path]:
    """One small model per cell, trained briefly on the built-in corpus, with 1 to 3 layers
    between them (a 2-layer LSTM, a 3-layer GRU, a 1-layer tanh RNN): cell → best.ckpt. Their
    dataset stays where training recorded it, so their validation text can be found."""
    from charrnn.data.dataset import load_dataset
    from charrnn.data.prep import prep
    from charrnn.model import ModelConfig
    from charrnn.training.config import TrainConfig
    from charrnn.training.loop import Trainer

    base = tmp_path_factory.mktemp("cells")
    prep([str(corpus_file)], base / "ds")
    ds = load_dataset(base / "ds")
    out = {}
    # Widths that are not multiples of 4, so the web engine's padding is exercised.
    for cell, layers, hidden in (("lstm", 2, 38), ("gru", 3, 30), ("rnn", 1, 45)):
        model = ModelConfig(
            vocab_size=ds.vocab.size, cell=cell, layers=layers, hidden=hidden, embed=14
        )
        cfg = TrainConfig(
            batch_size=16,
            seq_len=48,
            max_steps=60,
            eval_every=30,
            eval_chars=5_000,
            precision="fp32",
        )
        Trainer(ds, model, cfg, base / cell).run()
        out[cell] = base / cell / "best.ckpt"
    return out


def drain(gen) -> tuple[object, int]:
    """Run a generator that pauses (yields None) to its end: (its return value, the pauses)."""
    pauses = 0
    while True:
        try:
            next(gen)
            pauses += 1
        except StopIteration as done:
            return done.value, pauses
