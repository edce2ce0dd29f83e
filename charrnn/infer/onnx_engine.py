"""Inference through onnxruntime: the checkpoint's model as an ONNX graph (int8 weights by default),
behind the same engine protocol as the numpy engine, for faster CPU sampling (`--engine onnx`).

The graph is built and quantized once and kept in the cache (`onnx_cache`: keyed by the checkpoint's
fingerprint, the dtype and the versions of charrnn, its graph builder, onnx and onnxruntime; a cached
graph that fails to load is rebuilt once, with a `CharRNNWarning`), with dynamic batch and time
axes, so batches, priming, scoring and states all work. States are numpy's layout
(`engine.State`); a voiced model's rows carry their voice weights in `State.voice` (batch × voices,
zeros for no voice: what the graph's `voice_weights` input reads), turned into the numpy engine's
row constants and back by `to_numpy` / `from_numpy`. Not here: per-position states (`keep_states`,
which `viz` needs), CUDA, and the deterministic batch mode; each is refused in one line.
`head_logits` (a session resumed from a saved state, a server's job) uses the float32 head.
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
from charrnn.infer.voice_rows import bias_rows, gate_scale, voice_table
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
        self._voices: _VoiceRows | None = None  # set by from_session for a voiced model

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
        if cfg.voices:
            engine._voices = _VoiceRows(cfg, tensors)
        return engine

    def initial_state(self, batch: int = 1, voice: np.ndarray | None = None) -> State:
        """All zeros; a voiced model's rows carry their voice weights (length V, or batch × V;
        None: no voice, a row of zeros)."""
        state = State.zeros(self.layers, batch, self.hidden, self.cell == "lstm")
        if self._voices is not None:
            state.voice = bias_rows(self._voices.identity, voice, batch)
        elif voice is not None:
            raise InputError("this model has no voices")
        return state

    def _run(self, ids: np.ndarray, state: State) -> np.ndarray:
        """ids batch × time from `state` (updated in place); logits batch × time × vocab."""
        feeds = {"input_ids": ids.astype(np.int64), "h": np.stack(state.h)}
        if state.c is not None:
            feeds["c"] = np.stack(state.c)
        if self._voices is not None:
            feeds["voice_weights"] = np.ascontiguousarray(state.voice, dtype=F32)
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
        out = state.copy()
        if self._voices is not None and out.voice is not None:
            out.voice = self._voices.constants(out.voice)
        return out

    def from_numpy(self, state: State) -> State:
        out = state.copy()
        if self._voices is not None and out.voice is not None:
            out.voice = self._voices.weights(out.voice)
        return out

    def close(self) -> None:
        self.session = None


class _VoiceRows:
    """A voiced model's voice weights (this engine's rows) and the numpy engine's row constants
    (its `State.voice`: weights @ table[:V], or table[V] for none, sigmoid gates halved)."""

    def __init__(self, cfg: ModelConfig, tensors: dict) -> None:
        half = gate_scale(cfg.cell, cfg.hidden)
        wih0 = np.asarray(tensors["rnn.weight_ih_l0"], dtype=F32) * half[:, None]
        self.table = voice_table(np.asarray(tensors["voice.weight"], F32), wih0, cfg.embed)
        voices = cfg.voices
        self.identity = np.vstack([np.eye(voices), np.zeros((1, voices))]).astype(F32)
        # A constant's weights: the constants of mixes (summing to 1) lie in table[V] + span of
        # (table[v] - table[V]); any solution gives the same constant back.
        self._inverse = np.linalg.pinv(self.table[:voices].astype(np.float64) - self.table[voices])

    def constants(self, weights: np.ndarray) -> np.ndarray:
        """Each row's numpy-engine constant: its mix's, or no voice's for a row of zeros."""
        none = ~weights.any(axis=1)
        rows = bias_rows(self.table, weights[~none], int((~none).sum())) if (~none).any() else None
        out = np.repeat(self.table[-1:], len(weights), axis=0)
        if rows is not None:
            out[~none] = rows
        return out

    def weights(self, constants: np.ndarray) -> np.ndarray:
        """Each numpy-engine constant's voice weights (zeros where it is no voice's)."""
        offset = constants.astype(np.float64) - self.table[-1]
        out = (offset @ self._inverse).astype(F32)
        out[(constants == self.table[-1]).all(axis=1)] = 0.0
        return out
