"""Where an export goes: refusing a path that holds anything but an earlier export's own, unedited
files, and writing the new one beside it before it takes the earlier one's place, so a failure or a
kill never leaves half of each, nor nothing.

An export folder is recognised by its `export.json` (format `charrnn-export`), which records each
file's sha256; a single-file page by its `<meta name="generator" content="charrnn export">` and
the sha256 it carries of itself (`owned.stamp`). It does not decide what goes in the files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from charrnn import atomic, owned
from charrnn.errors import InputError

MARKER = "export.json"
KIND = "charrnn-export"
PAGE_MARK = b'<meta name="generator" content="charrnn export">'


def marker(meta: dict, fmt: str, files: dict[str, bytes]) -> bytes:
    """export.json: what was exported (format, dtype, source, the dtype's cost), its files and each
    file's sha256 (what `--overwrite` checks before it replaces them)."""
    record = {
        "kind": KIND,
        "format": fmt,
        **{k: meta[k] for k in ("name", "charrnn", "dtype", "model", "source", "quality")},
        "files": sorted(files),
        "sha256": {name: owned.sha256_bytes(data) for name, data in sorted(files.items())},
    }
    return (json.dumps(record, indent=1, ensure_ascii=False, allow_nan=False) + "\n").encode()


def resolved(path: Path) -> Path:
    """`path` with `.` and `..` resolved (temporary names are derived from the last part, which
    must be a real name), refused in one line where it is the current folder or holds it."""
    if path.name not in ("", ".", "..") and ".." not in path.parts:
        return path
    real, here = path.resolve(), Path.cwd().resolve()
    if real == here or real in here.parents:
        raise InputError(
            f"{path}: is the current folder or holds it; name a folder inside it with -o"
        )
    return real


def _record(path: Path) -> dict | None:
    try:
        record = json.loads((path / MARKER).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("kind") == KIND else None


def is_export(path: Path) -> bool:
    """Whether `path` holds an earlier charrnn export (a folder with its marker, or a page)."""
    try:
        if path.is_dir() and not path.is_symlink():
            return _record(path) is not None
        if path.is_file() and not path.is_symlink() and path.suffix == ".html":
            with path.open("rb") as f:
                return PAGE_MARK in f.read(4096)
    except OSError:
        return False
    return False


def _not_own(path: Path) -> str | None:
    """Why --overwrite may not replace the earlier export at `path` (None: it may): a file that is
    not the export's own, or one changed since the export wrote it."""
    if path.is_file():
        if owned.page_changed(path.read_bytes()):
            return f"{path}: changed since the export wrote it"
        return None
    record = _record(path) or {}
    names = record.get("files")
    digests = record.get("sha256")
    own: dict[str, str | None] = (
        {n: None for n in names if isinstance(n, str)} if isinstance(names, list) else {}
    )
    if isinstance(digests, dict):
        own.update({n: d for n, d in digests.items() if isinstance(n, str) and isinstance(d, str)})
    own[MARKER] = None
    found = owned.intruder(path, own)
    return None if found is None else f"{path}: {found.reason('export')}"


def check(path: Path, overwrite: bool, single_file: bool) -> bool:
    """May an export be written at `path`? True when it replaces an earlier one; a one-line
    InputError when the path holds something else, an earlier export without --overwrite, or an
    earlier export holding a file that is not its own or was changed since."""
    if path.is_symlink() or (path.exists() and not (path.is_dir() and not any(path.iterdir()))):
        if not is_export(path):
            what = "a folder" if path.is_dir() else "a file"
            raise InputError(
                f"{path}: holds {what} that is not a charrnn export; choose another path with -o"
            )
        if not overwrite:
            raise InputError(f"{path}: holds an earlier export; pass --overwrite to replace it")
        why = _not_own(path)
        if why is not None:
            raise InputError(
                f"{why}; --overwrite removes only an export's own, unedited files: "
                "move it, or choose another path with -o"
            )
        return True
    if single_file and path.suffix != ".html":
        raise InputError(f"{path}: a single-file export is an .html file; name it *.html")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"{path}: cannot write (not a directory: {parent})")
    if not os.access(parent, os.W_OK):
        raise InputError(f"{path}: cannot write here (permission denied)")
    return False


def stamped(page: bytes) -> bytes:
    """A single-file page carrying the sha256 of itself, so --overwrite can tell an edit."""
    return owned.stamp(page, PAGE_MARK)


def write(path: Path, files: dict[str, bytes], single_file: bool) -> None:
    """Write the export under a temp name beside `path`, then swap it into place (the earlier
    export, already checked to be the export's own, is removed once the new one stands)."""
    tmp = atomic.temp_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.remove(tmp)
        if single_file:
            tmp.write_bytes(files[""])
        else:
            tmp.mkdir()
            for rel, data in files.items():
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)  # hub: web/…
                (tmp / rel).write_bytes(data)
        atomic.swap_into_place(tmp, path)
    except OSError as e:
        atomic.remove(tmp)
        raise InputError(f"{path}: cannot write ({e.strerror or e})") from None
