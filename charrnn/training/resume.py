"""What `charrnn train --resume` may change, and what it may not.

Training choices (stopping rules, --lr, --warmup, --dropout, ...) may change on resume. What the
weights and the data streams are made of (--cell, --layers, --hidden, --embed, --batch-size,
--seq-len) may not: an option equal to the checkpoint's passes silently, so the first command with
--resume added just works, and a real change is refused with one line naming the option, the
checkpoint's value and the new one. This module only checks and chooses; `cli.train` merges the
configs and the trainer restores the run.
"""

from __future__ import annotations

from charrnn.data.split import DEFAULT_VAL_FRAC, auto_val_frac, split_sizes
from charrnn.errors import InputError, option
from charrnn.training.batches import fit_batch

SHAPE = ("cell", "layers", "hidden", "embed")


def check_shape(given: dict, meta: dict, when: str = "on resume") -> None:
    """Refuse a shape option that differs from the checkpoint's (equal ones pass): the weights
    continue, so their shapes cannot change. `when`: "on resume" or "with --init-from"."""
    model = meta["model"]
    hint = "when resuming" if when == "on resume" else "when starting from a model"
    shaped = SHAPE + (("voice_dim",) if model.get("voices") else ())
    for name in shaped:
        if name in given and given[name] != model[name]:
            raise InputError(
                f"--{name.replace('_', '-')} cannot change {when}: the checkpoint's model has {model[name]}, "
                f"this asks for {given[name]}; leave --{name.replace('_', '-')} out {hint}"
            )


def check_unchanged(given: dict, meta: dict, world_size: int) -> None:
    """Refuse a shape or stream option that differs from the checkpoint's (equal ones pass)."""
    check_shape(given, meta)
    if {"batch_size", "seq_len"} & given.keys():
        _check_streams(given, meta, world_size)


def _check_streams(given: dict, meta: dict, world_size: int) -> None:
    """--batch-size is per process, so it is compared as total streams (batch size × processes).

    Both options are fitted to the corpus as a fresh run fits them (a small corpus shrinks them), so
    repeating the first command's values is accepted even where that run shrank them.
    """
    per, seq = meta["train"]["batch_size"], meta["train"]["seq_len"]
    old_world = int(meta["state"].get("world_size", 1))
    streams = per * old_world
    asked_b = given.get("batch_size", max(1, streams // world_size))
    asked_s = given.get("seq_len", seq)
    new_b, new_s = fit_batch(int(meta["corpus"]["splits"]["train"]), asked_b, asked_s, world_size)
    if "seq_len" in given and new_s != seq:
        raise InputError(
            f"{option('seq_len')} cannot change on resume: the checkpoint has {seq}, this asks "
            f"for {asked_s}; leave it out when resuming"
        )
    if "batch_size" in given and new_b * world_size != streams:
        raise InputError(
            f"{option('batch_size')} cannot change on resume: the checkpoint's run has "
            f"{_streams(per, old_world)}; a batch size of {asked_b} in {_processes(world_size)} "
            f"would make {new_b * world_size}: leave it out when resuming"
        )


def _streams(per: int, world: int) -> str:
    return f"{per * world} streams" + (
        f" ({per} per process × {world} processes)" if world > 1 else ""
    )


def _processes(n: int) -> str:
    return "one process" if n == 1 else f"{n} processes"


def resumed_val_frac(meta: dict) -> float | None:
    """The --val-frac that prepares the checkpoint's raw text into the same splits again, when none
    was given: None (the size rule, and its cache entry) where that rule made them, else 0 where it
    had no validation split, else the default. Other fractions must be given again, as the
    checkpoint's corpus check says."""
    chars, val = int(meta["corpus"]["chars"]), int(meta["corpus"]["splits"].get("val", 0))
    if split_sizes(chars, auto_val_frac(chars), 0.0)["val"] == val:
        return None
    return 0.0 if val == 0 else DEFAULT_VAL_FRAC
