"""Where a training run lives: the run directory's name, and never replacing another run by accident.

It does not lock the directory (`runtime.RunLock` does) or write anything in it (the trainer does).
"""

from __future__ import annotations

import json
from pathlib import Path

from charrnn.errors import InputError


def label(corpus: str) -> str:
    """The corpus's short name for runs/<name>: a dataset's recorded name, else the file's stem."""
    from charrnn.data.dataset import is_dataset
    from charrnn.data.prep import corpus_name

    meta = Path(corpus) / "meta.json"
    if is_dataset(Path(corpus)):
        try:
            return str(json.loads(meta.read_text(encoding="utf-8"))["name"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
    return corpus_name([corpus])


def run_dir(out: Path | None, name: str, resume: Path | None) -> Path:
    """--out as given, else the resumed run's directory, else a fresh runs/<name>, runs/<name>-2,
    ... so that no earlier run is ever overwritten by default."""
    if out is not None:
        if out.exists() and not out.is_dir():
            raise InputError(f"--out {out}: is a file, not a directory")
        return out
    if resume is not None:
        return resume.parent
    base, n = Path("runs") / name, 2
    cand = base
    while cand.exists() and any(cand.iterdir()):
        cand, n = Path(f"{base}-{n}"), n + 1
    return cand


def refuse_clobber(out: Path, overwrite: bool, resume: Path | None) -> None:
    """A fresh run never replaces another's checkpoints unless asked to (checked under the lock)."""
    held = [f for f in ("last.ckpt", "best.ckpt") if (out / f).exists()]
    same = resume is not None and resume.resolve().parent == out.resolve()
    if held and not (overwrite or same):
        raise InputError(
            f"{out} already holds a run; continue it with --resume {out / held[0]}, "
            "start over with --overwrite, or choose another --out"
        )
