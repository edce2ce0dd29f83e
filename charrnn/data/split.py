"""The validation-split rule, in one place: how much of a text is held out, and where.

Torch- and numpy-free, so `charrnn train --help` can state it and a resumed run can recompute it
from the checkpoint's numbers alone. It reads and writes no files (`prep` does).
"""

from __future__ import annotations

DEFAULT_VAL_FRAC = 0.1
# A shorter validation split cannot rank checkpoints: keep all of the text for training
# (bench/val_split_noise.py; docs/defaults.md: "Short runs").
MIN_VAL_CHARS = 1_000


def auto_val_frac(chars: int) -> float:
    """The validation fraction for a text of this many characters when none was asked for: the
    default, or 0 where that split would hold fewer than MIN_VAL_CHARS (it would measure nothing,
    and cost the model text to learn from)."""
    return DEFAULT_VAL_FRAC if int(chars * DEFAULT_VAL_FRAC) >= MIN_VAL_CHARS else 0.0


def split_sizes(n: int, val_frac: float, test_frac: float) -> dict[str, int]:
    """Contiguous tail splits, train first (the nanoGPT convention, so figures compare)."""
    n_val, n_test = int(n * val_frac), int(n * test_frac)
    return {"train": n - n_val - n_test, "val": n_val, "test": n_test}
