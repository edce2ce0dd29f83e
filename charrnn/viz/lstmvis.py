"""Export a model's reading of a text for LSTMVis (Strobelt et al., lstm.seas.harvard.edu): the four
files its server reads from a project directory, with every unit of every layer.

- `states.hdf5`: per layer l (from 1), `output{l}` the hidden state h and, for an LSTM, `states{l}`
  the cell state c, each float32 (characters × hidden), the state right after reading each character
  (LSTMVis's own extraction script names them so). A GRU's or tanh RNN's only state is h: it goes
  under `states{l}`.
- `train.hdf5`: `word_ids`, int32 (characters,), the id of each character read.
- `train.dict`: one "token id" line per vocabulary character, id = vocabulary index + 1 (ids start
  at 1 as in LSTMVis's own tools). LSTMVis splits these lines on whitespace, so a space is written as
  the line " id" (which it reads as the space token), a newline as ↵, other control characters as
  their Unicode control pictures (␉ for a tab), and any other whitespace or invisible character
  as <U+XXXX>.
- `lstm.yml`: the project config naming the files and state datasets. h is declared with
  `transform: none` (it already lies in [-1, 1]); c keeps LSTMVis's default squashing into [-1, 1].

Characters the model does not know are skipped, as everywhere else: the files hold the characters it
read. States are written chunk by chunk, so a long text needs no more memory than a short one. h5py
is an optional dependency (the `lstmvis` extra); this module imports it only when asked
to write.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from charrnn import atomic, owned
from charrnn.errors import CharRNNError, InputError, install_hint
from charrnn.infer.numpy_engine import Engine
from charrnn.infer.score import Scorer
from charrnn.vocab import Unknown

FILES = ("states.hdf5", "train.hdf5", "train.dict", "lstm.yml")
RECORD = "charrnn.json"  # each file's sha256, so a later export replaces only its own, unedited


def _h5py() -> Any:
    try:
        import h5py
    except ImportError:
        raise CharRNNError(
            f"--lstmvis writes HDF5 files and needs h5py: {install_hint('lstmvis')}"
        ) from None
    return h5py


def token(ch: str) -> str:
    """How a character is written in train.dict (see the module docstring)."""
    if ch == " ":
        return " "
    if ch == "\n":
        return "↵"
    code = ord(ch)
    if code < 0x20:
        return chr(0x2400 + code)
    if code == 0x7F:
        return "␡"
    if ch.isspace() or not ch.isprintable():
        return f"<U+{code:04X}>"
    return ch


def dict_lines(chars: tuple[str, ...]) -> list[str]:
    """train.dict's lines. A token that clashes with a real character of the vocabulary (a corpus
    that holds ↵ itself) falls back to its <U+XXXX> form so that every token stays unique."""
    real = set(chars)
    lines = []
    for i, ch in enumerate(chars):
        tok = token(ch)
        if tok != ch and tok in real:
            tok = f"<U+{ord(ch):04X}>"
        lines.append(f"{tok} {i + 1}" if tok != " " else f" {i + 1}")
    return lines


@dataclass(frozen=True)
class StateSet:
    """One dataset of states.hdf5: its name, LSTMVis type, layer (from 1) and what it holds."""

    path: str
    kind: str  # LSTMVis: "state" or "output"
    layer: int
    cells: bool  # the LSTM cell state c, else the hidden state h


def state_sets(cell: str, layers: int) -> list[StateSet]:
    out = []
    for layer in range(1, layers + 1):
        if cell == "lstm":
            out.append(StateSet(f"output{layer}", "output", layer, False))
            out.append(StateSet(f"states{layer}", "state", layer, True))
        else:
            out.append(StateSet(f"states{layer}", "state", layer, False))
    return out


def config_yml(name: str, description: str, sets: list[StateSet]) -> str:
    """lstm.yml: plain block YAML; strings are JSON-quoted (a JSON string is a YAML one)."""
    types = []
    for s in sets:
        extra = "" if s.cells else ", transform: none"
        types.append(f"    - {{type: {s.kind}, layer: {s.layer}, path: {s.path}{extra}}}")
    return "\n".join(
        [
            "# Written by charrnn viz --lstmvis. Start LSTMVis with: python lstm_server.py -dir PARENT",
            f"name: {json.dumps(name, ensure_ascii=False)}",
            f"description: {json.dumps(description, ensure_ascii=False)}",
            "files:",
            "  states: states.hdf5",
            "  train: train.hdf5",
            "  words: train.dict",
            "word_sequence:",
            "  file: train",
            "  path: word_ids",
            "  dict_file: words",
            "states:",
            "  file: states",
            "  types:",
            *types,
            "",
        ]
    )


@dataclass
class Export:
    directory: Path
    chars: int  # characters read (and written)
    units: int  # state columns written, all datasets together
    bytes: int  # the four files' size


def export(
    engine: Engine,
    text: str,
    directory: str | Path,
    *,
    name: str,
    description: str,
    unknown: Unknown = "skip",
    voice: np.ndarray | None = None,
) -> Export:
    """Read the text with the model and write the LSTMVis project into `directory` (created if
    needed; the four files are replaced where an earlier export wrote them and they are unedited,
    refused otherwise; charrnn.json records their sha256)."""
    h5py = _h5py()
    out = Path(directory)
    if out.exists() and not out.is_dir():
        raise InputError(f"--lstmvis {out}: exists and is not a directory")
    why = owned.record_obstacle(out, FILES, RECORD, "LSTMVis export")
    if why is not None:
        raise InputError(
            f"--lstmvis {out}: {why}; it replaces only the files it wrote, unedited: "
            "move it, or choose another folder"
        )
    out.mkdir(parents=True, exist_ok=True)
    scorer = Scorer(engine)
    positions, ids, _ = scorer.known(text, unknown)
    n, hidden = len(ids), engine.hidden
    sets = state_sets(engine.cell, engine.layers)
    with h5py.File(out / "states.hdf5", "w") as states_file:
        datasets = [states_file.create_dataset(s.path, (n, hidden), dtype="<f4") for s in sets]
        done = 0
        for chunk in scorer.chunks_of_ids(positions, ids, keep_states=True, voice=voice):
            m = len(chunk.ids)
            for s, ds in zip(sets, datasets, strict=True):
                source = chunk.cells if s.cells else chunk.hidden
                ds[done : done + m] = source[s.layer - 1]
            done += m
    with h5py.File(out / "train.hdf5", "w") as train_file:
        train_file.create_dataset("word_ids", data=(ids + 1).astype("<i4"))
    lines = dict_lines(engine.vocab.chars)
    (out / "train.dict").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out / "lstm.yml").write_text(config_yml(name, description, sets), encoding="utf-8")
    digests = {f: owned.sha256_file(out / f) for f in FILES}
    record = {"kind": "charrnn-lstmvis", "sha256": digests}
    atomic.write_text(out / RECORD, json.dumps(record, indent=1) + "\n")
    size = sum((out / f).stat().st_size for f in FILES)
    return Export(out, n, len(sets) * hidden, size)
