"""`charrnn viz`: one self-contained HTML page showing how a model reads a text (surprisal, its five
best guesses, chosen units), or with `--lstmvis DIR` the files LSTMVis reads. A thin shell over
`charrnn.viz`; one line on stderr says what was written. No torch."""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Literal

import typer

from charrnn import atomic, owned
from charrnn.cli.common import CheckpointArg, find_checkpoint, read_text, size_text
from charrnn.cli.console import console
from charrnn.errors import CharRNNError, InputError

MAX_CHARS = 5_000


def viz(
    checkpoint: CheckpointArg = None,
    file: Annotated[
        str | None,
        typer.Argument(
            help="UTF-8 text to read; - reads stdin \\[default: the checkpoint's validation text].",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        str | None,
        typer.Option(
            "--output", "-o", help="Where the page goes; - writes it to stdout \\[viz.html]."
        ),
    ] = None,
    max_chars: Annotated[
        int, typer.Option(min=1, help="Read at most this many characters of the text.")
    ] = MAX_CHARS,
    units: Annotated[
        str | None,
        typer.Option(
            help="Also carry these units, e.g. h1:283,c2:17 (h hidden state, c LSTM cell state; "
            "layers from 1, units from 0).",
        ),
    ] = None,
    lstmvis: Annotated[
        str | None,
        typer.Option(
            "--lstmvis",
            metavar="DIR",
            help="Instead of a page, write LSTMVis's files (every unit) into DIR; needs h5py.",
        ),
    ] = None,
    unknown: Annotated[
        Literal["skip", "error"],
        typer.Option(help="Characters the model does not know: skip them, or refuse the text."),
    ] = "skip",
    tag: Annotated[
        list[str] | None,
        typer.Option(
            "--tag",
            metavar="NAME[=W]",
            help="A voiced model: read the text in this voice (repeat for a mix) \\[no voice].",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Show how a model reads a text: one offline HTML page of surprisal, guesses and units."""
    if lstmvis is not None and (output is not None or units is not None):
        raise InputError("--lstmvis writes every unit into DIR; leave out -o and --units")
    path = find_checkpoint(checkpoint)
    from charrnn.infer.numpy_engine import Engine
    from charrnn.infer.voices import Voices, parse_tags, resolve

    started = time.perf_counter()
    engine = Engine.load(path)
    header = engine.header
    assert header is not None
    voice = resolve(Voices.of(engine), parse_tags(tag) if tag else None)
    text, source, total = _text(file, max_chars, header)
    if voice is not None:
        source += f", in voice {' + '.join(tag or ())}"
    name = path.resolve().parent.name or path.stem
    if lstmvis is not None:
        from charrnn.viz.lstmvis import export

        cfg = engine.cfg
        what = f"{cfg.cell.upper()} {cfg.layers}×{cfg.hidden} reading {source}"
        done = export(
            engine, text, lstmvis, name=name, description=what, unknown=unknown, voice=voice
        )
        console.print(
            f"wrote LSTMVis files to {done.directory} ({size_text(done.bytes)}): {done.chars:,} "
            f"characters × {done.units:,} units in {time.perf_counter() - started:.1f} s",
            highlight=False,
            markup=False,
        )
        return
    from charrnn.viz import Layout, build_page

    layout = Layout(engine.layers, engine.hidden, engine.cell == "lstm")
    named = layout.parse(units) if units else []
    page = build_page(
        engine,
        text,
        name=name,
        source=source,
        source_chars=total,
        named=named,
        unknown=unknown,
        voice=voice,
    )
    target = output or "viz.html"
    _write(page.html, target)
    bpc = page.reading.bpc
    console.print(
        f"wrote {'the page to stdout' if target == '-' else target} ({size_text(page.size)}): "
        f"{len(text):,} characters, {'no' if math.isnan(bpc) else f'{bpc:.3f}'} bpc, "
        f"{page.units} units, in {time.perf_counter() - started:.1f} s",
        highlight=False,
        markup=False,
    )


def _text(file: str | None, max_chars: int, header) -> tuple[str, str, int]:
    """(the text's first max_chars characters, a name for it, its full length)."""
    if file is None:
        return _validation_text(header, max_chars)
    text = read_text(file)
    source = "stdin" if file == "-" else Path(file).name
    if not text:
        raise InputError(f"{source}: the text is empty")
    return text[:max_chars], source, len(text)


def _validation_text(header, max_chars: int) -> tuple[str, str, int]:
    """The validation split of the dataset the checkpoint was trained on, if it is still there and
    holds the same corpus: text the model has not trained on."""
    from charrnn.data.dataset import recorded_dataset

    ds, why = recorded_dataset(header.meta.get("corpus"))
    val = ds.split("val") if ds is not None else []
    if len(val):
        text = ds.vocab.decode(int(i) for i in val[:max_chars])
        return text, f"{ds.name} validation text", len(val)
    raise InputError(
        "no FILE given and the checkpoint's validation text was not found "
        f"({why or 'its validation split is empty'}); pass a text file, or - for stdin"
    )


VIZ_MARK = b'<meta name="generator" content="charrnn viz">'


def _write(html: str, target: str) -> None:
    if target == "-":
        try:
            out = sys.stdout
            if out.encoding.lower().replace("-", "") != "utf8":
                out.reconfigure(encoding="utf-8")
            out.write(html)
            out.flush()
        except BrokenPipeError:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(0) from None
        return
    why = owned.page_obstacle(Path(target), VIZ_MARK, "viz")
    if why is not None:
        raise InputError(
            f"{target}: {why}; viz replaces only an earlier page of its own, unedited: "
            "choose another -o"
        )
    try:
        atomic.write_text(target, owned.stamp(html.encode(), VIZ_MARK).decode())
    except OSError as e:
        bad_path = isinstance(e, FileNotFoundError | NotADirectoryError | IsADirectoryError)
        error = InputError if bad_path else CharRNNError
        raise error(f"cannot write {target}: {e.strerror or e}") from None
