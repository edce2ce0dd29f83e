"""`charrnn.train` is `charrnn train` (issue 41): the keywords are the flags, the same options give
the same tensors, the plan is --dry-run's, a stop asked for at a log step resumes exactly (from a
handler's `charrnn.Stop` and from a real Ctrl-C), a handler's error comes after the step's saves,
every refusal on the way reads the same from both, and the call works twice after `charrnn.cli`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import charrnn
from charrnn import checkpoint
from tests.test_golden import CASES, digests, write_texts

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(
    device="cpu", threads=1, precision="fp32", rng_seed=3, batch_size=4, seq_len=16,
    embed=8, layers=1, hidden=16, log_every=3, eval_every=6, eval_chars=300,
)  # fmt: skip


def test_the_keywords_are_the_flags() -> None:
    """The call's keywords equal `charrnn train`'s options less --json, --quiet, --dry-run."""
    import inspect

    import typer

    from charrnn.cli import app

    command = typer.main.get_command(app).commands["train"]  # type: ignore[attr-defined]
    flags = {p.name for p in command.params} - {"corpus", "as_json", "quiet", "dry_run"}
    call = set(inspect.signature(charrnn.train).parameters)
    assert call - {"corpus", "text", "on_event", "should_stop", "plan"} == flags


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_the_call_and_the_command_train_identical_tensors(cell: str, cli) -> None:
    write_texts()
    args = [f"--{k.replace('_', '-')}={v}" for k, v in SMALL.items()]
    r = cli("train", "text.txt", *args, "--cell", cell, "--max-steps", "9", "-o", "by-cli")
    assert r.code == 0, r.err
    run = charrnn.train("text.txt", out="by-call", cell=cell, max_steps=9, **SMALL)
    assert run.dir == Path("by-call").resolve() and run.step == 9 and run.reason == "max-steps"
    for name in ("last.ckpt", "best.ckpt"):
        assert digests(Path("by-cli") / name) == digests(run.dir / name)
    assert run.best == run.dir / "best.ckpt" and run.best_val_source == "val"
    assert [s for s, _ in run.history["val"]] == [6, 9]
    assert len(run.load().generate("the ", 20, rng_seed=1)) == 20


def test_plan_equals_the_dry_run_under_a_filled_speed_cache(cli, monkeypatch) -> None:
    import torch

    from charrnn.model_config import ModelConfig
    from charrnn.training import calibrate, speed_cache

    monkeypatch.delenv(calibrate.NO_CALIBRATE_ENV)
    write_texts()
    vocab = len(set(Path("text.txt").read_text()))
    model = ModelConfig(vocab_size=vocab, embed=SMALL["embed"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the key holds the thread count the run plans under
    try:  # the reading of the run's own conditions: its batch, seq-len, embed and regularisers
        key = calibrate.reading_key(
            torch.device("cpu"), "fp32", model, 1, SMALL["batch_size"], SMALL["seq_len"]
        )
    finally:
        torch.set_num_threads(threads)
    readings = {"1x256": 50_000.0, "2x256": 21_000.0, "2x512": 7_000.0}
    speed_cache.merge(key, readings)
    opts = {k: v for k, v in SMALL.items() if k not in ("layers", "hidden", "eval_every")}
    args = [f"--{k.replace('_', '-')}={v}" for k, v in opts.items()]
    r = cli("train", "text.txt", *args, "--time-budget", "2m", "--dry-run", "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["plan"]["inputs"]["speed"]["source"] == "cached"
    p = charrnn.plan("text.txt", time_budget=120, **opts)
    assert p.record["inputs"]["speed"]["source"] == "cached"
    got = {"model": p.model.to_dict(), "train": p.train.to_dict(), "plan": p.record}
    assert got == json.loads(r.out)


def _stop_at(step: int, error: type[BaseException] = charrnn.Stop):
    def handler(event: object) -> None:
        if isinstance(event, charrnn.Logged) and event.step == step:
            raise error("stop here")

    return handler


def _same_run(a: Path, b: Path) -> None:
    """Two run directories hold the same weights, averages, optimizer state and evaluations."""
    assert digests(a / "last.ckpt") == digests(b / "last.ckpt")
    history = [checkpoint.read_header(d / "last.ckpt").meta["history"]["val"] for d in (a, b)]
    assert history[0] == history[1] and len(history[0]) == 2


def test_a_stop_from_a_handler_saves_and_resumes_exactly() -> None:
    write_texts()
    whole = charrnn.train("text.txt", out="whole", max_steps=12, **SMALL)
    stopped = charrnn.train("text.txt", out="part", max_steps=12, on_event=_stop_at(3), **SMALL)
    assert (stopped.reason, stopped.step, stopped.history["val"]) == ("stopped", 3, [])
    state = checkpoint.read_header("part/last.ckpt").meta["state"]
    assert (state["step"], state["stop_reason"], state["finished"]) == (3, "stopped", False)
    charrnn.train("text.txt", resume="part/last.ckpt", max_steps=12, **SMALL)
    _same_run(whole.dir, Path("part"))


def test_a_handler_error_comes_after_the_steps_saves() -> None:
    write_texts()
    with pytest.raises(ZeroDivisionError):
        charrnn.train(
            "text.txt", out="r", max_steps=12, on_event=_stop_at(3, ZeroDivisionError), **SMALL
        )
    assert checkpoint.read_header("r/last.ckpt").meta["state"]["step"] == 3


SIGINT_SCRIPT = """
import json, os, signal, charrnn
def handler(event):
    if isinstance(event, charrnn.Logged) and event.step == 3:
        os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C, delivered while the run trains
try:
    charrnn.train("text.txt", out="part", max_steps=12, on_event=handler, **SMALL)
except charrnn.RunInterrupted as e:
    print(json.dumps({"step": e.run.step, "reason": e.run.reason, "last": str(e.run.last)}))
"""


def test_a_real_ctrl_c_stops_the_call_saved_and_it_resumes_exactly() -> None:
    write_texts()
    code = f"SMALL = {SMALL!r}\n" + textwrap.dedent(SIGINT_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got == {
        "step": 3,
        "reason": "interrupted",
        "last": str(Path("part/last.ckpt").resolve()),
    }
    whole = charrnn.train("text.txt", out="whole", max_steps=12, **SMALL)
    charrnn.train("text.txt", resume="part/last.ckpt", max_steps=12, **SMALL)
    _same_run(whole.dir, Path("part"))


def test_the_call_works_twice_after_importing_the_cli() -> None:
    """`charrnn.train` stays the function: no subpackage of that name rebinds it on import."""
    write_texts()
    code = (
        "import charrnn, charrnn.cli\n"
        f"SMALL = {SMALL!r}\n"
        "a = charrnn.train('text.txt', out='a', max_steps=2, **SMALL)\n"
        "b = charrnn.train('text.txt', out='b', max_steps=2, **SMALL)\n"
        "print(a.step, b.step, callable(charrnn.train))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.stdout.split() == ["2", "2", "True"], out.stderr


def test_text_trains_on_a_string() -> None:
    run = charrnn.train(text="abc abd abe " * 200, max_steps=2, **SMALL)
    assert run.out_dir == str(Path("runs") / "text") and run.step == 2


# Every InputError on the way from the options to the first step: (command line, keywords, message)
REFUSALS = [
    (["--resume", "a.ckpt", "--init-from", "a.ckpt"], {"resume": "a.ckpt", "init_from": "a.ckpt"},
     "--resume continues a run, --init-from (init_from=) starts a new one from a model: give one "
     "of them"),
    (["--hidden", "32", "--resume", "r/last.ckpt"], {"hidden": 32, "resume": "r/last.ckpt"},
     "--hidden cannot change on resume: the checkpoint's model has 16, this asks for 32; "
     "leave --hidden out when resuming"),
    (["--layers", "2", "--init-from", "r/last.ckpt"], {"layers": 2, "init_from": "r/last.ckpt"},
     "--layers cannot change with --init-from (init_from=): the checkpoint's model has 1, this "
     "asks for 2; leave --layers out when starting from a model"),
    (["--dropout", "1.5"], {"dropout": 1.5}, "dropout must be in [0, 1)"),
    (["--lr", "-1"], {"lr": -1.0}, "--lr must be positive, got -1.0"),
    (["--time-budget", "soon"], {"time_budget": "soon"},
     "cannot read time budget 'soon'; write e.g. 90s, 10m, 2h or 1h30m"),
    (["--val-frac", "1.5"], {"val_frac": 1.5},
     "--val-frac (val_frac=) and --test-frac (test_frac=) must be in [0, 1) and sum to less "
     "than 1"),
    (["-o", "r", "--max-steps", "2"], {"out": "r", "max_steps": 2},
     "r already holds a run; continue it with --resume r/last.ckpt, start over with "
     "--overwrite, or choose another --out"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "keywords", "message"), REFUSALS)
def test_every_refusal_reads_the_same_from_the_call_and_the_command(
    args: list[str], keywords: dict, message: str, cli
) -> None:
    write_texts()
    if not Path("r").exists():
        assert cli("train", "text.txt", "--layers", "1", "--hidden", "16", "--embed", "8",
                   "--max-steps", "1", "-o", "r").code == 0  # fmt: skip
    r = cli("train", "text.txt", *args)
    assert r.code == 2 and message in r.err and r.err.startswith("charrnn: error: "), r.err
    with pytest.raises(charrnn.InputError) as e:
        charrnn.train("text.txt", **keywords)
    assert message in str(e.value)
    assert r.err.removeprefix("charrnn: error: ").strip() == str(e.value)


@pytest.mark.parametrize(
    ("corpus", "keywords", "message"),
    [
        (None, {}, "missing CORPUS: the text file or dataset to train on"),
        ("nothere.txt", {}, "nothere.txt: no such file or directory"),
    ],
)
def test_the_corpus_is_checked_alike(corpus, keywords, message, cli) -> None:
    r = cli("train", *([corpus] if corpus else []))
    assert r.code == 2 and r.err.strip() == f"charrnn: error: {message}"
    with pytest.raises(charrnn.InputError, match=message):
        charrnn.train(corpus, **keywords)


def test_a_bound_the_parser_checks_names_flag_and_keyword() -> None:
    with pytest.raises(charrnn.InputError, match=r"--batch-size \(batch_size=\) must be"):
        charrnn.train("text.txt", batch_size=0)


def test_unknown_keywords_are_a_type_error() -> None:
    with pytest.raises(TypeError, match="bach_size"):
        charrnn.train("text.txt", bach_size=3)


def test_golden_cases_cover_the_five_runs() -> None:
    assert sorted(CASES) == ["fixed", "fresh", "init_from", "resume", "tiny"]
