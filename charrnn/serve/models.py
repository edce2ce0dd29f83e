"""The models a server holds: each checkpoint loaded once under a name, with the facts the API shows
(`inspect --json`'s keys) and the fingerprint that binds sessions to it.

A name is given as `name=path`, or is the run directory's name (`runs/shakespeare/best.ckpt` →
`shakespeare`); two models with one name are refused before anything loads, and so is a name with
a `:`, which names a voice (`MODEL:VOICE`: each voice of a voiced model is listed under such a
name). It does not run models: the scheduler does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from charrnn import checkpoint, hub
from charrnn.errors import InputError
from charrnn.infer.sampler import Sampler
from charrnn.infer.voices import Voices

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass
class Model:
    name: str
    path: Path
    sampler: Sampler
    fingerprint: str  # sha256 of the checkpoint file, first 16 hex digits
    info: dict[str, Any] = field(default_factory=dict)  # inspect --json

    @property
    def engine(self):
        return self.sampler.engine

    @property
    def voices(self) -> Voices | None:
        return self.sampler.voices

    def voice_cards(self) -> list[dict[str, Any]]:
        """One card per voice, named `MODEL:VOICE`: what an unmodified client picks a voice by."""
        if self.voices is None:
            return []
        created = int(self.path.stat().st_mtime) if self.path.exists() else 0
        val = self.voices.val
        return [
            {
                "id": f"{self.name}:{v}",
                "object": "model",
                "created": created,
                "owned_by": "charrnn",
                "charrnn": {"model": self.name, "voice": v, "val_nats_per_char": val.get(v)},
            }
            for v in self.voices.names
        ]

    def card(self) -> dict[str, Any]:
        """The model in OpenAI's list shape, with charrnn's metadata under `charrnn`."""
        m, corpus = self.info["model"], self.info.get("corpus") or {}
        return {
            "id": self.name,
            "object": "model",
            "created": int(self.path.stat().st_mtime) if self.path.exists() else 0,
            "owned_by": "charrnn",
            "charrnn": {
                "cell": m.get("cell"),
                "layers": m.get("layers"),
                "hidden": m.get("hidden"),
                "parameters": m.get("parameters"),
                "vocab_size": self.info["vocab"]["size"],
                # the characters in id order: a client maps text to token ids with it
                "vocab": list(self.sampler.vocab.chars),
                "corpus": corpus.get("name"),
                "best_val_bpc": self.info["training"].get("best_val_bpc"),
                "fingerprint": self.fingerprint,
                "voices": list(self.voices.names) if self.voices else None,
                # inspect --json without the loss curves (which can be long)
                "inspect": {k: v for k, v in self.info.items() if k != "history"},
            },
        }


def parse_spec(spec: str) -> tuple[str, Path]:
    """`name=path` or a path (named after its run directory, else its file name); a path may be
    `hf:OWNER/NAME[@REVISION]` (named NAME), fetched here."""
    name, sep, rest = spec.partition("=")
    if sep and ":" in name and not hub.is_name(spec) and not Path(spec).exists():
        _refuse_colon(name)
    if sep and NAME.fullmatch(name) and not Path(spec).exists():
        return name, hub.local(rest)
    if hub.is_name(spec):
        return hub.repo_name(spec), hub.local(spec)
    path = Path(spec)
    parent = path.resolve().parent.name if path.name == "best.ckpt" else ""
    return parent or path.stem or "model", path


def _refuse_colon(name: str) -> None:
    raise InputError(
        f"model name {name!r}: ':' is reserved for MODEL:VOICE (a voice of a served model); "
        "use letters, digits and _ . - (give it as name=path)"
    )


def load_models(
    specs: list[tuple[str, Path]],
    device: str = "cpu",
    threads: int = 0,
    deterministic: bool = False,
) -> dict[str, Model]:
    """Load every checkpoint (data only, validated). Duplicate or malformed names are refused
    before the first load."""
    seen: dict[str, Path] = {}
    for name, path in specs:
        if ":" in name:
            _refuse_colon(name)
        if not NAME.fullmatch(name):
            raise InputError(
                f"model name {name!r}: use letters, digits and _ . - (give it as name=path)"
            )
        if name in seen:
            raise InputError(
                f"two models named {name!r} ({seen[name]} and {path}); name them: name=path"
            )
        seen[name] = path
    models: dict[str, Model] = {}
    for name, path in specs:
        sampler = Sampler.from_checkpoint(path, device, threads, deterministic)
        header = sampler.header or checkpoint.read_header(path)
        info = checkpoint.summarize(header)
        models[name] = Model(name, Path(path), sampler, checkpoint.fingerprint(path), info)
    return models
