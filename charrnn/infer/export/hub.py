"""`--format hub` and `--format space`: a folder that uploads to the Hugging Face Hub as it is.

A model folder holds `model.safetensors` (a sampling checkpoint: the weights sampling uses, no
optimizer moments, no carried state, no path of this machine), `config.json` (the model's numbers,
vocabulary and a training summary; the file `hf:` loading reads first to tell a charrnn model from
any other), `README.md` (the model card, `card.py`) and `web/` (the page of `--format web`). A
Space folder holds the page at its top with a `README.md` whose front matter says `sdk: static`.

It uploads nothing (`hf upload` does, docs/sharing.md) and prints nothing; it builds bytes that
`export` writes through `target` (whose export.json records every file's sha256, so an edited card
is never replaced by `--overwrite`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from charrnn import __version__, checkpoint, strict_json
from charrnn.errors import InputError, install_hint
from charrnn.hub import FORMAT
from charrnn.infer.export.quality import EvalText

WEIGHTS, CONFIG, CARD, WEB = "model.safetensors", "config.json", "README.md", "web/"


@dataclass(frozen=True)
class HubOptions:
    """What the card says that the checkpoint cannot know (each None: the card says unknown)."""

    license: str | None = None  # an SPDX id, or a Hub licence id ("other", ...)
    language: tuple[str, ...] = ()
    dataset: str | None = None  # a Hub dataset id, OWNER/NAME
    text_source: str | None = None
    text_license: str | None = None
    samples: bool = True
    web: bool = True


def check(options: HubOptions) -> None:
    """One-line refusals for options the Hub would reject, before anything is computed."""
    if options.dataset is not None and options.dataset.count("/") != 1:
        raise InputError(
            f"--dataset {options.dataset!r}: give a Hub dataset id, OWNER/NAME "
            "(name the text itself with --text-source)"
        )
    for code in options.language:
        if not code or " " in code:
            raise InputError(f"--language {code!r}: give a language code such as en")


def public_text(text: EvalText, header: checkpoint.Header) -> EvalText:
    """The cost's text named without a path of this machine (the folder is published)."""
    if text.text is None:
        return EvalText(None, "the training text was not at hand when exporting")
    name = (header.meta.get("corpus") or {}).get("name") or "the training text"
    if text.source.startswith("the validation split of "):
        return EvalText(text.text, f"the validation split of {name}")
    return EvalText(text.text, Path(text.source).name)


def sampling_checkpoint(header: checkpoint.Header, tensors: dict[str, np.ndarray]) -> bytes:
    """A checkpoint holding only `tensors` (the sampling weights) as `model.*`: every command
    loads it, `train --init-from` starts from it, `--resume` refuses it (no optimizer state). The
    corpus's and the base model's names and hashes stay; their local paths go."""
    from safetensors.numpy import save

    meta = dict(header.meta)
    meta["corpus"] = {k: v for k, v in (meta.get("corpus") or {}).items() if k != "path"}
    if isinstance(meta.get("init_from"), dict):
        meta["init_from"] = {k: v for k, v in meta["init_from"].items() if k != "path"}
    used = "average" if checkpoint.sampling_prefix(header) == checkpoint.AVERAGE else "raw"
    # the one weight set is `model.*` now, so sampling reads it as raw; the state says what it was
    meta["state"] = {**meta["state"], "weights": "raw", "sampling_weights": used}
    meta["optim"] = {}
    fields = {"charrnn.format": str(header.format_version)}
    fields |= {k: json.dumps(v, ensure_ascii=True) for k, v in meta.items()}
    arrays = {f"model.{k}": np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}
    return save(arrays, metadata=fields)


def config(header: checkpoint.Header) -> dict:
    """config.json: what the model is and how it was trained, readable without charrnn."""
    info = checkpoint.summarize(header)
    t, corpus = info["training"], header.meta.get("corpus") or {}
    voices = (header.meta.get("voices") or {}).get("names")
    out = {
        "library_name": "charrnn",
        "charrnn": {"format": FORMAT, "version": __version__, "weights": WEIGHTS},
        "model": info["model"],
        "vocab": list(header.meta["vocab"]),
        "training": {
            "corpus": {k: corpus.get(k) for k in ("name", "chars", "sha256", "splits")},
            "steps": t["steps"],
            "epochs": t["epochs"],
            "best_val_loss": _finite(t["best_val_loss"]),
            "best_val_bpc": _finite(t["best_val_bpc"]),
            "device": t["device"],
            "precision": t["precision"],
            "elapsed_seconds": t["elapsed_seconds"],
            "charrnn": header.meta["versions"].get("charrnn"),
        },
    }
    if voices:  # a voiced model: its voices, in voice-id order (`--tag NAME`)
        out["voices"] = list(voices)
    return out


def _finite(x: object) -> float | None:
    return x if isinstance(x, int | float) and math.isfinite(x) else None


def json_bytes(obj: object) -> bytes:
    """Strict JSON (a non-finite figure is refused, never written as a bare NaN)."""
    return (strict_json.dumps(obj, indent=1, ensure_ascii=False) + "\n").encode()


def files(
    fmt: str,
    header: checkpoint.Header,
    tensors: dict[str, np.ndarray],
    name: str,
    options: HubOptions,
    web_files: dict[str, bytes] | None,
    quality: dict | None,
) -> dict[str, bytes]:
    """Relative path → contents of a hub folder (`fmt` "hub") or a static Space ("space")."""
    from charrnn.infer.export import card

    if fmt == "space":
        assert web_files is not None
        return {**web_files, CARD: card.space_readme(name, header, options).encode()}
    weights = sampling_checkpoint(header, tensors)
    written = card.samples(header, weights) if options.samples else []
    out = {
        WEIGHTS: weights,
        CONFIG: json_bytes(config(header)),
        CARD: card.card(header, name, options, written, quality).encode(),
    }
    out |= {WEB + rel: data for rel, data in (web_files or {}).items()}
    return out


def require() -> None:
    """The hub extra, or a one-line InputError saying how to get it."""
    try:
        import huggingface_hub  # noqa: F401
    except ImportError:
        raise InputError(
            f"--format hub and hf: models need huggingface_hub: {install_hint('hub')}"
        ) from None
