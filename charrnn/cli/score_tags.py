"""`charrnn score --by-tag`: which voice of a voiced model a text (or each line) reads most like, as
nats/char under each voice and the probability of each voice given the text. The figures are the
command's result: stdout (a table, TSV with --lines, JSON Lines with --json).

It does not compute anything (`Scorer.by_tag`) nor parse flags (`score`)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

from charrnn import strict_json
from charrnn.errors import InputError


def check(several_models: bool, per_char: bool, adapt: bool) -> None:
    """--by-tag's refusals: one model's voices, whole texts or lines."""
    if several_models:
        raise InputError("--by-tag compares one model's voices; give one checkpoint")
    if per_char:
        raise InputError("--by-tag scores texts or lines; it does not combine with --per-char")
    if adapt:
        raise InputError("--by-tag does not combine with --adapt")


def by_tag(
    scorer, ckpt: Path, texts: dict[str, str], lines: bool, as_json: bool, prior: str
) -> None:
    """Score every text (or every non-empty line) under each voice and write the figures."""
    from charrnn.cli.score import _note_unknown

    if scorer.voices is not None:
        scorer.voices.priors(prior)  # a prior the checkpoint cannot give is refused first
    for name, text in texts.items():
        if lines:
            items = [line for line in text.splitlines() if line.strip()]
            results = scorer.by_tag_lines(items, prior=prior)
            _write_lines(items, results, as_json, prior)
            continue
        result = scorer.by_tag(text, prior=prior)
        _note_unknown(name, result.scores[0].unknown)
        if as_json:
            row = {"checkpoint": str(ckpt), "file": name, "prior": prior, **result.to_json()}
            sys.stdout.write(strict_json.dumps(strict_json.record(row), ensure_ascii=False) + "\n")
        else:
            _table("stdin" if name == "-" else name, result)


def _num(v: float, fmt: str) -> str:
    return "—" if math.isnan(v) else format(v, fmt)


def _table(name: str, result) -> None:
    """A row per voice, most probable first: nats/char, bpc and the voice's probability."""
    probs = result.probabilities
    order = sorted(range(len(result.names)), key=lambda v: -probs[v])
    head = ["file", "voice", "nats/char", "bpc", "probability"]
    body = [
        [
            name if k == 0 else "",
            result.names[v],
            _num(result.scores[v].nats_per_char, ".4f"),
            _num(result.scores[v].bpc, ".4f"),
            f"{probs[v]:.4f}",
        ]
        for k, v in enumerate(order)
    ]
    widths = [max(len(x) for x in col) for col in zip(head, *body, strict=True)]
    for cells in [head, *body]:
        parts = [
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        sys.stdout.write("  ".join(parts).rstrip() + "\n")


def _write_lines(items: list[str], results: list, as_json: bool, prior: str) -> None:
    """Per line: JSON Lines, or TSV (a header, then the most probable voice, its probability,
    nats/char under each voice and the line)."""
    if as_json:
        for line, r in zip(items, results, strict=True):
            row = {"line": line, "prior": prior, **r.to_json()}
            sys.stdout.write(strict_json.dumps(strict_json.record(row), ensure_ascii=False) + "\n")
        return
    if results:
        sys.stdout.write("\t".join(["voice", "probability", *results[0].names, "line"]) + "\n")
    for line, r in zip(items, results, strict=True):
        p = float(r.probabilities.max())
        npc = [_num(s.nats_per_char, ".4f").replace("—", "nan") for s in r.scores]
        sys.stdout.write("\t".join([r.best, f"{p:.4f}", *npc, line]) + "\n")
