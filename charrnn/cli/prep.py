"""`charrnn prep`: encode text into a dataset directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from charrnn.cli.common import print_json
from charrnn.cli.console import console


def prep(
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="Text files, directories (recursive), or - for stdin.", show_default=False
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Dataset directory \\[default: data/<name>].", show_default=False
        ),
    ] = None,
    val_frac: Annotated[
        float, typer.Option(help="Fraction of the text, at its end, for validation.")
    ] = 0.1,
    test_frac: Annotated[
        float, typer.Option(help="Fraction for a test split, after validation.")
    ] = 0.0,
    errors: Annotated[
        Literal["strict", "replace"],
        typer.Option(help="Invalid UTF-8: stop (strict) or substitute U+FFFD."),
    ] = "strict",
    glob: Annotated[
        str | None,
        typer.Option(help="In directories, read only files matching this pattern, e.g. '*.py'."),
    ] = None,
    tags_from: Annotated[
        Literal["dir", "file"] | None,
        typer.Option(
            help="Labelled text: each subfolder of an input folder is a voice (dir), or each "
            "file's name without its extension (file).",
            show_default=False,
        ),
    ] = None,
    jsonl: Annotated[
        bool, typer.Option("--jsonl", help="Inputs are JSON Lines: one document per record.")
    ] = False,
    text_key: Annotated[
        str, typer.Option(help="With --jsonl: the key that holds a record's text.")
    ] = "text",
    tag_key: Annotated[
        str | None,
        typer.Option(
            help="With --jsonl: the key that names a record's voice (without it the records "
            "are unlabelled).",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the dataset summary as JSON on stdout.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors on stderr.")] = False,
) -> None:
    """Encode text into a dataset directory (meta.json + id arrays) that [bold]train[/] memory-maps."""
    from charrnn.data.prep import corpus_name
    from charrnn.data.prep import prep as run_prep
    from charrnn.data.voices import TagOptions

    tags = TagOptions(tags_from, jsonl, text_key, tag_key)
    target = out or Path("data") / corpus_name(inputs)
    result = run_prep(
        inputs, target, val_frac=val_frac, test_frac=test_frac, errors=errors, glob=glob, tags=tags
    )
    meta = result.meta
    for note in result.notes:
        console.print(f"warning: {note}", highlight=False, markup=False)
    if as_json:
        print_json(
            {k: v for k, v in meta.items() if k not in ("vocab", "counts")} | {"path": str(target)}
        )
    if quiet:
        return
    for path in result.skipped:
        console.print(f"[yellow]skipped binary file[/] {path}", highlight=False)
    from charrnn.vocab import Vocab

    rare = Vocab.from_json(meta["vocab"], meta["counts"]).rarest(5)
    s = meta["splits"]
    console.print(
        f"wrote {target}: {meta['chars']:,} chars from {len(meta['sources'])} file(s), vocab {len(meta['vocab'])}"
        f" ({meta['dtype']})\nsplits: train {s['train']:,}, val {s['val']:,}, test {s['test']:,}\n"
        f"rarest: " + ", ".join(f"{c!r}×{n}" for c, n in rare),
        highlight=False,
        markup=False,
    )
    if "voices" in meta:
        v = meta["voices"]
        sizes = ", ".join(
            f"{n} {sum(v['chars'][s][i] for s in v['chars']):,}" for i, n in enumerate(v["names"])
        )
        console.print(f"voices ({v['mode']}): {sizes}", highlight=False, markup=False)
