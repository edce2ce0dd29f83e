"""What `charrnn train --resume` keeps from the checkpoint that a fresh run would choose anew.

A resumed run on raw text must prepare it into the same splits as before, whatever the size rule would
say today. This module only chooses; `cli.train` merges the configs and the trainer restores the run.
"""

from __future__ import annotations

from charrnn.prep import DEFAULT_VAL_FRAC, auto_val_frac, split_sizes


def resumed_val_frac(meta: dict) -> float | None:
    """The --val-frac that prepares the checkpoint's raw text into the same splits again, when none
    was given: None (the size rule, and its cache entry) where that rule made them, else 0 where it
    had no validation split, else the default. Other fractions must be given again, as the
    checkpoint's corpus check says."""
    chars, val = int(meta["corpus"]["chars"]), int(meta["corpus"]["splits"].get("val", 0))
    if split_sizes(chars, auto_val_frac(chars), 0.0)["val"] == val:
        return None
    return 0.0 if val == 0 else DEFAULT_VAL_FRAC
