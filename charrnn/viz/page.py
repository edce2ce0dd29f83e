"""The `charrnn viz` page: a model reads a text; one self-contained HTML file shows every character
shaded by its surprisal, the model's five best guesses for it, and chosen units' activations.

The page is the package's `assets/page.html` with `viz.css`, `viz.js` and one JSON data blob put
inline, so it works offline, from a file, with no request anywhere. The data is packed to keep a
default page of a 2×512 model under 1 MB: guesses as vocabulary indices and probabilities in units
of 1e-4 (exactly what the page shows, to 4 decimals), the seen character's log-probability as
float32, and each unit's activations as int8 on a per-unit scale, all base64. The reading itself
is `score.Scorer`'s, so the page's figures are those of `charrnn score`. It does not write files or
print: the CLI does.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from importlib import resources

import numpy as np

from charrnn import checkpoint
from charrnn.infer.numpy_engine import Engine
from charrnn.infer.score import Scorer
from charrnn.viz.units import PROPERTIES, Layout, correlations, select_units, text_properties
from charrnn.vocab import Unknown

TOP_K = 5
UNITS = 64  # units picked by their correlation with the text's properties
PROB_SCALE = 10_000  # probabilities are stored as round(p × 1e4): the page shows 4 decimals
NO_VALUE = -128  # int8 code for "no state yet" (before the first character the model knows)


@dataclass
class Reading:
    """What the model did on a text: per character of the text (unknown ones included, with no
    prediction), its guesses, the seen character's log-probability and every unit's state."""

    text: str
    known: np.ndarray  # (n,) bool: whether the model knows (and so read) this character
    seen_logprob: np.ndarray  # (n,) float64, NaN where unknown
    top_ids: np.ndarray  # (n, k) vocabulary indices, best first
    top_probs: np.ndarray  # (n, k) float64
    states: np.ndarray  # (m, units) float32: one row per known character, in Layout order
    layout: Layout
    vocab: tuple[str, ...]
    nats: float
    unknown: Counter

    @property
    def chars(self) -> int:
        return int(self.known.sum())

    @property
    def bpc(self) -> float:
        return self.nats / self.chars / math.log(2) if self.chars else math.nan


def top_k(probs: np.ndarray, k: int) -> np.ndarray:
    """Indices of each row's k most likely entries: by probability descending, ties in vocabulary
    order (a stable sort of -p), as `charrnn score --per-char` lists them."""
    return np.argsort(-probs, axis=1, kind="stable")[:, :k]


def read(
    engine: Engine,
    text: str,
    unknown: Unknown = "skip",
    k: int = TOP_K,
    voice: np.ndarray | None = None,
) -> Reading:
    """Run the model over the text (one stream, as `charrnn score` does; a voiced model in the
    voice mix `voice`, None for none) and keep what the page shows. Memory grows with the text: a
    2×512 LSTM keeps 8 KB of states per character."""
    scorer = Scorer(engine)
    positions, ids, _ = scorer.known(text, unknown)
    n, k = len(text), min(k, engine.vocab.size)
    layout = Layout(engine.layers, engine.hidden, engine.cell == "lstm")
    known = np.zeros(n, dtype=bool)
    seen = np.full(n, np.nan)
    top_ids = np.zeros((n, k), dtype=np.int32)
    top_probs = np.zeros((n, k))
    states: list[np.ndarray] = []
    nats = 0.0
    for chunk in scorer.chunks_of_ids(positions, ids, keep_states=True, voice=voice):
        pos = chunk.positions
        probs = np.exp(chunk.logprobs)
        best = top_k(probs, k)
        known[pos] = True
        seen[pos] = chunk.logprobs[np.arange(len(pos)), chunk.ids]
        top_ids[pos] = best
        top_probs[pos] = np.take_along_axis(probs, best, axis=1)
        nats += float(chunk.nats.sum())
        blocks = []
        for layer in range(engine.layers):
            blocks.append(chunk.hidden[layer])
            if layout.cells:
                blocks.append(chunk.cells[layer])
        states.append(np.concatenate(blocks, axis=1).astype(np.float32))
    all_states = np.concatenate(states) if states else np.zeros((0, layout.size), np.float32)
    skipped = Counter(c for c, ok in zip(text, known, strict=True) if not ok)
    return Reading(
        text, known, seen, top_ids, top_probs, all_states, layout, engine.vocab.chars, nats, skipped
    )


def quantise(series: np.ndarray) -> tuple[np.ndarray, float]:
    """A unit's activations as int8 codes in -127..127 and the scale that maps them back
    (value ≈ code × scale): per unit, because hidden states lie in [-1, 1] while cell states are
    unbounded. 256 levels are finer than the colour scale the page draws them with."""
    peak = float(np.abs(series).max()) if series.size else 0.0
    scale = peak / 127 if peak > 0 else 0.0
    codes = np.zeros(series.shape, dtype=np.int8)
    if scale:
        codes = np.clip(np.rint(series / scale), -127, 127).astype(np.int8)
    return codes, scale


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode("ascii")


def _unit_series(reading: Reading, unit: int) -> tuple[str, float]:
    """One unit over every character of the text, int8-coded: an unknown character carries the
    state of the character before it (the model skipped it, so its state did not change)."""
    codes, scale = quantise(reading.states[:, unit])
    row = np.cumsum(reading.known) - 1  # index of the last known character at each position
    full = np.where(row >= 0, codes[np.maximum(row, 0)], NO_VALUE).astype(np.int8)
    return _b64(full), scale


def page_data(
    reading: Reading, info: dict, named: list[int] | None = None, count: int = UNITS
) -> dict:
    """The JSON blob the page's script reads (its keys are documented in viz.js)."""
    names = list(PROPERTIES)
    props = text_properties(reading.text)
    prop_matrix = np.stack([props[p][reading.known] for p in names], axis=1)
    r = correlations(reading.states, prop_matrix)
    named = named or []
    picks = select_units(r, count, exclude=named)
    units = []
    for unit, group in [(p.unit, names[p.prop]) for p in picks] + [(u, "--units") for u in named]:
        data, scale = _unit_series(reading, unit)
        corr = [None if math.isnan(x) else round(float(x), 3) for x in r[unit]]
        units.append(
            {
                "name": reading.layout.name(unit),
                "group": group,
                "r": corr,
                "scale": scale,
                "q": data,
            }
        )
    vocab = reading.vocab
    return {
        "format": 1,
        "meta": info,
        "text": reading.text,
        "vocab": list(vocab),
        "k": int(reading.top_ids.shape[1]),
        "seen_logprob": _b64(reading.seen_logprob.astype("<f4")),
        "top_ids": _b64(reading.top_ids.astype("<u1" if len(vocab) <= 256 else "<u2")),
        "top_probs": _b64(np.rint(reading.top_probs * PROB_SCALE).astype("<u2")),
        "prob_scale": PROB_SCALE,
        "properties": [
            {"name": p, "about": PROPERTIES[p], "varies": not np.isnan(r[0, i]).all()}
            for i, p in enumerate(names)
        ],
        "units": units,
    }


def model_info(
    engine: Engine, name: str, source: str, reading: Reading, source_chars: int | None = None
) -> dict:
    """The header's facts: the model (name, cell, size), what it was trained on, and this text."""
    assert engine.header is not None, "the engine was loaded from a checkpoint"
    summary = checkpoint.summarize(engine.header)
    model = summary["model"]
    best = summary["training"]["best_val_bpc"]
    return {
        "name": name,
        "cell": model["cell"],
        "layers": model["layers"],
        "hidden": model["hidden"],
        "parameters": model["parameters"],
        "corpus": summary["corpus"].get("name"),
        "best_val_bpc": None if best is None else round(best, 4),
        "source": source,
        "chars": len(reading.text),
        "source_chars": source_chars or len(reading.text),
        "scored": reading.chars,
        "unknown": sum(reading.unknown.values()),
        "bpc": None if math.isnan(reading.bpc) else round(reading.bpc, 4),
    }


def _asset(name: str) -> str:
    return resources.files("charrnn.viz").joinpath("assets", name).read_text(encoding="utf-8")


def render(data: dict) -> str:
    """The page: the HTML template with its style, script and data put inline. The JSON escapes
    every `<` so that nothing in the text (a `</script>` in a corpus of HTML) can end its element."""
    css, js = _asset("viz.css"), _asset("dom.js") + "\n" + _asset("viz.js")
    for what, body, tag in (("viz.css", css, "</style"), ("dom.js + viz.js", js, "</script")):
        if tag in body.lower():
            raise AssertionError(f"{what} must not contain {tag}")
    blob = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    blob = blob.replace("<", "\\u003c")
    parts = {"css": css, "js": js, "data": blob}
    return re.sub(r"\{\{(css|js|data)\}\}", lambda m: parts[m.group(1)], _asset("page.html"))


@dataclass
class Page:
    html: str
    reading: Reading
    units: int

    @property
    def size(self) -> int:
        return len(self.html.encode("utf-8"))


def build_page(
    engine: Engine,
    text: str,
    *,
    name: str,
    source: str,
    source_chars: int | None = None,
    named: list[int] | None = None,
    unknown: Unknown = "skip",
    count: int = UNITS,
    voice: np.ndarray | None = None,
) -> Page:
    """Read the text with the model and return the finished page. `source_chars`: the length of
    the whole text when this is its beginning (the header says so); voice: a voiced model's voice
    weights to read in (None: no voice)."""
    reading = read(engine, text, unknown, voice=voice)
    info = model_info(engine, name, source, reading, source_chars)
    data = page_data(reading, info, named, count)
    return Page(render(data), reading, len(data["units"]))
