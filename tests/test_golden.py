"""Golden files for `charrnn train`: what five runs print (`--dry-run --json`, the `--json` summary,
stderr) and the sha256 of every tensor they leave, recorded before training moved into the library
(issue 41) and reproduced since. Five cases: a fresh planned run, a fixed-shape GRU, a text too
small for a validation split, `--init-from` and `--resume`; CPU, one thread, fp32, calibration off.

Bit-identical tensors are a promise for one machine and one torch: the recording states its torch
and CPU capability, and the comparison of tensors is skipped (with that reason) elsewhere; the
printed plan and the output lines are compared everywhere.

Record again (only for a deliberate change of behaviour): CHARRNN_RECORD_GOLDEN=1 pytest this file.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
from collections.abc import Callable
from pathlib import Path

import pytest

GOLDEN = Path(__file__).resolve().parent / "golden" / "train"
RECORD = bool(os.environ.get("CHARRNN_RECORD_GOLDEN"))

# Every case's runtime and batching: deterministic on a CPU, small enough to train in a second.
COMMON = [
    "--device", "cpu", "--threads", "1", "--no-calibrate", "--precision", "fp32",
    "--rng-seed", "7", "--batch-size", "4", "--seq-len", "16", "--embed", "8",
    "--log-every", "3", "--eval-chars", "400",
]  # fmt: skip
FIXED = ["--cell", "gru", "--layers", "1", "--hidden", "24", "--eval-every", "6"]

# case → (commands run first, the command recorded)
CASES: dict[str, tuple[list[list[str]], list[str]]] = {
    "fresh": (
        [],
        ["text.txt", *COMMON, "--time-budget", "10m", "--max-steps", "12", "-o", "fresh"],
    ),
    "fixed": ([], ["text.txt", *COMMON, *FIXED, "--max-steps", "12", "-o", "fixed"]),
    "tiny": ([], ["tiny.txt", *COMMON, "--layers", "1", "--hidden", "16", "--max-steps", "8"]),
    "init_from": (
        [["text.txt", *COMMON, *FIXED, "--max-steps", "12", "-o", "fixed"]],
        ["more.txt", *COMMON, "--init-from", "fixed/last.ckpt", "--max-steps", "6", "-o", "tuned"],
    ),
    "resume": (
        [["text.txt", *COMMON, "--layers", "2", "--hidden", "16", "--max-steps", "8", "-o", "res"]],
        [
            "text.txt",
            *COMMON,
            "--max-steps",
            "14",
            "--eval-every",
            "5",
            "--resume",
            "res/last.ckpt",
        ],
    ),
}

WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "was",
    "for",
    "on",
    "that",
    "with",
    "as",
    "by",
    "at",
    "from",
    "his",
    "her",
    "it",
    "be",
    "are",
    "this",
]


def write_texts() -> None:
    """The cases' texts, written by the test (the built-in corpus differs between Pythons)."""
    rng = random.Random(41)
    words = [rng.choice(WORDS) + rng.choice(["", "", ",", "."]) for _ in range(5_000)]
    Path("text.txt").write_text(" ".join(words) + "\n", encoding="utf-8")
    Path("more.txt").write_text(" ".join(words[:2_000]).upper() + " 0123456789\n", encoding="utf-8")
    Path("tiny.txt").write_text("a small text, too small to hold anything back.\n" * 6)


Runner = Callable[[list[str]], tuple[int, str, str]]


def run_case(name: str, run: Runner) -> dict:
    """One case through `run` (a CLI or the call): its plan, summary, stderr and tensors."""
    setup, args = CASES[name]
    write_texts()
    for first in setup:
        code, _, err = run(first)
        assert code == 0, err
    code, dry, err = run([*args, "--dry-run", "--json"])
    assert code == 0, err
    code, out, err = run([*args, "--json"])
    assert code == 0, err
    summary = json.loads(out)
    summary["elapsed"] = 0.0  # the only figure that depends on the clock
    run_dir = Path(summary["out_dir"])
    return {
        "dry_run": json.loads(dry),
        "json": summary,
        "stderr": normalise(err),
        "tensors": {f: digests(run_dir / f) for f in ("last.ckpt", "best.ckpt")},
    }


def normalise(err: str) -> list[str]:
    """stderr less what the clock decides: speeds, durations, and the progress lines after the
    first (a plain line is printed every ten seconds)."""
    lines, progress = [], 0
    tmp = os.environ.get("CHARRNN_CACHE", "<none>").rsplit("/", 1)[0]
    for line in err.splitlines():
        line = line.replace(tmp, "<tmp>")
        line = re.sub(r"\| [\d,]+ chars/s \|", "| N chars/s |", line)
        line = re.sub(r"\b\d+:\d\d(:\d\d)?\b", "T", line)
        if re.match(r"epoch \d+ step ", line):
            progress += 1
            if progress > 1:
                continue
        lines.append(line)
    return lines


def digests(path: Path) -> dict[str, str]:
    from safetensors.numpy import load_file

    return {
        k: hashlib.sha256(f"{a.dtype}{a.shape}".encode() + a.tobytes()).hexdigest()[:32]
        for k, a in sorted(load_file(path).items())
    }


def machine() -> dict:
    import torch

    return {"torch": torch.__version__, "cpu": torch.backends.cpu.get_cpu_capability()}


def check(name: str, got: dict) -> None:
    path = GOLDEN / f"{name}.json"
    if RECORD:
        GOLDEN.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(got, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        (GOLDEN / "machine.json").write_text(json.dumps(machine()) + "\n")
        return
    want = json.loads(path.read_text(encoding="utf-8"))
    assert got["dry_run"] == want["dry_run"]
    assert got["json"] == want["json"]
    assert got["stderr"] == want["stderr"]
    recorded = json.loads((GOLDEN / "machine.json").read_text())
    if recorded != machine():
        pytest.skip(f"tensors recorded on {recorded}, this is {machine()}")
    assert got["tensors"] == want["tensors"]


@pytest.fixture
def cli_runner(cli) -> Runner:
    """`charrnn train ARGS` in this process, torch's thread count restored after each."""
    import torch

    def run(args: list[str]) -> tuple[int, str, str]:
        threads = torch.get_num_threads()
        try:
            r = cli("train", *args)
        finally:
            torch.set_num_threads(threads)
        return r.code, r.out, r.err

    return run


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_cli_reproduces_the_golden_files(name: str, cli_runner: Runner) -> None:
    check(name, run_case(name, cli_runner))


def as_keywords(args: list[str]) -> tuple[str | None, dict, set[str]]:
    """A `charrnn train` command line as the call's corpus and keywords (and the CLI-only flags),
    read through TrainOptions's own flag spellings."""
    import typing
    from dataclasses import fields

    from charrnn import TrainOptions

    spelled = {}
    for f in fields(TrainOptions):
        for name in f.metadata["names"] or (f"--{f.name.replace('_', '-')}",):
            for i, part in enumerate(name.split("/")):
                spelled[part] = (f, i == 0)
    corpus, kw, cli_only, it = None, {}, set(), iter(args)
    for token in it:
        if token in ("--json", "--dry-run", "--quiet"):
            cli_only.add(token)
        elif not token.startswith("-"):
            corpus = token
        else:
            f, on = spelled[token]
            kinds = set(typing.get_args(f.type)) - {type(None)}
            if bool in kinds:
                kw[f.name] = on
            else:
                value = next(it)
                if str in kinds:  # a budget as text: "10m"
                    kw[f.name] = value
                else:
                    kw[f.name] = (
                        int(value) if int in kinds else float(value) if float in kinds else value
                    )
    return corpus, kw, cli_only


@pytest.fixture
def call_runner() -> Runner:
    """The same command lines through `charrnn.train` and `charrnn.plan`, rendered by the terminal
    handler into a string: what the CLI would have printed."""
    import io

    from rich.console import Console

    import charrnn

    def run(args: list[str]) -> tuple[int, str, str]:
        corpus, kw, cli_only = as_keywords(args)
        err = io.StringIO()
        view = charrnn.Terminal(Console(file=err, highlight=False, soft_wrap=True))
        if "--dry-run" in cli_only:
            p = charrnn.plan(corpus, on_event=view, **kw)
            summary = {"model": p.model.to_dict(), "train": p.train.to_dict(), "plan": p.record}
            return 0, json.dumps(summary), err.getvalue()
        with view:
            result = charrnn.train(corpus, on_event=view, **kw)
        return 0, json.dumps(result.summary()), err.getvalue()

    return run


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_call_reproduces_the_golden_files(name: str, call_runner: Runner) -> None:
    import torch

    threads = torch.get_num_threads()
    check(name, run_case(name, call_runner))
    assert torch.get_num_threads() == threads  # threads=1 lasted for the call only
