"""Which files charrnn may remove when it replaces what it wrote: only its own, and only as it wrote
them. The rule behind export's `--overwrite`, prep's `-o`, viz's page and the LSTMVis folder.

A writer records each file's sha256 as it writes it (`export.json`, a dataset's `meta.json`, the
LSTMVis folder's `charrnn.json`; a page carries its own, see `stamp`). Before a replacement,
`intruder` names the first entry that is not the writer's own or that changed since it was written,
and the caller refuses in one line. It does not replace anything (`atomic` does) and does not phrase
the refusal (each caller knows its option names).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Intruder:
    """An entry a replacement may not remove: `name` relative to the folder (POSIX), and why."""

    name: str
    changed: bool  # True: a file the writer wrote, edited since; False: not the writer's at all

    def reason(self, writer: str) -> str:
        """`notes.txt is not the export's own` / `index.html changed since the export wrote it`."""
        if self.changed:
            return f"{self.name} changed since the {writer} wrote it"
        return f"{self.name} is not the {writer}'s own"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def intruder(
    folder: Path,
    own: Mapping[str, str | None],
    spare: Callable[[str], bool] = lambda name: False,
) -> Intruder | None:
    """The first entry under `folder` (sorted, subfolders walked) that may not be removed: one not
    in `own` (relative POSIX name → recorded sha256, None where none was recorded), a link, or a
    file whose sha256 is not the recorded one. `spare(name)`: other files the writer made and may
    remove (a cache it rebuilds). A recorded file that is missing is no obstacle."""
    parents = {p.as_posix() for name in own for p in Path(name).parents if p != Path(".")}
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        base = Path(root).relative_to(folder)
        for d in list(dirs):
            rel = (base / d).as_posix()
            if Path(root, d).is_symlink() or rel not in parents:
                return Intruder(rel, changed=False)
        for name in sorted(files):
            rel = (base / name).as_posix()
            path = Path(root, name)
            if rel not in own:
                if spare(rel) and not path.is_symlink():
                    continue
                return Intruder(rel, changed=False)
            if path.is_symlink() or not path.is_file():
                return Intruder(rel, changed=False)
            digest = own[rel]
            if digest is not None and sha256_file(path) != digest:
                return Intruder(rel, changed=True)
    return None


# A page records the sha256 of itself with this tag's digest zeroed, so it can tell an edit.
_STAMP = re.compile(rb'<meta name="charrnn-sha256" content="([0-9a-f]{64})">')
_ZERO = b"0" * 64


def stamp(page: bytes, after: bytes) -> bytes:
    """`page` with a `charrnn-sha256` tag inserted after the `after` tag (its generator tag)."""
    head = b'<meta name="charrnn-sha256" content="'
    if after not in page:
        return page
    blank = page.replace(after, after + b"\n" + head + _ZERO + b'">', 1)
    at = blank.find(head) + len(head)
    return blank[:at] + hashlib.sha256(blank).hexdigest().encode() + blank[at + 64 :]


def page_changed(page: bytes) -> bool | None:
    """Whether a stamped page was edited since it was written (None: it carries no stamp)."""
    m = _STAMP.search(page)
    if m is None:
        return None
    blank = page[: m.start(1)] + _ZERO + page[m.end(1) :]
    return hashlib.sha256(blank).hexdigest().encode() != m.group(1)


def page_obstacle(path: Path, mark: bytes, writer: str) -> str | None:
    """Why the file at `path` may not be replaced by a page of `writer` (None: nothing is there,
    or an earlier page of its own, carrying `mark` near its top, unedited)."""
    if not os.path.lexists(path):
        return None
    if path.is_symlink() or not path.is_file():
        return "is not a file"
    page = path.read_bytes()
    if mark not in page[:4096]:
        return f"is not a page the {writer} wrote"
    if page_changed(page):
        return f"changed since the {writer} wrote it"
    return None


def record_obstacle(folder: Path, names: tuple[str, ...], record: str, writer: str) -> str | None:
    """Why the files `names` in `folder` may not be replaced (None: each is absent, or listed in
    the JSON `record` beside them with the sha256 it still has). Files of other names are not
    touched by such a writer, so they are not asked about."""
    present = [n for n in names if os.path.lexists(folder / n)]
    if not present:
        return None
    try:
        digests = json.loads((folder / record).read_text(encoding="utf-8")).get("sha256", {})
    except (OSError, ValueError, AttributeError):
        digests = {}
    for name in present:
        path = folder / name
        digest = digests.get(name) if isinstance(digests, dict) else None
        if digest is None or path.is_symlink() or not path.is_file():
            return f"{name} is not the {writer}'s own"
        if sha256_file(path) != digest:
            return f"{name} changed since the {writer} wrote it"
    return None
