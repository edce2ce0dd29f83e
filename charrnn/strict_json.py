"""JSON that every parser reads: no bare `NaN` or `Infinity` in anything charrnn writes.

Python's `json` writes a non-finite float as `NaN`/`Infinity`, which browsers, `jq` and most other
parsers refuse, so one such figure makes a hosted page or a pipeline fail. A writer that can meet a
non-finite figure says so in its own words (null plus a reason); `finite` is the net under that:
it turns what is left into null and names where. `dumps` refuses a non-finite number outright, so a
writer that forgot both fails loudly here rather than writing a file no one can read. It does not
choose what a record holds.
"""

from __future__ import annotations

import json
import math
from typing import Any

NON_FINITE = "non_finite"  # the key naming the fields a record's writer turned into null


def finite(obj: Any) -> tuple[Any, list[str]]:
    """`obj` with every non-finite float replaced by None, and where each was (`a.b[2]`)."""
    found: list[str] = []

    def walk(x: Any, where: str) -> Any:
        if isinstance(x, float) and not math.isfinite(x):
            found.append(where or "(value)")
            return None
        if isinstance(x, dict):
            return {k: walk(v, f"{where}.{k}" if where else str(k)) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [walk(v, f"{where}[{i}]") for i, v in enumerate(x)]
        return x

    return walk(obj, ""), found


def record(obj: dict) -> dict:
    """A dict with its non-finite figures as null, and `non_finite` naming them (when any)."""
    clean, found = finite(obj)
    if found:
        clean[NON_FINITE] = found
    return clean


def dumps(obj: Any, **kw: Any) -> str:
    """`json.dumps` that raises ValueError on a non-finite number instead of writing one."""
    return json.dumps(obj, allow_nan=False, **kw)
