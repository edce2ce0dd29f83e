"""What the commands share: finding the checkpoint a command should use, JSON on stdout, shell escapes,
and writing generated text to stdout so that a closed pipe ends the program quietly."""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from charrnn import strict_json
from charrnn.cli.console import console
from charrnn.errors import InputError

# The optional positional checkpoint of sample, viz and inspect, resolved by find_checkpoint.
CheckpointArg = Annotated[
    str | None,
    typer.Argument(
        help="Checkpoint, or hf:OWNER/NAME[@REVISION] from the Hugging Face Hub \\[default: "
        "$CHARRNN_CHECKPOINT, else newest runs/**/best.ckpt].",
        show_default=False,
    ),
]


def size_text(n: int) -> str:
    """A file size as the commands report it: MB with two decimals, else whole KB."""
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.0f} KB"


def print_json(obj: object) -> None:
    clean = strict_json.record(obj) if isinstance(obj, dict) else strict_json.finite(obj)[0]
    sys.stdout.write(strict_json.dumps(clean, indent=2, ensure_ascii=False) + "\n")


def local(given: str) -> Path:
    """A checkpoint argument as a local file: `hf:OWNER/NAME[@REVISION]` is fetched (or found in
    the cache) first, saying so on stderr."""
    from charrnn import hub

    if not hub.is_name(given):
        return Path(given)
    path = hub.local(given)
    where = hub.origin(path) or {}
    console.print(
        f"using {given} (commit {where.get('commit', '?')[:12]})", highlight=False, markup=False
    )
    return path


def find_checkpoint(given: str | None) -> Path:
    """The positional path (or hf: name), else $CHARRNN_CHECKPOINT, else the newest best.ckpt
    under ./runs."""
    if given:
        return local(given)
    env = os.environ.get("CHARRNN_CHECKPOINT")
    if env:
        console.print(f"using $CHARRNN_CHECKPOINT: {env}", highlight=False, markup=False)
        return local(env)
    found = [p for p in Path("runs").glob("**/best.ckpt") if p.is_file()]
    if not found:
        raise InputError(
            "no checkpoint given and none found under ./runs; train one with "
            "`charrnn train corpus.txt`, or pass a path"
        )
    newest = max(found, key=lambda p: p.stat().st_mtime)
    console.print(f"using {newest} (the newest under ./runs)", highlight=False, markup=False)
    return newest


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\"}


def unescape(text: str) -> str:
    r"""Let shell users write \n, \t, \r, \0 and \\ in --seed, --separator and --stop."""
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(0)), text, flags=re.S)


@contextlib.contextmanager
def quiet_pipe() -> Iterator[None]:
    """A reader that goes away (e.g. `head`) ends the command quietly with exit 0."""
    try:
        yield
        sys.stdout.flush()
    except BrokenPipeError:
        # Keep Python's exit-time flush of the dead pipe quiet too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(0) from None


def utf8_stdout() -> None:
    if sys.stdout.encoding.lower().replace("-", "") != "utf8":
        sys.stdout.reconfigure(encoding="utf-8")  # type: ignore[union-attr]


def read_text(name: str) -> str:
    """A text file (or stdin for `-`) as UTF-8; a one-line error when it cannot be read."""
    if name == "-":
        data = sys.stdin.buffer.read()
    else:
        try:
            data = Path(name).read_bytes()
        except FileNotFoundError:
            raise InputError(f"{name}: no such file") from None
        except IsADirectoryError:
            raise InputError(f"{name}: is a directory, not a text file") from None
        except OSError as e:
            raise InputError(f"{name}: cannot read ({e.strerror})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{name}: not UTF-8 text (byte {e.start})") from None
