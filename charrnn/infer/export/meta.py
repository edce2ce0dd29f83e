"""What every export records about its model and where it came from (the `meta` of model.json,
export.json and the ONNX metadata), and the name an export takes from its checkpoint."""

from __future__ import annotations

from pathlib import Path

from charrnn import __version__, checkpoint, hub
from charrnn.infer.voices import Voices
from charrnn.model_config import model_config


def model_name(path: Path) -> str:
    """runs/NAME/best.ckpt → NAME; a model loaded as hf:OWNER/NAME → NAME; other files → their
    stem."""
    where = hub.origin(path)
    if where is not None:
        return where["repo"].split("/")[1]
    if path.name in ("best.ckpt", "last.ckpt") and path.parent.name not in ("", "."):
        return path.parent.name
    return path.stem


def export_meta(header: checkpoint.Header, path: Path, dtype: str) -> dict:
    """What every export records about its model and where it came from; a voiced model's also
    its voices (`voices_meta`)."""
    cfg = model_config(header)
    state = header.meta.get("state", {})
    corpus = header.meta.get("corpus") or {}
    meta = {
        "name": model_name(path),
        "charrnn": __version__,
        "model": {
            "cell": cfg.cell,
            "layers": cfg.layers,
            "hidden": cfg.hidden,
            "embed": cfg.embed,
            "vocab_size": cfg.vocab_size,
        },
        "vocab": list(header.meta["vocab"]),
        "vocab_counts": header.meta.get("vocab_counts") or None,
        "dtype": dtype,
        "sampling": {"temperature": 1.0, "top_k": None, "top_p": None, "min_p": None},
        "source": {
            "checkpoint": path.name,
            "fingerprint": checkpoint.fingerprint(path),
            "weights": "average" if checkpoint.sampling_prefix(header) != "model." else "raw",
            "step": state.get("step"),
            "best_val_loss": state.get("best_val_loss"),
            "corpus": corpus.get("name"),
            "created": header.meta.get("created"),
        },
    }
    voices = Voices.from_header(header)
    if voices is not None:
        meta["model"] |= {"voices": cfg.voices, "voice_dim": cfg.voice_dim}
        meta["voices"] = voices_meta(voices)
    return meta


def voices_meta(voices: Voices) -> dict:
    """A voiced model's voices as an export records them: names in voice-id order, and each
    voice's character counts over the vocabulary (an unprimed first draw without a newline in
    the vocabulary starts from them; [] where the checkpoint does not keep them)."""
    return {"names": list(voices.names), "counts": [list(row) for row in voices.counts]}
