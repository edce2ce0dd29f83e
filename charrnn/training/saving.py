"""A training run's files: claiming the run directory for a fresh run, refusing to save anything
non-finite (every process stops together), and writing last.ckpt and best.ckpt.

It does not decide when to save (the loop does) or lock the directory (`rundir.RunLock`); the
checkpoint container itself (header, atomic write) is `charrnn.checkpoint`.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from charrnn import checkpoint
from charrnn.errors import CharRNNError
from charrnn.model import parameter_count, state_tensors
from charrnn.training import distributed
from charrnn.training import state as snapshot

if TYPE_CHECKING:
    from charrnn.training.loop import Trainer

RUN_FILES = ("last.ckpt", "best.ckpt", "metrics.jsonl")


class Diverged(CharRNNError):
    """The loss or the weights became non-finite; nothing non-finite is ever saved."""


def claim(out_dir: Path, fresh: bool, overwrite: bool) -> str | None:
    """Ready the directory (main process, under the lock): None, or why it cannot be used. A fresh
    run replaces an old one's files only when asked to, so they never mix and never vanish
    silently."""
    checkpoint.clean_temp_files(out_dir)
    if not fresh:
        return None
    held = [name for name in RUN_FILES if (out_dir / name).exists()]
    if held and not overwrite:
        return (
            f"{out_dir} already holds a run ({', '.join(held)}); pass overwrite=True "
            "(the CLI's --overwrite) to start afresh there, or resume it"
        )
    for name in held:  # --overwrite replaces a run's own files only (a Lightning last.ckpt: no)
        why = _not_a_run_file(out_dir / name)
        if why:
            return f"{out_dir / name}: {why}; --overwrite replaces only a charrnn run's files"
    for name in ("last.ckpt", "best.ckpt"):  # metrics.jsonl starts afresh as it opens
        (out_dir / name).unlink(missing_ok=True)
    return None


def _not_a_run_file(path: Path) -> str | None:
    """Why `path` is not what a charrnn run writes under its name (None: it is)."""
    if path.is_symlink() or not path.is_file():
        return "not a file"
    if path.suffix == ".ckpt":
        try:
            checkpoint.read_header(path)
        except CharRNNError:
            return "not a charrnn checkpoint"
        return None
    with path.open("rb") as f:
        data = f.read(1 << 16)
    lines = data.splitlines()
    if not data.endswith(b"\n"):
        lines = lines[:-1]  # torn by a crash, or cut where the read stopped
    try:
        if all(isinstance(json.loads(line), dict) for line in lines if line.strip()):
            return None
    except ValueError:
        pass
    return "not a charrnn metrics log"


def diverged(t: Trainer, what: str) -> Diverged:
    """Stop on numerical blow-up, pointing at what is still good on disk. Every process calls it
    at the same point and raises rank 0's words, so all of them stop with one message."""
    kept = (
        f"the last good checkpoint is {t.last_path}"
        if t.last_path.exists()
        else "no checkpoint was written"
    )
    message = (
        f"training diverged at step {t.progress.step} ({what}); nothing was saved, "
        f"{kept}; try a lower --lr"
    )
    return Diverged(str(distributed.broadcast(t.world, message)))


def save(t: Trainer, best: bool) -> None:
    """Write last.ckpt (and link best.ckpt to it); every process takes part, rank 0 writes."""
    carry = [distributed.gather_rows(t.world, c.float()) for c in state_tensors(t.carry)]
    # Each process checks its own weights and all learn whether any found one non-finite: a rank
    # that raised alone would leave the others waiting in the next collective until it timed out.
    weights = list(t.model.state_dict().values())
    weights += list(t.average.tensors().values()) if t.average is not None else []
    bad = not all(torch.isfinite(w).all() for w in weights)
    if distributed.all_sum(t.world, [float(bad)], t.device)[0]:
        raise diverged(t, "the weights became non-finite")
    if not t.world.main:
        return
    tensors, optim = snapshot.pack(t.model, t.optimizer, t.scaler, carry)
    tensors |= t.average.tensors() if t.average is not None else {}
    state = {
        **asdict(t.progress),
        "world_size": t.world.size,
        "device": str(t.device),
        "precision": t.precision,
        "steps_per_epoch": t.batcher.steps_per_epoch,
        "total_steps": t.horizon,
        # which of the file's weight sets sample/score/serve use (checkpoint.sampling_prefix)
        "weights": "average" if t.average is not None and t.use_average else "raw",
    }
    meta = snapshot.metadata(t.model_cfg, t.cfg, t.vocab, t.dataset.fingerprint(), state, optim) | {
        "history": t.history,
        "parameters": parameter_count(t.model),
    }
    if t.voices is not None:
        _add_voices(t, meta)
    if t.init_from:
        meta["init_from"] = t.init_from
    if t.plan:
        meta["plan"] = t.plan
    checkpoint.save(t.last_path, tensors, meta)
    if best:
        checkpoint.link(t.last_path, t.best_path)


def _add_voices(t: Trainer, meta: dict) -> None:
    """A conditioned model's `voices` (docs/formats.md; it makes the file format 4); a
    --no-condition run, an unvoiced model, notes its voices in `train.voices_off` instead."""
    table, cfg = t.voices, t.cfg
    record = {
        "names": list(table.names),
        "counts": [list(c) for c in table.counts],
        "chars": {s: table.recorded_chars(s) for s in ("train", "val", "test")},
        "balance": cfg.balance,
        "voice_cap": cfg.voice_cap,
        "untagged_share": cfg.untagged_share,
        "val": dict(t.voice_val),
    }
    if t.model_cfg.voices:
        meta["voices"] = record
    else:
        del record["counts"], record["untagged_share"]
        meta["train"] = meta["train"] | {"voices_off": record}
