"""`--format onnx`: the model as one ONNX file (float32, or int8 weights through onnxruntime's
dynamic quantization), with the vocabulary, cell, charrnn version and sampling defaults in its
metadata, and the int8 cost measured in onnxruntime itself.

int8: the LSTM keeps ONNX's LSTM operator (onnxruntime turns it into DynamicQuantizeLSTM); the GRU and
RNN are written in MatMul form (`onnx_graph`), which dynamic quantization covers. Weights are
quantized per output channel. A voiced model's graph takes its voice mix as an input
(`voice_weights`, `onnx_graph`); its voice names are in the metadata. Needs the `onnx` extra
(`pip install -e '.[onnx]'`); without it, one line says so. It does not write files (`target`
does) or choose the text to measure on.
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import numpy as np

from charrnn import checkpoint
from charrnn.errors import InputError, install_hint

MODEL_FILE = "model.onnx"
EXTRA = install_hint("onnx")


def require() -> None:
    """A one-line error, naming the extra, where onnx or onnxruntime is missing."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        raise InputError(f"the onnx format needs onnx and onnxruntime: {EXTRA}") from None


def form(cell: str, dtype: str) -> str:
    return "matmul" if dtype == "int8" and cell != "lstm" else "native"


def model_bytes(meta: dict, tensors: Mapping[str, np.ndarray], dtype: str) -> bytes:
    """The serialized ONNX model (quantized for int8), metadata included."""
    require()
    from charrnn.infer.export import onnx_graph

    cell = meta["model"]["cell"]
    props = metadata(meta)
    model = onnx_graph.build(cell, tensors, form(cell, dtype), props)
    data = model.SerializeToString()
    return quantize(data, props) if dtype == "int8" else data


def metadata(meta: dict) -> dict[str, str]:
    """metadata_props: strings (JSON where structured)."""
    m = meta["model"]
    props = {
        "charrnn.version": meta["charrnn"],
        "charrnn.name": meta["name"],
        "charrnn.cell": m["cell"],
        "charrnn.layers": str(m["layers"]),
        "charrnn.hidden": str(m["hidden"]),
        "charrnn.vocab": json.dumps(meta["vocab"], ensure_ascii=False),
        "charrnn.sampling": json.dumps(meta["sampling"]),
        "charrnn.dtype": meta["dtype"],
        "charrnn.source": json.dumps(meta["source"], ensure_ascii=False, allow_nan=False),
        "charrnn.quality": json.dumps(meta.get("quality"), allow_nan=False),
        "charrnn.inputs": "input_ids int64 [batch, time]; h float [layers, batch, hidden]"
        + ("; c like h" if m["cell"] == "lstm" else "")
        + (VOICE_INPUTS if "voices" in meta else ""),
    }
    if "voices" in meta:
        props["charrnn.voices"] = json.dumps(meta["voices"]["names"], ensure_ascii=False)
    return props


# What a voiced graph's extra input means (onnx_graph); guidance is two runs, not in the graph.
VOICE_INPUTS = (
    "; voice_weights float [1 or batch, voices]: each row's voice mix, summing to 1 (zeros: no "
    "voice); guidance (tag strength S) runs it twice, voiced and zeros, u + S*(c - u)"
)


def quantize(data: bytes, props: Mapping[str, str]) -> bytes:
    """onnxruntime's dynamic int8 quantization, weights per channel, subgraphs (the Scan) too."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="charrnn-onnx-") as tmp, _quiet():
        src, dst = Path(tmp) / "f32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(data)
        quantize_dynamic(
            src,
            dst,
            per_channel=True,
            weight_type=QuantType.QInt8,
            extra_options={"EnableSubgraph": True},
        )
        model = onnx.load(str(dst))
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, dict(props))
    return model.SerializeToString()


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The quantizer logs advice through the root logger; the library never writes to the terminal."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def with_metadata(data: bytes, meta: dict) -> bytes:
    """The model with its metadata_props rewritten (the quality is known only after scoring)."""
    import onnx

    model = onnx.load_from_string(data)
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, metadata(meta))
    return model.SerializeToString()


def scorer(
    data: bytes, header: checkpoint.Header, tensors: Mapping[str, np.ndarray]
) -> Callable[[str], float]:
    """A function scoring a text (nats/char) with this ONNX model in onnxruntime: an int8 model's
    cost is the runtime's own, its run-time quantization of activations included."""

    def score(text: str) -> float:
        from charrnn.infer.onnx_engine import OnnxEngine
        from charrnn.infer.score import Scorer

        engine = OnnxEngine.from_bytes(data, header, dict(tensors))
        try:
            return Scorer(engine).score(text, "skip").nats_per_char
        finally:
            engine.close()

    return score
