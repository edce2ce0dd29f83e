"""The real command line: end to end on the built-in corpus, Unicode corpora, pipes, exit codes."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

import charrnn

from .conftest import TINY, corpus_text, stdlib_dirs

SMALL = ["--hidden", "64", "--embed", "16", "--batch-size", "8", "--seq-len", "32"]


def test_version_and_help(cli) -> None:
    r = cli("--version")
    assert r.code == 0 and r.out.strip() == f"charrnn {charrnn.__version__}"
    r = cli("train", "-h")
    assert r.code == 0 and "--time-budget" in r.out and "--resume" in r.out


def test_help_shows_flags_without_a_value(cli) -> None:
    """`--overwrite <bool>` reads as "pass true or false": no command's help says <bool>."""
    import typer

    from charrnn.cli import app

    commands = sorted(typer.main.get_command(app).commands)
    assert {"prep", "train", "sample", "inspect"} <= set(commands)
    for args in ([], *([c] for c in commands)):
        r = cli(*args, "-h")
        assert r.code == 0 and "--help" in r.out, args
        assert "<bool>" not in r.out and "bool" not in r.out.lower(), args
    assert "--overwrite " in cli("train", "-h").out and "--no-echo " in cli("sample", "-h").out


@pytest.mark.slow
def test_end_to_end_on_the_built_in_corpus(cli) -> None:
    """`make corpus` and `make demo` in small: prep the standard library's packages, train, sample,
    inspect. The figures are checked against the files themselves, which differ between Pythons."""
    dirs = stdlib_dirs()
    text = "".join(f.read_text(encoding="utf-8") for d in dirs for f in sorted(d.rglob("*.py")))
    r = cli("prep", *dirs, "--glob", "*.py", "-o", "data/py")
    assert r.code == 0 and r.out == "", r.err
    assert f"{len(text):,} chars" in r.err and f"vocab {len(set(text))}" in r.err
    counts = Counter(text).values()
    entropy = -sum(n / len(text) * math.log(n / len(text)) for n in counts)
    r = cli(
        "train",
        "data/py",
        "--hidden",
        "128",
        "--embed",
        "32",
        "--batch-size",
        "16",
        "--seq-len",
        "64",
        "--max-steps",
        "150",
        "--eval-every",
        "50",
        "--lr",
        "1e-2",
        "--eval-chars",
        "30000",
        "--out",
        "runs/py",
    )
    assert r.code == 0 and r.out == "", r.err
    shown = re.search(r"unigram entropy (\d+\.\d+) nats/char", r.err)
    assert shown and float(shown[1]) == pytest.approx(entropy, abs=1e-3) and "parameters" in r.err
    records = [json.loads(line) for line in Path("runs/py/metrics.jsonl").read_text().splitlines()]
    evals = [e for e in records if "val_loss" in e]
    assert [e["step"] for e in evals] == [50, 100, 150] and evals[-1]["val_loss"] < 0.8 * entropy

    r = cli("sample", "runs/py/best.ckpt", "--seed", "def ", "--length", "200", "--rng-seed", "7")
    assert r.code == 0
    expected = charrnn.load("runs/py/best.ckpt").generate("def ", 200, 1.0, rng_seed=7)
    assert r.out == "def " + expected and len(expected) == 200
    assert cli("sample", "--seed", "def ", "--length", "200", "--rng-seed", "7").out == r.out
    r0 = cli("sample", "runs/py/best.ckpt", "-s", "class", "--temp", "0", "-n", "80", "--no-echo")
    rk = cli("sample", "runs/py/best.ckpt", "-s", "class", "--top-k", "1", "-n", "80", "--no-echo")
    assert r0.out == rk.out and len(r0.out) == 80 and "rng seed:" in r0.err

    r = cli("inspect", "runs/py/best.ckpt", "--json")
    info = json.loads(r.out)
    val = info["history"]["val"]
    assert val["step"] == [e["step"] for e in evals] and val["loss"] == [
        e["val_loss"] for e in evals
    ]
    train = [e for e in records if "train_loss" in e]
    assert info["history"]["train"]["loss"] == [e["train_loss"] for e in train]
    t = info["training"]
    assert t["best_val_loss"] == min(e["val_loss"] for e in evals) and t["steps"] == 150
    assert t["best_step"] == min(evals, key=lambda e: e["val_loss"])["step"]
    assert (
        t["config"]["lr"] == 0.01
        and info["model"]["hidden"] == 128
        and info["vocab"]["size"] == len(set(text))
    )
    # 150 steps of 16 × 64 characters are under one epoch: nothing to regularise
    assert (info["model"]["layers"], info["model"]["dropout"]) == (2, 0.0)
    plan = info["plan"]  # how the run was sized, as the checkpoint stores it
    assert plan["chosen"] == {
        "layers": 2,
        "dropout": 0.0,
        "weight_drop": 0.0,
        "eval_every": 50,
        "warmup": 37,
    }
    assert plan["inputs"]["train_chars"] == info["corpus"]["splits"]["train"]
    assert info["corpus"]["sha256"] == json.loads(Path("data/py/meta.json").read_text())["sha256"]
    human = cli("inspect", "runs/py/best.ckpt")
    assert human.code == 0 and "LSTM 2×128" in human.out and "best val" in human.out


@pytest.mark.parametrize(
    "text",
    [
        "春眠不觉晓，处处闻啼鸟。夜来风雨声，花落知多少。\n" * 40,
        "🙂🚀 go! 👩🏽‍💻 ok 🎉🎉 ✨\n" * 60,
    ],
    ids=["chinese", "emoji"],
)
def test_unicode_corpora_round_trip(cli, text: str) -> None:
    Path("u.txt").write_text(text, encoding="utf-8")
    r = cli("train", "u.txt", *SMALL, "--max-steps", "30", "--eval-every", "30", "--lr", "1e-2")
    assert r.code == 0, r.err
    run = Path("runs/u/best.ckpt")
    prime = text[:3]
    r = cli("sample", run, "-s", prime, "-n", "100", "--rng-seed", "1")
    assert r.code == 0 and r.out.startswith(prime) and len(r.out) == 103
    assert set(r.out) <= set(text)
    info = json.loads(cli("inspect", run, "--json", "--vocab").out)
    assert "".join(info["vocab"]["chars"]) == "".join(sorted(set(text)))


def test_sample_piped_into_head_exits_quietly(trained: Path) -> None:
    cmd = [sys.executable, "-m", "charrnn", "sample", str(trained), "--length", "100000"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    head = p.stdout.read(10)
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(timeout=60) == 0
    assert len(head) == 10 and "Traceback" not in err and "Exception" not in err
    shell = subprocess.run(
        f"'{sys.executable}' -m charrnn sample '{trained}' -n 5000 | head -c 10",
        shell=True,
        capture_output=True,
        timeout=60,
    )
    assert len(shell.stdout) == 10 and b"Traceback" not in shell.stderr


def test_sample_options_and_errors(cli, trained: Path) -> None:
    r = cli(
        "sample",
        trained,
        "-s",
        "the",
        "-n",
        "30",
        "--num-samples",
        "3",
        "--rng-seed",
        "2",
        "--separator",
        "\\n--\\n",
    )
    parts = r.out.split("\n--\n")
    assert r.code == 0 and len(parts) == 3 and all(p.startswith("the") for p in parts)
    assert all(len(p) == 33 for p in parts)
    exact = ["sample", trained, "-s", "the", "-n", "200", "--deterministic", "--json"]
    batch = cli(*exact, "--num-samples", "3", "--rng-seed", "7")
    alone = cli(*exact, "--rng-seed", "9")
    assert json.loads(batch.out.splitlines()[2])["text"] == json.loads(alone.out)["text"]
    r = cli("sample", trained, "-s", "-", "-n", "5", "--no-echo", stdin="the king")
    assert r.code == 0 and len(r.out) == 5
    r = cli("sample", trained, "-s", "Zoë ☃", "-n", "5")
    assert r.code == 2 and "'ë' '☃'" in r.err and r.out == ""
    assert cli("sample", trained, "--temp", "-1").code == 2
    assert cli("sample", trained, "--top-p", "1.5").code == 2
    r = cli("sample")
    assert r.code == 2 and "charrnn train" in r.err
    r = cli("sample", "nope.ckpt")
    assert r.code == 2 and "nope.ckpt" in r.err and "Traceback" not in r.err


def test_usage_errors_exit_2_in_one_line(cli) -> None:
    Path("c.txt").write_text("some text here\n" * 20)
    for args in (
        ["train", "missing.txt"],
        ["train", "c.txt", "--layers", "0"],
        ["train", "c.txt", "--cell", "transformer"],
        ["train", "c.txt", "--dropout", "1"],
        ["train", "c.txt", "--time-budget", "soon"],
        ["inspect", "."],
        ["prep", "nope"],
    ):
        r = cli(*args)
        assert r.code == 2, (args, r.err)
        assert "Traceback" not in r.err and r.out == ""


def test_default_stopping_rule_only_without_any() -> None:
    from charrnn.training.plan import train_config

    assert (train_config({}, None).time_budget, train_config({}, None).max_epochs) == (600.0, 50)
    cfg = train_config({"max_steps": 10}, None)
    assert (cfg.max_steps, cfg.time_budget, cfg.max_epochs) == (10, None, None)
    assert train_config({"time_budget": "2h"}, None).time_budget == 7200
    tuned = train_config({}, None, finetune=True)  # --init-from: fine-tuning's rate and warmup
    assert (tuned.lr, tuned.warmup) == (3e-4, 20)
    assert train_config({"lr": 0.01}, None, finetune=True).lr == 0.01  # what is given wins


@pytest.mark.slow
def test_dropout_follows_the_planned_epochs_unless_chosen(cli) -> None:
    # 1,500 characters: 21 epochs of a tiny model take a second
    Path("c.txt").write_text(corpus_text(1_500), encoding="utf-8")
    common = ["train", "c.txt", *TINY, "--quiet", "--val-frac", "0.1"]  # 150 val chars: kept
    assert cli(*common, "--max-epochs", "21", "--out", "many").code == 0
    chosen = ["--dropout", "0.1", "--layers", "1"]
    assert cli(*common, "--max-epochs", "21", *chosen, "--out", "chosen").code == 0
    assert cli(*common, "--max-epochs", "3", "--out", "few").code == 0
    model = {
        run: json.loads(cli("inspect", f"{run}/last.ckpt", "--json").out)["model"]
        for run in ("many", "chosen", "few")
    }
    assert (model["many"]["layers"], model["many"]["dropout"]) == (2, 0.4)
    assert (model["chosen"]["layers"], model["chosen"]["dropout"]) == (1, 0.1)
    assert (model["few"]["layers"], model["few"]["dropout"]) == (2, 0.2)


def test_a_run_shows_its_plan_and_the_options_that_repeat_it(cli) -> None:
    Path("c.txt").write_text(corpus_text(1_500), encoding="utf-8")
    common = ["train", "c.txt", *TINY, "--max-epochs", "21", "--val-frac", "0.1", "--dry-run"]
    r = cli(*common)
    assert r.code == 0 and r.out == "" and not Path("runs").exists()
    lines = [x for x in r.err.splitlines() if x.startswith(("plan:", "same run"))]
    assert lines[0].startswith("plan: 2×32 lstm, dropout 0.4, weight-drop 0.2, evaluate every ")
    assert lines[1].startswith("same run without planning: --layers 2 --hidden 32 --dropout 0.4 ")
    summary = json.loads(cli(*common, "--json").out)
    assert summary["model"]["dropout"] == 0.4 and summary["plan"]["chosen"]["dropout"] == 0.4
    assert summary["plan"]["estimate"]["epochs"] == pytest.approx(21, abs=0.5)
    # a timed plan on a small text says why the model is not larger (at the reference speed)
    Path("small.txt").write_text(corpus_text(30_000), encoding="utf-8")
    r = cli("train", "small.txt", "--time-budget", "1h", "--dry-run")
    assert r.code == 0 and r.out == "", r.err
    lines = [x for x in r.err.splitlines() if x.startswith(("plan:", "not larger:", "same run"))]
    assert lines[0].startswith("plan: 1×256 lstm, dropout 0.5, weight-drop 0.2, evaluate every ")
    assert lines[1] == (
        "not larger: 2×256 would have over 20 weights per character of this text "
        "(enough to learn it by heart)"
    )
    assert lines[2].startswith("same run without planning: --layers 1 --hidden 256 ")
    # two seconds buy no shape its steps: the smallest, said so, and `inspect` shows it too
    r = cli("train", "small.txt", "--time-budget", "2s", "--dry-run")
    smallest = "no shape meets the rules: 1×256, the smallest, would make under 1,100 steps in this"
    assert f"{smallest} budget" in r.err.splitlines()
    r = cli("train", "small.txt", "--time-budget", "2s", "--out", "short", "--quiet")
    assert r.code == 0, r.err
    plan = json.loads(cli("inspect", "short/last.ckpt", "--json").out)["plan"]
    assert plan["limit"] == {"shape": "1x256", "lacks": "steps"}
    shown = " ".join(cli("inspect", "short/last.ckpt").out.split())  # unwrapped
    assert "no shape meets the rules (1x256: too few steps)" in shown


def test_prep_json_on_stdout_and_quiet(cli) -> None:
    Path("t.txt").write_text("héllo wörld\n" * 50, encoding="utf-8")
    r = cli("prep", "t.txt", "-o", "ds", "--json", "--quiet")
    assert r.code == 0 and r.err == ""
    summary = json.loads(r.out)
    assert summary["chars"] == 600 and summary["path"] == "ds" and summary["dtype"] == "uint8"


def test_several_stop_strings_end_a_sample_at_the_first(cli, trained: Path) -> None:
    """--stop is repeatable: the text ends where any of them first appears (beam search too)."""
    full = cli("sample", trained, "--seed", "A", "--rng-seed", 3, "--length", 300, "--no-echo")
    first = min(i for i in (full.out.find("e"), full.out.find(":")) if i >= 0)
    cut = cli("sample", trained, "--seed", "A", "--rng-seed", 3, "--length", 300, "--no-echo",
              "--stop", "e", "--stop", ":")  # fmt: skip
    assert cut.code == 0 and cut.out == full.out[:first]
    beam = cli(
        "sample", trained, "--seed", "A", "--beam", 2, "--length", 60, "--stop", "e", "--stop", " "
    )
    assert beam.code == 0 and "e" not in beam.out[1:] and " " not in beam.out[1:]
