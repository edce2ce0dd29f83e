"""`charrnn export`: a checkpoint's sampling weights as files other runtimes run: a web page with a
JavaScript engine (`web`), an ONNX model (`onnx`), the files ml5.js 0.12's charRNN read (`ml5`),
and a folder for the Hugging Face Hub (`hub`: model, card and page; `space`: the page as a Space).

The weights come through the numpy engine's path (`read_model_tensors`: the average where the
checkpoint has one), so an export samples what `charrnn sample` samples, and torch is never imported.
An export is written beside its destination and swapped into place, so a failed or killed export
leaves the earlier one whole; an existing path is replaced only when it holds an earlier export, all
of whose files are its own and unedited, and the caller says so.
It does not print: it returns what it wrote and what the chosen dtype costs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from charrnn import atomic, checkpoint
from charrnn.errors import InputError
from charrnn.infer.export import hub, ml5, onnx_export, quality, target, web
from charrnn.infer.export.meta import export_meta, model_name
from charrnn.infer.export.weights import DTYPES, Packed, pack, unpack
from charrnn.infer.numpy_engine import read_model_tensors
from charrnn.infer.voices import Tag, Voices, resolve
from charrnn.model_config import model_config

FORMATS: tuple[str, ...] = ("web", "onnx", "ml5", "hub", "space")
# The dtypes each format can hold; the first is its default.
FORMAT_DTYPES: dict[str, tuple[str, ...]] = {
    "web": ("int8", "f16", "f32"),
    "onnx": ("f32", "int8"),
    "ml5": ("f32",),
    "hub": ("int8", "f16", "f32"),  # the page's weights (the model file is always float32)
    "space": ("int8", "f16", "f32"),
}
PAGES = ("web", "hub", "space")  # the formats that carry the web page


@dataclass
class Exported:
    """What an export wrote: its path, files and sizes, and the dtype's measured cost."""

    format: str
    dtype: str
    path: Path
    files: dict[str, int] = field(default_factory=dict)  # path → bytes
    quality: dict | None = None
    seconds: float = 0.0  # writing, without the quality measurement
    replaced: bool = False
    notes: list[str] = field(default_factory=list)  # a leftover of an interrupted export, restored
    hints: list[str] = field(default_factory=list)  # what the user should know, once each

    def to_json(self) -> dict:
        return {
            "format": self.format,
            "dtype": self.dtype,
            "path": str(self.path),
            "files": self.files,
            "bytes": sum(self.files.values()),
            "quality": self.quality,
            "seconds": round(self.seconds, 3),
            "replaced": self.replaced,
            "notes": self.notes,
            "hints": self.hints,
        }


# The longest default file name, in bytes: a model's name may take the 255 a file name holds, and
# the export is first written under a longer temporary name beside its destination.
DEFAULT_NAME_BYTES = 240


def default_path(ckpt: Path, fmt: str, single_file: bool) -> Path:
    """exports/NAME-FORMAT (.html for a single file), NAME cut to fit DEFAULT_NAME_BYTES."""
    name, suffix = model_name(ckpt), f"-{fmt}" + (".html" if single_file else "")
    while len((name + suffix).encode()) > DEFAULT_NAME_BYTES:
        name = name[:-1]
    return Path("exports") / (name + suffix)


def check_options(fmt: str, dtype: str | None, single_file: bool) -> str:
    """The dtype to use; a one-line InputError for a combination that cannot be written."""
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if single_file and fmt != "web":
        raise InputError(f"--single-file is for --format web only, not {fmt}")
    allowed = FORMAT_DTYPES[fmt]
    if dtype is None:
        return allowed[0]
    if dtype not in DTYPES or dtype not in allowed:
        raise InputError(
            f"--format {fmt} cannot hold --dtype {dtype}; choose one of {', '.join(allowed)}"
        )
    return dtype


def export(
    ckpt: str | os.PathLike,
    fmt: str = "web",
    out: str | os.PathLike | None = None,
    dtype: str | None = None,
    single_file: bool = False,
    overwrite: bool = False,
    eval_text: quality.EvalText | None = None,
    evaluate: bool = True,
    hub_options: hub.HubOptions | None = None,
    tag: Tag = None,
) -> Exported:
    """Export a checkpoint. eval_text: the text to measure the dtype's cost on (default: the
    first 20,000 characters of the checkpoint's validation split); evaluate=False skips it.
    hub_options: what the hub card says about the licence, language and text. tag (a voiced
    model: a voice or {name: weight}): the page's initial voice and the ONNX metadata's default;
    for ml5, whose format has no voice input, the voice baked into the weights (required)."""
    dtype = check_options(fmt, dtype, single_file)
    path = Path(ckpt)
    header = checkpoint.read_header(path)
    cfg = model_config(header)  # a model this charrnn can run, checked before anything is written
    dest = target.resolved(Path(out) if out is not None else default_path(path, fmt, single_file))
    notes = atomic.leftovers(dest)
    replaced = target.check(dest, overwrite, single_file)
    if fmt == "onnx":
        onnx_export.require()
    voice = resolve(Voices.from_header(header), tag)
    if fmt == "ml5":
        ml5.check(cfg, voice is not None)
    options = hub_options or hub.HubOptions()
    if fmt in ("hub", "space"):
        hub.require()
        hub.check(options)
    page = fmt in PAGES and (fmt != "hub" or options.web)
    tensors = {k.removeprefix("model."): v for k, v in read_model_tensors(header).items()}
    started = time.perf_counter()
    meta = export_meta(header, path, dtype)
    if voice is not None:
        names = meta["voices"]["names"]
        meta["sampling"]["tag"] = {n: float(w) for n, w in zip(names, voice, strict=True) if w}
    packed = pack(tensors, dtype) if page else None
    graph = onnx_export.model_bytes(meta, tensors, dtype) if fmt == "onnx" else None
    spent = time.perf_counter() - started
    record = None
    if evaluate and (page or fmt not in PAGES):
        text = eval_text if eval_text is not None else quality.validation_text(header)
        if fmt in ("hub", "space"):
            text = hub.public_text(text, header)
        record = quality.cost(
            header, tensors, _reduced(packed, graph, header, tensors, dtype), dtype, text
        )
    meta["quality"] = record
    started = time.perf_counter()
    contents: dict[str, bytes] = {}
    if page:
        assert packed is not None
        contents = web.files(meta["name"], web.manifest_for(meta, packed), packed, single_file)
    if fmt in ("hub", "space"):
        contents = hub.files(
            fmt, header, tensors, meta["name"], options, contents if page else None, record
        )
    elif fmt == "onnx":
        assert graph is not None
        contents = {onnx_export.MODEL_FILE: onnx_export.with_metadata(graph, meta)}
    elif fmt == "ml5":
        contents = ml5.files(meta, ml5.with_voice(tensors, voice) if voice is not None else tensors)
    if single_file:
        contents[""] = target.stamped(contents[""])
    else:
        contents[target.MARKER] = target.marker(meta, fmt, contents)
    target.write(dest, contents, single_file)
    spent += time.perf_counter() - started
    sizes = {str(dest / rel if rel else dest): len(data) for rel, data in contents.items()}
    hints = []
    if fmt in ("hub", "space") and not options.license:
        hints.append("the Hub asks for a licence: --license SPDX-ID (the card says it is unknown)")
    return Exported(fmt, dtype, dest, sizes, record, spent, replaced, notes, hints)


def _reduced(
    packed: Packed | None,
    graph: bytes | None,
    header: checkpoint.Header,
    tensors: dict[str, np.ndarray],
    dtype: str,
) -> dict[str, np.ndarray] | Callable[[str], float]:
    """What the dtype's cost is measured on: the page's dequantized arrays (numpy engine), or the
    ONNX model itself in onnxruntime; float32 ONNX is the float32 arrays."""
    if packed is not None:
        return unpack(packed.tensors, packed.data)
    if graph is not None and dtype == "int8":
        return onnx_export.scorer(graph, header, tensors)
    return tensors
