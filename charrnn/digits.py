"""Decimal numbers read from text a user or a file supplies (a device index, a header field, a
process id in a file name, an HTTP header, a JSON key): ASCII digits only, and not too many.

`str.isdigit()` accepts characters `int()` refuses (`²`, `①`) and others it reads (`٣`), and `int()`
refuses a string of 4,300 digits or more; each would end in a traceback or a surprise rather than
the caller's own message. It does not say what a number means or what range it must be in.
"""

from __future__ import annotations

import re

_DECIMAL = re.compile(r"[0-9]+")


def decimal(text: str, digits: int = 18) -> int | None:
    """text as a non-negative integer when it is 1 to `digits` ASCII digits; else None."""
    if len(text) > digits or not _DECIMAL.fullmatch(text):
        return None
    return int(text)
