"""What `charrnn train` shows of a run's plan: the notes of the planning rules, and the all-text
rule for raw text too small for a validation split. The rules themselves are `train.plan`'s and
`data.split`'s pure functions; this module only prints on the stderr console.
"""

from __future__ import annotations

from charrnn.cli.console import console
from charrnn.data.split import DEFAULT_VAL_FRAC, MIN_VAL_CHARS, auto_val_frac


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
