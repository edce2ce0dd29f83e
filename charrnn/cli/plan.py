"""How `charrnn train` plans a run and shows the plan: it prepares the text, has the machine's
speed measured (rank 0; the others receive it), calls `training.plan.plan()`, and prints what it chose
on the stderr console (`--dry-run` stops there).

The rules themselves are `training.plan`'s, `training.sizing`'s and `data.split`'s pure functions.
"""

from __future__ import annotations

from charrnn.cli.console import console, limit_is_own
from charrnn.data.split import DEFAULT_VAL_FRAC, MIN_VAL_CHARS, auto_val_frac
from charrnn.model_config import ModelConfig
from charrnn.training.sizing import MAX_WEIGHTS_PER_CHAR, MIN_EPOCHS, MIN_STEPS


def prepare(corpus, given, header, source, tcfg, world, dev, say: bool):
    """The dataset (fitted to a resumed or fine-tuned model's vocabulary), the fine-tuning start,
    the plan, and the seconds planning spent measuring (counted against the budget)."""
    from pathlib import Path

    from charrnn.cli.finetune import as_checkpoint_vocab, fine_tune
    from charrnn.data.dataset import is_dataset, resolve_dataset
    from charrnn.training import distributed
    from charrnn.training.finetune import reencode
    from charrnn.training.plan import plan
    from charrnn.training.resume import resumed_val_frac

    if given.get("threads"):
        import torch

        torch.set_num_threads(given["threads"])
    prep_opts = {k: given.get(k) for k in ("val_frac", "errors", "glob")}
    if header and "val_frac" not in given:
        prep_opts["val_frac"] = resumed_val_frac(header.meta)
    if world.main:  # prepare once; the other ranks find it in the cache
        dataset, fresh = resolve_dataset(corpus, **prep_opts)
        if fresh and say:
            show(f"prepared {corpus} → {dataset.path}")
    distributed.barrier(world)
    if not world.main:
        dataset, _ = resolve_dataset(corpus, **prep_opts)
    if say and "val_frac" not in given and not is_dataset(Path(corpus)):
        say_if_all_text(corpus, int(dataset.meta["chars"]))
    start = None
    if source:
        start = fine_tune(source, dataset, tcfg, say)
        dataset = reencode(dataset, start.vocab)
    elif header:
        dataset = as_checkpoint_vocab(dataset, header.meta["vocab"])
    train_chars = len(dataset.split("train"))
    speeds = None
    if header is None and source is None and tcfg.time_budget:
        speeds = _measured(given, tcfg, dataset.vocab.size, train_chars, world, dev)
    run = plan(
        given,
        vocab_size=dataset.vocab.size,
        train_chars=train_chars,
        val_chars=len(dataset.split("val")),
        world_size=world.size,
        resume_meta=header and header.meta,
        source_meta=source and source.meta,
        speeds=speeds,
    )
    for line in run.notes if say else ():
        show(line)
    if say and run.record and header is None:
        for line in describe(run.record, run.model):
            show(line)
    return dataset, start, run, speeds.seconds if speeds else 0.0


def _measured(given, tcfg, vocab_size: int, train_chars: int, world, dev):
    """This machine's speed for the run's cell and vocabulary (rank 0 measures, every rank gets
    the same figures, so every rank plans alike); the reference with --no-calibrate."""
    from charrnn.training import calibrate, distributed
    from charrnn.training.batches import fit_batch
    from charrnn.training.precision import resolve_precision

    model = ModelConfig(vocab_size=vocab_size, **{k: given[k] for k in _SHAPED if k in given})
    if given.get("no_calibrate"):
        return None  # plan() takes the reference speed
    speeds = None
    if world.main:
        batch, seq = fit_batch(train_chars, tcfg.batch_size, tcfg.seq_len, world.size)
        precision = resolve_precision(tcfg.precision, dev, model.cell)
        speeds = calibrate.speeds(model, batch, seq, dev, precision, world.size, tcfg.time_budget)
    return distributed.broadcast(world, speeds)


# the model options that change a step's speed apart from its shape
_SHAPED = ("cell", "embed", "dropout", "weight_drop", "locked_dropout")


def plan_summary(run) -> dict:
    """What `train --dry-run --json` prints: the configs the run would have, and its plan."""
    return {"model": run.model.to_dict(), "train": run.train.to_dict(), "plan": run.record}


def show(line: str) -> None:
    console.print(line, highlight=False, markup=False)


def say_if_all_text(corpus: str, chars: int) -> None:
    """Say when raw text prepared without --val-frac was too small for a validation split."""
    if not auto_val_frac(chars):
        val = int(chars * DEFAULT_VAL_FRAC)
        show(
            f"{corpus}: {chars:,} chars, too few for a validation split ({DEFAULT_VAL_FRAC:.0%} "
            f"would be {val:,}, under {MIN_VAL_CHARS:,}): training on all of it"
        )


def describe(record: dict, model: ModelConfig) -> list[str]:
    """The plan in two or three lines: what it chose and why (steps, epochs, speed), what kept a
    larger shape out (where one was passed over), and the options that give the same run again
    without planning."""
    est, inputs = record["estimate"], record["inputs"]
    speed = inputs.get("speed")
    why = ""
    if speed:
        readings = ", ".join(f"{k} {v:,.0f}" for k, v in speed["chars_per_sec"].items())
        how = {"measured": f"measured in {speed['seconds']:.1f} s", "cached": "measured earlier"}
        why = (
            f" ({speed['source']} chars/s: {readings}; {how.get(speed['source'], 'not measured')})"
        )
    steps = f"~{est['steps']:,} steps" if est.get("steps") else "no step limit"
    epochs = f", {est['epochs']:g} epochs" if est.get("epochs") is not None else ""
    rate = f" at ~{est['chars_per_sec']:,} chars/s" if est.get("chars_per_sec") else ""
    chosen = record["chosen"]
    same = {
        "layers": model.layers,
        "hidden": model.hidden,
        "dropout": model.dropout,
        "weight_drop": model.weight_drop,
        "eval_every": chosen["eval_every"],
        "warmup": chosen["warmup"],
    }
    shape = f"{model.layers}×{model.hidden} {model.cell}, "
    lines = [
        f"plan: {shape}dropout {model.dropout:g}, weight-drop {model.weight_drop:g}, evaluate every "
        f"{chosen['eval_every']} steps: {steps}{epochs}{rate}{why}"
    ]
    if limit := record.get("limit"):
        named = limit["shape"].replace("x", "×")
        lacks = _LACKS.get(limit["lacks"], f"lacks {limit['lacks']}")
        lines.append(
            f"no shape meets the rules: {named}, the smallest, {lacks}"
            if limit_is_own(limit, model.layers, model.hidden)
            else f"not larger: {named} {lacks}"
        )
    lines.append("same run without planning: " + " ".join(_option(k, v) for k, v in same.items()))
    return lines


# What the next larger shape lacked (`sizing.shortfall`), as the plan says it.
_LACKS = {
    "steps": f"would make under {MIN_STEPS:,} steps in this budget",
    "passes": f"would see the text under {MIN_EPOCHS:g} times in this budget",
    "weights": f"would have over {MAX_WEIGHTS_PER_CHAR:g} weights per character of this text "
    "(enough to learn it by heart)",
}


def _option(name: str, value: object) -> str:
    return (
        f"--{name.replace('_', '-')} {value:g}"
        if isinstance(value, float)
        else (f"--{name.replace('_', '-')} {value}")
    )
