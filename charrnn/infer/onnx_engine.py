"""Inference through onnxruntime: the checkpoint's model as an ONNX graph (int8 weights by default),
behind the same engine protocol as the numpy engine, for faster CPU sampling (`--engine onnx`).

The graph is built and quantized once and kept in the cache (`onnx_cache`: keyed by the checkpoint's
fingerprint, the dtype and the versions of charrnn, its graph builder, onnx and onnxruntime; a cached
graph that fails to load is rebuilt once, with a `CharRNNWarning`), with dynamic batch and time
axes, so batches, priming, scoring and states all work. States are numpy's layout
(`engine.State`). Not here: per-position states (`keep_states`, which `viz` needs), CUDA, and the
deterministic batch mode; each is refused in one line. `head_logits` (a session resumed from a
saved state, a server's job) uses the float32 head.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from charrnn import checkpoint
from charrnn.errors import CharRNNWarning, InputError
from charrnn.infer import onnx_cache
from charrnn.infer.engine import Forward, State, run_to_end
from charrnn.model_config import ModelConfig, model_config
from charrnn.vocab import Vocab

F32 = np.float32
CHUNK = 4096  # characters per run while priming or scoring (bounds the logits' memory)


def cache_path(fingerprint: str, dtype: str) -> Path:
    """Where a checkpoint's graph is kept (`onnx_cache.path`)."""
    return onnx_cache.path(fingerprint, dtype)


def session(data: bytes) -> Any:
    """An onnxruntime session of this graph on the CPU: one thread (one stream's small products
    are fastest so), quiet."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])


class OnnxEngine:
    """A model in an onnxruntime session (`charrnn.infer.engine.InferenceEngine`)."""

    def __init__(
        self, runner: Any, cfg: ModelConfig, vocab: Vocab, head: tuple[np.ndarray, np.ndarray]
    ) -> None:
        self.session = runner
        self.cfg, self.vocab, self.cell = cfg, vocab, cfg.cell
        self.layers, self.hidden = cfg.layers, cfg.hidden
        self.header: checkpoint.Header | None = None
        self._head_w, self._head_b = head

    @classmethod
    def load(cls, path: str | os.PathLike, dtype: str = "int8") -> OnnxEngine:
        """The checkpoint's model in onnxruntime, built (and quantized) once into the cache."""
        from charrnn.infer.export import onnx_export
        from charrnn.infer.export.meta import export_meta
        from charrnn.infer.numpy_engine import read_model_tensors

        onnx_export.require()
        header = checkpoint.read_header(path)
        tensors = {k.removeprefix("model."): v for k, v in read_model_tensors(header).items()}
        cached = cache_path(checkpoint.fingerprint(path), dtype)
        data = onnx_cache.read(cached)
        if data is not None:
            try:
                return cls.from_session(session(data), header, tensors)
            except Exception as e:  # onnxruntime's own types (InvalidProtobuf, Fail, ...)
                reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                warnings.warn(
                    CharRNNWarning(
                        f"the cached ONNX graph {cached} did not load ({reason}); rebuilt it"
                    ),
                    stacklevel=2,
                )
        data = onnx_export.model_bytes(export_meta(header, Path(path), dtype), tensors, dtype)
        onnx_cache.write(cached, data)
        return cls.from_bytes(data, header, tensors)  # a graph just built that fails: an error

    @classmethod
    def from_bytes(cls, data: bytes, header: checkpoint.Header, tensors: dict) -> OnnxEngine:
        return cls.from_session(session(data), header, tensors)

    @classmethod
    def from_session(cls, runner: Any, header: checkpoint.Header, tensors: dict) -> OnnxEngine:
        cfg = model_config(header)
        vocab = Vocab.from_json(header.meta["vocab"], header.meta["vocab_counts"] or None)
        head = (tensors["head.weight"].T.astype(F32), tensors["head.bias"].astype(F32))
        engine = cls(runner, cfg, vocab, head)
        engine.header = header
        return engine

    def initial_state(self, batch: int = 1, voice: np.ndarray | None = None) -> State:
        if voice is not None:  # the graph has no voice input yet
            raise InputError("--engine onnx does not take voices yet; use the numpy engine")
        return State.zeros(self.layers, batch, self.hidden, self.cell == "lstm")

    def _run(self, ids: np.ndarray, state: State) -> np.ndarray:
        """ids batch × time from `state` (updated in place); logits batch × time × vocab."""
        feeds = {"input_ids": ids.astype(np.int64), "h": np.stack(state.h)}
        if state.c is not None:
            feeds["c"] = np.stack(state.c)
        out = self.session.run(None, feeds)
        state.h[:] = list(out[1])
        if state.c is not None:
            state.c[:] = list(out[2])
        return out[0]

    def step(self, ids: Sequence[int] | np.ndarray, state: State) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        return self._run(ids[:, None], state)[:, 0]

    def forward(
        self,
        ids: Sequence[int] | np.ndarray,
        state: State | None = None,
        *,
        last_only: bool = False,
        keep_states: bool = False,
    ) -> Forward[State]:
        return run_to_end(
            self.forward_steps(ids, state, last_only=last_only, keep_states=keep_states)
        )

    def forward_steps(
        self,
        ids: Sequence[int] | np.ndarray,
        state: State | None = None,
        *,
        last_only: bool = False,
        keep_states: bool = False,
        every: int = CHUNK,
    ) -> Generator[None, None, Forward[State]]:
        if keep_states:
            raise InputError(
                "the onnx engine does not keep per-position states; use --engine numpy"
            )
        state = (state or self.initial_state(1)).copy()
        seq = np.asarray(ids, dtype=np.int64)
        logits: list[np.ndarray] = []
        step = max(1, min(every, CHUNK))
        for start in range(0, len(seq), step):
            out = self._run(seq[None, start : start + step], state)[0]
            logits.append(out[-1:] if last_only else out)
            if start + step < len(seq):
                yield
        if last_only and logits:
            logits = logits[-1:]
        out = np.concatenate(logits) if logits else np.empty((0, self.vocab.size), F32)
        return Forward(out, state)

    def head_logits(self, state: State) -> np.ndarray:
        return state.h[-1] @ self._head_w + self._head_b

    def to_numpy(self, state: State) -> State:
        return state.copy()

    def from_numpy(self, state: State) -> State:
        return state.copy()

    def close(self) -> None:
        self.session = None
