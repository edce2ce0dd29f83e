"""What a reduced-precision export costs: nats/char of the stored weights against float32, on the
first 20,000 characters of the checkpoint's own validation text (or a file the user names).

The reduced model is run by the numpy engine on exactly the arrays the target runtime will use
(the web page's dequantized int8 or float16), so the figure is the page's, not an estimate. It does
not run other runtimes (the ONNX export measures its own model in onnxruntime) and never prints.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from charrnn import checkpoint
from charrnn.data.dataset import recorded_dataset
from charrnn.infer.numpy_engine import Engine
from charrnn.infer.score import Scorer
from charrnn.model_config import model_config
from charrnn.vocab import Vocab

EVAL_CHARS = 20_000
WARN_COST = 0.01  # nats/char above which export warns
METHOD = "numpy engine on the exported arrays vs float32, first {n} characters of {source}"


@dataclass(frozen=True)
class EvalText:
    """The text a cost is measured on, and where it came from (None: none was available)."""

    text: str | None
    source: str


def validation_text(header: checkpoint.Header, chars: int = EVAL_CHARS) -> EvalText:
    """The first `chars` characters of the checkpoint's validation split, if its dataset is still
    where training left it and holds the same text."""
    ds, why = recorded_dataset(header.meta.get("corpus"))
    if ds is None:
        return EvalText(None, f"the training data ({why})")
    ids = np.asarray(ds.split("val")[:chars])
    if not len(ids):
        return EvalText(None, f"the training data ({ds.path}: no validation split)")
    return EvalText(ds.vocab.decode(ids.tolist()), f"the validation split of {ds.path}")


def cost(
    header: checkpoint.Header,
    reference: Mapping[str, np.ndarray],
    reduced: Mapping[str, np.ndarray] | Callable[[str], float],
    dtype: str,
    text: EvalText,
) -> dict:
    """The metadata record of a dtype's cost: float32 and reduced nats/char, their difference, the
    characters scored (those the model knows) and how; null figures and the reason where there is
    nothing to score. `reduced` is the reduced arrays (scored here by the numpy engine)
    or a function scoring a text with the target runtime itself."""
    record: dict = {"dtype": dtype, "chars": 0, "f32": None, "nats_per_char": None, "cost": None}
    if text.text is None:
        record["method"] = f"not measured: no text ({text.source})"
        return record
    f32, chars = _score(header, reference, text.text)
    if not chars:  # every character unknown to the model: there is no figure to give
        record["method"] = (
            f"not measured: none of the {len(text.text):,} characters of {text.source} "
            "is in the model's vocabulary"
        )
        return record
    if dtype == "f32" and not callable(reduced):
        mine = f32
    elif callable(reduced):
        mine = reduced(text.text)
    else:
        mine, _ = _score(header, reduced, text.text)
    if not math.isfinite(mine):
        record.update(chars=chars, f32=round(f32, 6))
        record["method"] = f"not measured: the {dtype} model's figure is {mine}"
        return record
    record.update(
        chars=chars,
        f32=round(f32, 6),
        nats_per_char=round(mine, 6),
        cost=round(mine - f32, 6),
        method=METHOD.format(n=f"{chars:,}", source=text.source),
    )
    return record


def _score(
    header: checkpoint.Header, tensors: Mapping[str, np.ndarray], text: str
) -> tuple[float, int]:
    """nats/char over the characters the model knows, and how many those are."""
    cfg = model_config(header)
    vocab = Vocab.from_json(header.meta["vocab"], header.meta["vocab_counts"] or None)
    engine = Engine(cfg, vocab, {"model." + k: v for k, v in tensors.items()}, threads=1)
    try:
        s = Scorer(engine).score(text, "skip")
    finally:
        engine.close()
    return (s.nats_per_char if s.chars else math.nan), s.chars
