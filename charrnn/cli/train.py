"""The `charrnn train` command: options, run-directory choice, the plan shown, and signal handling.

Options default to None so a resumed run can tell what the user asked to change from what the
checkpoint already says; the real defaults live in ModelConfig and TrainConfig (shown in help) and
the choices beyond them in `train.plan`.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import statistics
import sys
from dataclasses import fields
from pathlib import Path
from typing import Annotated, Literal

import typer

from charrnn.cli.console import TrainView, console
from charrnn.cli.plan import plan_summary, prepare
from charrnn.data.split import DEFAULT_VAL_FRAC, MIN_VAL_CHARS
from charrnn.errors import InputError, Interrupted
from charrnn.model_config import ModelConfig
from charrnn.train.config import TrainConfig
from charrnn.train.events import Logged
from charrnn.train.plan import FINETUNE_DEFAULTS, WARMUP_FRACTION
from charrnn.train.rundir import label, refuse_clobber, run_dir

_T = TrainConfig()
# A finished run refreshes the speed cache only after this many speed records (log lines): a short
# run's figure is mostly start-up.
MIN_SPEED_RECORDS = 10
# ModelConfig's defaults, for the help (model_config is torch-free: `charrnn -h` stays fast)
_M = {f.name: f.default for f in fields(ModelConfig) if f.name != "vocab_size"}
MODEL, BATCH, OPTIM, STOP, OUTPUT, RUNTIME, DATA = (
    "Model",
    "Batching",
    "Optimisation",
    "Stopping",
    "Evaluation and output",
    "Runtime",
    "Data",
)


def _opt(panel: str, help: str, default: object = None, *names: str, **kw: object):
    shown = f" \\[default: {default}]" if default is not None else ""  # escaped for Rich markup
    return typer.Option(*names, help=help + shown, rich_help_panel=panel, show_default=False, **kw)


def train(
    corpus: Annotated[
        str | None,
        typer.Argument(
            help="Text file, directory of text, or dataset from prep (optional with --resume).",
            show_default=False,
        ),
    ] = None,
    cell: Annotated[
        Literal["lstm", "gru", "rnn"] | None,
        _opt(MODEL, "Recurrent cell (rnn = tanh RNN).", _M["cell"]),
    ] = None,
    layers: Annotated[
        int | None,
        _opt(
            MODEL,
            "Stacked recurrent layers.",
            "planned for the budget (see --dry-run); 2 without one",
            min=1,
        ),
    ] = None,
    hidden: Annotated[
        int | None,
        _opt(MODEL, "Hidden units per layer.", "planned for the budget; 512 without one", min=1),
    ] = None,
    embed: Annotated[
        int | None, _opt(MODEL, "Character embedding size.", _M["embed"], min=1)
    ] = None,
    dropout: Annotated[
        float | None,
        _opt(
            MODEL,
            "Dropout between layers and before the head, in [0, 1).",
            "by the planned epochs, 0 under one to 0.5 over 100; 0 with no validation split",
        ),
    ] = None,
    weight_drop: Annotated[
        float | None,
        _opt(
            MODEL,
            "DropConnect on the recurrent weights, in [0, 1): a fraction of each weight_hh matrix "
            "zeroed for a whole step.",
            "0.2 for lstm, 0 for gru and rnn; 0 under one planned epoch or with no validation split",
        ),
    ] = None,
    locked_dropout: Annotated[
        bool | None,
        _opt(
            MODEL,
            "One dropout mask per stream for a whole step (variational) instead of one per character.",
            "on",
            "--locked-dropout/--no-locked-dropout",
        ),
    ] = None,
    batch_size: Annotated[
        int | None, _opt(BATCH, "Parallel text streams per process.", _T.batch_size, min=1)
    ] = None,
    seq_len: Annotated[
        int | None, _opt(BATCH, "Characters per stream per step (BPTT length).", _T.seq_len, min=1)
    ] = None,
    lr: Annotated[float | None, _opt(OPTIM, "Peak learning rate (AdamW).", _T.lr)] = None,
    warmup: Annotated[
        int | None,
        _opt(
            OPTIM,
            "Linear warmup steps.",
            f"{_T.warmup}, at most {WARMUP_FRACTION:.0%} of the planned steps",
            min=0,
        ),
    ] = None,
    min_lr: Annotated[
        float | None, _opt(OPTIM, "Cosine floor as a fraction of --lr.", _T.min_lr)
    ] = None,
    weight_decay: Annotated[
        float | None, _opt(OPTIM, "AdamW weight decay on weight matrices.", _T.weight_decay)
    ] = None,
    grad_clip: Annotated[
        float | None, _opt(OPTIM, "Clip the gradient norm (0 = off).", _T.grad_clip)
    ] = None,
    ema: Annotated[
        float | None,
        _opt(
            OPTIM,
            "Decay of the weight average (EMA) that evaluation, best.ckpt and sampling use; 0 = off.",
            _T.ema,
        ),
    ] = None,
    shift_windows: Annotated[
        bool | None,
        _opt(
            BATCH,
            "Start each epoch's windows at another offset, so BPTT boundaries move between epochs.",
            "on" if _T.shift_windows else "off",
            "--shift-windows/--no-shift-windows",
        ),
    ] = None,
    max_epochs: Annotated[
        int | None,
        _opt(STOP, "Stop after this many passes over the data.", "50 if no stopping option", min=1),
    ] = None,
    max_steps: Annotated[
        int | None,
        _opt(STOP, "Stop at this total step count (a resumed run finishes the plan).", min=1),
    ] = None,
    time_budget: Annotated[
        str | None,
        _opt(
            STOP,
            "Stop after this long: 90s, 10m, 2h; the LR schedule anneals to it, and the model "
            "options not given are sized to it at this machine's measured speed.",
            "10m if no stopping option",
        ),
    ] = None,
    patience: Annotated[
        int | None, _opt(STOP, "Stop after this many evaluations without a new best.", min=1)
    ] = None,
    eval_every: Annotated[
        int | None,
        _opt(
            OUTPUT,
            "Evaluate and save last.ckpt every N steps.",
            f"{_T.eval_every}, or often enough for 5 evaluations in the planned steps",
            min=1,
        ),
    ] = None,
    eval_chars: Annotated[
        int | None,
        _opt(
            OUTPUT, "Validation characters per evaluation (a fixed prefix).", _T.eval_chars, min=1
        ),
    ] = None,
    log_every: Annotated[
        int | None,
        _opt(OUTPUT, "Write a metrics.jsonl training record every N steps.", _T.log_every, min=1),
    ] = None,
    sample_every: Annotated[
        int | None, _opt(OUTPUT, "Show a short sample on stderr every N steps.", min=1)
    ] = None,
    out: Annotated[
        Path | None, _opt(OUTPUT, "Run directory.", "runs/<corpus>", "--out", "-o")
    ] = None,
    overwrite: Annotated[
        bool,
        _opt(OUTPUT, "Start afresh in an --out that already holds a run.", None, "--overwrite"),
    ] = False,
    resume: Annotated[
        Path | None, _opt(OUTPUT, "Continue exactly from this checkpoint (e.g. runs/x/last.ckpt).")
    ] = None,
    init_from: Annotated[
        Path | None,
        _opt(
            OUTPUT,
            "Start a new run from this model's weights (a file or hf:OWNER/NAME; fine-tuning): "
            "its shape, its vocabulary plus the text's new characters, a fresh optimizer, and a "
            "lower --lr and --warmup "
            f"({FINETUNE_DEFAULTS['lr']:g}, {FINETUNE_DEFAULTS['warmup']}) unless given.",
        ),
    ] = None,
    allow_new_corpus: Annotated[
        bool,
        _opt(
            OUTPUT,
            "With --resume, accept a different corpus with the same vocabulary.",
            None,
            "--allow-new-corpus",
        ),
    ] = False,
    as_json: Annotated[
        bool, _opt(OUTPUT, "Print a JSON summary of the finished run on stdout.", None, "--json")
    ] = False,
    quiet: Annotated[bool, _opt(OUTPUT, "Only errors on stderr.", None, "--quiet", "-q")] = False,
    dry_run: Annotated[
        bool,
        _opt(
            OUTPUT,
            "Print the plan (with --json: as JSON) and stop before training.",
            None,
            "--dry-run",
        ),
    ] = False,
    device: Annotated[str, _opt(RUNTIME, "auto, cpu, cuda or mps.", "auto")] = "auto",
    no_calibrate: Annotated[
        bool,
        _opt(
            RUNTIME,
            "Plan at the fixed reference speed instead of measuring this machine's.",
            None,
            "--no-calibrate",
        ),
    ] = False,
    precision: Annotated[
        Literal["auto", "fp32", "bf16", "fp16"] | None,
        _opt(RUNTIME, "Arithmetic precision; auto = bf16 where native.", _T.precision),
    ] = None,
    threads: Annotated[
        int | None, _opt(RUNTIME, "CPU threads \\[default: torch's choice].", None, min=1)
    ] = None,
    rng_seed: Annotated[
        int | None, _opt(RUNTIME, "Random seed: same seed, same CPU run.", _T.rng_seed, min=0)
    ] = None,
    val_frac: Annotated[
        float | None,
        _opt(
            DATA,
            "Validation fraction when preparing raw text.",
            f"{DEFAULT_VAL_FRAC}; 0 where that would be under {MIN_VAL_CHARS:,} chars",
        ),
    ] = None,
    errors: Annotated[
        Literal["strict", "replace"], _opt(DATA, "Invalid UTF-8 in raw text.", "strict")
    ] = "strict",
    glob: Annotated[
        str | None, _opt(DATA, "For a directory of text: only files matching this.")
    ] = None,
) -> None:
    """Train a model; checkpoints and metrics.jsonl go to the run directory."""
    given = {k: v for k, v in locals().items() if v is not None}
    from charrnn import checkpoint
    from charrnn.train import distributed
    from charrnn.train.plan import carried_model, train_config
    from charrnn.train.resume import check_shape, check_unchanged
    from charrnn.train.rundir import RunLock

    if resume and init_from:
        raise InputError(
            "--resume continues a run, --init-from starts a new one from a model: give one of them"
        )
    from charrnn.cli.common import local

    header = checkpoint.read_header(local(str(resume))) if resume else None
    if header is not None and not header.meta["state"]:
        raise InputError(f"{resume}: holds no training state to resume")
    if header is not None and not checkpoint.summarize(header)["weights"]["resumable"]:
        raise InputError(
            f"{resume}: a sampling checkpoint (no optimizer state; export --format hub writes "
            f"them) cannot be resumed; start a new run from it with --init-from {resume}"
        )
    source = checkpoint.read_header(local(str(init_from))) if init_from else None
    world = distributed.from_env()
    if header is not None:
        check_unchanged(given, header.meta, world.size)
    if source is not None:
        check_shape(given, source.meta, "with --init-from")
    tcfg = train_config(given, header and header.meta, finetune=source is not None)
    # check the model options before spending time on the corpus
    if header is None and source is None:
        ModelConfig(vocab_size=1, **{k: given.get(k, d) for k, d in _M.items()})
    else:
        ModelConfig.from_dict(carried_model((header or source).meta, given))
    corpus = corpus or (header.meta["corpus"].get("path") if header else None)
    if not corpus:
        raise InputError("missing CORPUS: the text file or dataset to train on")
    if corpus != "-" and not Path(corpus).exists():
        raise InputError(f"{corpus}: no such file or directory")
    dev = distributed.device(world, device)
    distributed.init(world, dev)  # ranks plan from rank 0's speed and train where rank 0 chose
    if dry_run:
        say = not quiet and world.main
        _, _, run, _ = prepare(corpus, given, header, source, tcfg, world, dev, say)
        distributed.shutdown(world)
        if as_json and world.main:
            sys.stdout.write(json.dumps(plan_summary(run)) + "\n")
        return
    out_dir = distributed.broadcast(
        world, run_dir(out, label(corpus), resume) if world.main else None
    )
    created = not out_dir.exists()
    try:
        with RunLock(out_dir) if world.main else contextlib.nullcontext():
            if world.main:
                refuse_clobber(out_dir, overwrite, resume)
            result, signum = _train_locked(
                corpus, given, header, source, tcfg, out_dir, world, dev, allow_new_corpus
            )
    except BaseException:
        if created and world.main and {p.name for p in out_dir.iterdir()} <= {".lock"}:
            shutil.rmtree(out_dir, ignore_errors=True)  # nothing was trained: leave nothing behind
        raise
    if given.get("as_json") and world.main:
        sys.stdout.write(json.dumps({"out_dir": str(out_dir), **result.__dict__}) + "\n")
    if result.reason == "interrupted":
        hint = f"charrnn train --resume {result.last_path}" + (f" {corpus}" if corpus else "")
        raise Interrupted(
            f"interrupted: saved {result.last_path} at step {result.step}; resume with: {hint}",
            128 + (signum or signal.SIGINT),
        )


def _train_locked(corpus, given, header, source, tcfg, out_dir, world, dev, allow_new_corpus):
    """Prepare the data, plan the run and train it, with signals turned into a clean stop."""
    from charrnn.cli.signals import Signals
    from charrnn.train import calibrate, distributed
    from charrnn.train.loop import Trainer

    quiet = given.get("quiet", False)
    say = not quiet and world.main
    dataset, start, run, spent = prepare(corpus, given, header, source, tcfg, world, dev, say)
    tcfg, mcfg = run.train, run.model
    stopper = Signals()
    speeds: list[float] = []
    with TrainView(console, quiet=quiet or not world.main) as view:

        def on_event(event) -> None:
            if isinstance(event, Logged):
                speeds.append(event.chars_per_sec)
            view(event)

        trainer = Trainer(
            dataset,
            mcfg,
            tcfg,
            out_dir,
            device=str(dev),
            resume=header,
            on_event=on_event,
            should_stop=stopper.reason,
            world=world,
            allow_new_corpus=allow_new_corpus,
            start=start,
            overwrite=bool(given.get("overwrite")),  # refuse_clobber has checked the checkpoints
            plan=run.record,
            spent=spent,
        )
        stopper.install()
        try:
            result = trainer.run()
        finally:
            stopper.uninstall()
            distributed.shutdown(world)
    # The first record includes the slow first steps; a run of a few records says little.
    if world.main and len(speeds) > MIN_SPEED_RECORDS:
        real = statistics.median(speeds[1:])
        calibrate.remember(mcfg, trainer.device, trainer.precision, world.size, real)
    return result, stopper.signum
