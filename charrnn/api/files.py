"""The other calls a notebook needs beside training: `charrnn.prep` with the output directory
optional (as `charrnn prep` chooses it) and `charrnn.export` with keyword names. Thin on purpose:
the work is `data.prep`'s and `infer.export`'s.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal


def prep(
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    out: str | os.PathLike | None = None,
    *,
    val_frac: float | None = 0.1,
    test_frac: float = 0.0,
    errors: Literal["strict", "replace"] = "strict",
    glob: str | None = None,
    tags_from: Literal["dir", "file"] | None = None,
    jsonl: bool = False,
    text_key: str = "text",
    tag_key: str | None = None,
):
    """Encode text files or directories into a dataset directory (`out`, else data/<name> as the
    CLI chooses); returns a `PrepResult` (`out_dir`, `meta`, `skipped`). Labelled text as
    `charrnn prep` reads it: `tags_from` "dir" or "file", or `jsonl` records (`text_key`, and
    `tag_key` naming each record's voice)."""
    from charrnn.data.prep import corpus_name
    from charrnn.data.prep import prep as run_prep
    from charrnn.data.voices import TagOptions

    tags = TagOptions(tags_from, jsonl, text_key, tag_key)

    names = [str(inputs)] if isinstance(inputs, str | os.PathLike) else [str(i) for i in inputs]
    target = Path(out) if out is not None else Path("data") / corpus_name(names)
    return run_prep(
        names, target, val_frac=val_frac, test_frac=test_frac, errors=errors, glob=glob, tags=tags
    )


def export(
    checkpoint: str | os.PathLike,
    format: str = "web",
    out: str | os.PathLike | None = None,
    *,
    dtype: str | None = None,
    single_file: bool = False,
    overwrite: bool = False,
    evaluate: bool = True,
    hub_options=None,
):
    """Export a checkpoint (a file or `hf:OWNER/NAME[@REVISION]`) as `charrnn export` does: "web"
    (a page, no server), "onnx", "ml5", or "hub"/"space" (a Hugging Face folder; `hub_options`, a
    `charrnn.infer.export.hub.HubOptions`, says what the card cannot know); `out` defaults to
    exports/<model>-<format>. Returns what was written (`files`, `quality`)."""
    from charrnn import hub
    from charrnn.infer.export import export as run_export

    return run_export(
        hub.local(checkpoint),
        format,
        out,
        dtype,
        single_file,
        overwrite,
        evaluate=evaluate,
        hub_options=hub_options,
    )
