"""Where an export goes: refusing a path that holds anything but an earlier export, and writing the
new one beside it before it takes the earlier one's place, so a failure never leaves half of each.

An export folder is recognised by its `export.json` (format `charrnn-export`); a single-file page by
its `<meta name="generator" content="charrnn export">`. It does not decide what goes in the files.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

from charrnn.errors import InputError

MARKER = "export.json"
KIND = "charrnn-export"
PAGE_MARK = b'<meta name="generator" content="charrnn export">'


def marker(meta: dict, fmt: str, names: list[str]) -> bytes:
    """export.json: what was exported (format, dtype, source, the dtype's cost) and its files."""
    record = {
        "kind": KIND,
        "format": fmt,
        **{k: meta[k] for k in ("name", "charrnn", "dtype", "model", "source", "quality")},
        "files": names,
    }
    return (json.dumps(record, indent=1, ensure_ascii=False) + "\n").encode()


def is_export(path: Path) -> bool:
    """Whether `path` holds an earlier charrnn export (a folder with its marker, or a page)."""
    try:
        if path.is_dir():
            record = json.loads((path / MARKER).read_text("utf-8"))
            return isinstance(record, dict) and record.get("kind") == KIND
        if path.is_file() and path.suffix == ".html":
            with path.open("rb") as f:
                return PAGE_MARK in f.read(4096)
    except (OSError, ValueError):
        return False
    return False


def check(path: Path, overwrite: bool, single_file: bool) -> bool:
    """May an export be written at `path`? True when it replaces an earlier one; a one-line
    InputError when the path holds something else, or an earlier export without --overwrite."""
    if path.is_symlink() or (path.exists() and not (path.is_dir() and not any(path.iterdir()))):
        if not is_export(path):
            what = "a folder" if path.is_dir() else "a file"
            raise InputError(
                f"{path}: holds {what} that is not a charrnn export; choose another path with -o"
            )
        if not overwrite:
            raise InputError(f"{path}: holds an earlier export; pass --overwrite to replace it")
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


def write(path: Path, files: dict[str, bytes], single_file: bool) -> None:
    """Write the export under a temp name beside `path`, then move it into place (an earlier
    export is moved aside first and removed once the new one stands)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    old = path.with_name(f".{path.name}.{os.getpid()}.old")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove(tmp)
        if single_file:
            tmp.write_bytes(files[""])
        else:
            tmp.mkdir()
            for rel, data in files.items():
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)  # hub: web/…
                (tmp / rel).write_bytes(data)
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        _remove(old)
    except OSError as e:
        _remove(tmp)
        if old.exists() and not path.exists():
            os.replace(old, path)
        raise InputError(f"{path}: cannot write ({e.strerror or e})") from None


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()
