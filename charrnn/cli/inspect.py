"""`charrnn inspect`: what a checkpoint holds, read from its header without torch."""

from __future__ import annotations

from typing import Annotated

import typer

from charrnn.cli.common import CheckpointArg, find_checkpoint, print_json


def inspect(
    checkpoint: CheckpointArg = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object on stdout (keys in docs/formats.md).")
    ] = False,
    vocab: Annotated[
        bool, typer.Option("--vocab", help="Also list every character with its count.")
    ] = False,
) -> None:
    """Show what a checkpoint holds: model, vocabulary, corpus, training and loss curve (no torch needed)."""
    from charrnn import checkpoint as ckpt
    from charrnn.cli.console import render_inspect

    header = ckpt.read_header(find_checkpoint(checkpoint))
    info = ckpt.summarize(header, with_vocab=vocab)
    if as_json:
        print_json(info)
    else:
        from rich.console import Console

        render_inspect(Console(highlight=False), info, show_vocab=vocab)
