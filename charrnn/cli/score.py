"""`charrnn score`: how probable a text is under a model (nats/char, bpc, perplexity), per file, per
line or per character, under one or several models. The figures are the command's result: stdout."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Annotated, Literal

import typer

from charrnn import strict_json
from charrnn.cli.common import find_checkpoint, local, quiet_pipe, read_text, utf8_stdout
from charrnn.cli.console import console
from charrnn.errors import InputError

OUTPUT = "Output"


def score(
    paths: Annotated[
        list[str] | None,
        typer.Argument(
            help="CHECKPOINT [FILE ...]: the checkpoint, then the texts (none or -: stdin). "
            "With --model, every argument is a text.",
            show_default=False,
        ),
    ] = None,
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            help="Score with this checkpoint (repeatable: a row per model, best first).",
        ),
    ] = None,
    per_char: Annotated[
        bool,
        typer.Option(
            "--per-char",
            help="JSON Lines, one record per character: i, char, nats, top.",
            rich_help_panel=OUTPUT,
        ),
    ] = False,
    top_k: Annotated[
        int, typer.Option(min=0, help="--per-char: the k most likely characters listed in top.")
    ] = 5,
    lines: Annotated[
        bool,
        typer.Option(
            "--lines",
            help="Score every non-empty line on its own: TSV of nats/char and the line.",
            rich_help_panel=OUTPUT,
        ),
    ] = False,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json", help="JSON Lines: one object per (checkpoint, file).", rich_help_panel=OUTPUT
        ),
    ] = False,
    unknown: Annotated[
        Literal["skip", "error"],
        typer.Option(help="Characters the model has never seen: skip and count them, or refuse."),
    ] = "skip",
    adapt: Annotated[
        bool,
        typer.Option(
            "--adapt",
            help="Also dynamic evaluation: the model keeps learning as it reads (a separate figure; "
            "uses torch; the checkpoint is not changed).",
        ),
    ] = False,
    by_tag: Annotated[
        bool,
        typer.Option(
            "--by-tag",
            help="A voiced model: nats/char under each voice and the probability of each voice "
            "(which voice wrote this); with --lines, per line.",
        ),
    ] = False,
    prior: Annotated[
        Literal["uniform", "corpus"],
        typer.Option(
            help="--by-tag: the voices' prior, uniform or their shares of the training text."
        ),
    ] = "uniform",
    threads: Annotated[
        int | None, typer.Option(min=1, help="CPU threads \\[default: every core].")
    ] = None,
) -> None:
    """Score text under a model: nats/char, bits/char and perplexity, read as one stream."""
    from charrnn.infer.numpy_engine import Engine
    from charrnn.infer.score import Scorer

    args = list(paths or [])
    if model:
        checkpoints, files = [local(m) for m in model], args
    else:
        checkpoints, files = [find_checkpoint(args[0] if args else None)], args[1:]
    files = files or ["-"]
    if files.count("-") > 1:
        raise InputError("stdin (-) can be read only once")
    if by_tag:
        from charrnn.cli import score_tags

        score_tags.check(len(checkpoints) > 1, per_char, adapt)
    elif sum((per_char, lines, as_json)) > 1:
        raise InputError("--per-char, --lines and --json are different outputs; choose one")
    if lines and adapt:
        raise InputError("--adapt scores whole texts; it does not combine with --lines")
    texts = {f: read_text(f) for f in files}  # every file read (and refused) before any output
    utf8_stdout()
    rows: list[dict] = []
    with quiet_pipe():
        for ckpt in checkpoints:
            scorer = Scorer(Engine.load(ckpt, threads or 0))
            if unknown == "error":
                for text in texts.values():
                    scorer.known(text, "error")
            if by_tag:
                score_tags.by_tag(scorer, ckpt, texts, lines, as_json, prior)
                continue
            for name, text in texts.items():
                tags = {"checkpoint": str(ckpt)} if len(checkpoints) > 1 else {}
                if len(files) > 1:
                    tags["file"] = name
                if per_char:
                    _per_char(scorer, text, top_k, tags, name)
                elif lines:
                    _lines(scorer, text)
                else:
                    rows.append(_whole(scorer, ckpt, name, text, adapt))
        if rows:
            _report(rows, as_json, len(checkpoints) > 1)


def _whole(scorer, ckpt: Path, name: str, text: str, adapt: bool) -> dict:
    result = scorer.score(text)
    _note_unknown(name, result.unknown)
    row = {"checkpoint": str(ckpt), "file": name, **result.to_json()}
    row["unknown_chars"] = dict(result.unknown)
    if adapt:
        from charrnn.infer.adapt import dynamic_nats

        _, ids, _ = scorer.known(text)
        nats = dynamic_nats(scorer.engine.header, ids, scorer.start_id, scorer.unigram)
        per = nats / len(ids) if len(ids) else math.nan
        row["adapt_nats_per_char"] = None if math.isnan(per) else round(per, 6)
        row["adapt_bpc"] = None if math.isnan(per) else round(per / math.log(2), 6)
    row["_nats"] = result.nats
    return row


def _note_unknown(name: str, skipped) -> None:
    name = "stdin" if name == "-" else name
    if skipped:
        shown = ", ".join(f"{c!r} ×{n}" for c, n in skipped.most_common(10))
        more = f" and {len(skipped) - 10} more" if len(skipped) > 10 else ""
        console.print(
            f"note: {name}: skipped {sum(skipped.values())} character(s) the model has never seen: "
            f"{shown}{more}",
            highlight=False,
            markup=False,
        )


def _per_char(scorer, text: str, k: int, tags: dict, name: str) -> None:
    """Stream one record per scored character (see Scorer.records)."""
    positions, ids, skipped = scorer.known(text)
    _note_unknown(name, skipped)
    for records in scorer.records(positions, ids, k):
        lines = (strict_json.record({**tags, **r}) for r in records)
        sys.stdout.write("\n".join(strict_json.dumps(x, ensure_ascii=False) for x in lines))
        sys.stdout.write("\n")
        sys.stdout.flush()


def _lines(scorer, text: str) -> None:
    items = [line for line in text.splitlines() if line.strip()]
    for line, s in zip(items, scorer.score_lines(items), strict=True):
        value = "nan" if not s.chars else f"{s.nats_per_char:.4f}"
        sys.stdout.write(f"{value}\t{line}\n")


def _report(rows: list[dict], as_json: bool, several_models: bool) -> None:
    """JSON Lines, or a table: a row per (model, file), and a total per model with several files;
    with several models, each text's rows ranked best first."""
    if as_json:
        for r in rows:
            row = {k: v for k, v in r.items() if k != "_nats"}
            sys.stdout.write(strict_json.dumps(strict_json.record(row)) + "\n")
        return
    files = list(dict.fromkeys(r["file"] for r in rows))
    table = []
    for ckpt in dict.fromkeys(r["checkpoint"] for r in rows):
        mine = [r for r in rows if r["checkpoint"] == ckpt]
        table += mine
        if len(files) > 1:
            table.append(_total(mine))
    if several_models:  # per text, the models ranked best first; totals last
        order = {f: i for i, f in enumerate([*files, "total"])}
        table.sort(
            key=lambda r: (
                order[r["file"]],
                math.isnan(r["nats_per_char"] or math.nan),
                r["nats_per_char"] or 0.0,
            )
        )
    adapt = any("adapt_bpc" in r for r in rows)
    head = (["model"] if several_models else []) + ["file", "chars", "unknown", "nats/char", "bpc"]
    head += ["perplexity"] + (["adapt nats/char", "adapt bpc"] if adapt else [])
    body = [_cells(r, several_models, adapt) for r in table]
    widths = [max(len(x) for x in col) for col in zip(head, *body, strict=True)]
    for cells in [head, *body]:
        parts = [
            c.ljust(w) if i < (2 if several_models else 1) else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        sys.stdout.write("  ".join(parts).rstrip() + "\n")


def _total(rows: list[dict]) -> dict:
    chars = sum(r["chars"] for r in rows)
    nats = sum(r["_nats"] for r in rows)
    total = {"checkpoint": rows[0]["checkpoint"], "file": "total", "chars": chars}
    total["unknown"] = sum(r["unknown"] for r in rows)
    if not chars:  # null, as each file's row has it, and why
        none = {"nats_per_char": None, "bpc": None, "perplexity": None}
        return total | none | {"reason": "no character of the texts is in the model's vocabulary"}
    per = nats / chars
    return total | {"nats_per_char": per, "bpc": per / math.log(2), "perplexity": math.exp(per)}


def _cells(r: dict, several_models: bool, adapt: bool) -> list[str]:
    def num(v, fmt: str) -> str:
        return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)

    name = Path(r["checkpoint"]).parent.name or r["checkpoint"]
    file = "stdin" if r["file"] == "-" else r["file"]
    cells = ([name] if several_models else []) + [file, f"{r['chars']:,}", f"{r['unknown']:,}"]
    cells += [num(r["nats_per_char"], ".4f"), num(r["bpc"], ".4f"), num(r["perplexity"], ".3f")]
    if adapt:
        cells += [num(r.get("adapt_nats_per_char"), ".4f"), num(r.get("adapt_bpc"), ".4f")]
    return cells
