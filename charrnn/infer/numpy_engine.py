"""Inference in numpy: a checkpoint's weights → logits, log-probabilities and hidden states for a batch
of character streams (LSTM, GRU or tanh RNN), without torch.

Two ways to advance a batch, because BLAS rounds a row of a many-row product differently from the same
row alone (by up to 4e-5 for a 2×512 LSTM's matrices here), and one flipped draw changes the rest of
a sample:
- fast (the default): a batch of two or more streams is one matrix-matrix product per weight matrix,
  over twice the throughput of one-row products at 64 streams. A stream's text is then
  reproducible by the same command (same batch, machine and threads), not by the stream run alone.
- deterministic: each row's products are one-row products, never a batched product, so a stream gives
  bit-identical logits alone or in any batch and rows can be dropped or reordered between steps (sample
  i of a batch equals its seed run alone; a server's seeded request equals `sample`). Batches stay
  reasonably fast because the products run one column block at a time, each block sized to stay in the
  L2 cache while every row passes over it, and large batches are split between threads.
A single stream takes the one-row product in both modes.

The weights are rearranged once: the first layer's input projection becomes a vocab × gates table (a
lookup per character), sigmoid gates are pre-scaled by 1/2 so that one tanh serves every gate
(sigmoid(x) = (1 + tanh(x/2)) / 2; scaling by a power of two is exact), and the hidden-to-hidden
matrices are transposed and cut into column blocks. It does not draw characters or know any policy:
that is the sampler's job.
"""

from __future__ import annotations

import functools
import itertools
import os
from collections.abc import Callable, Generator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from charrnn import checkpoint
from charrnn.errors import InputError
from charrnn.infer.engine import Forward, State, run_to_end
from charrnn.infer.tensors import read_model_tensors
from charrnn.infer.threads import ThreadTuner, blas_threads, default_threads
from charrnn.infer.voice_rows import bias_rows, gate_scale, voice_table
from charrnn.model_config import ModelConfig, model_config
from charrnn.vocab import Vocab

MIN_PRODUCT_ROWS = 16  # fewer rows take other BLAS kernels (see Engine._project)
# Multiply-adds of a chunk's projection or head between two pauses of `forward_steps`: a whole
# 4,096-row projection of 2×512 (4.3 G) held a server's streams 50-250 ms; ~0.1 G blocks (~4 ms) are far
# above the sizes where BLAS takes other kernels, so a row keeps its bits (a test holds this).
BLOCK_MACS = 100_000_000
F32 = np.float32
BLOCK_BYTES = (
    1 << 20
)  # a column block of a weight matrix: fits in L2 beside the rows passing over it
MIN_ROWS_PER_THREAD = 8  # below this a thread's share is not worth the hand-off
PRIME_CHUNK = 1024  # characters per input-projection product while priming (8 MB a gate array)


class _Matrix:
    """A weight matrix (in × out) for one-row products, stored as contiguous column blocks."""

    def __init__(self, w: np.ndarray) -> None:
        self.w = w = np.ascontiguousarray(w, dtype=F32)
        self.rows, self.cols = w.shape
        width = max(16, (BLOCK_BYTES // (4 * max(1, self.rows))) // 16 * 16)
        self.blocks = [
            (j, min(j + width, self.cols), np.ascontiguousarray(w[:, j : j + width]))
            for j in range(0, self.cols, width)
        ]
        self.whole_ok = len(self.blocks) == 1 or self._rounds_alike()

    def _rounds_alike(self) -> bool:
        """Whether one row times the whole matrix rounds exactly as the blocks do, on this machine's
        BLAS and this shape. The order of a product's additions does not depend on the numbers, so
        agreement on random rows means the same additions; then a lone stream may use the whole
        matrix (BLAS spreads it over every core), and otherwise it takes the blocks like a batch."""
        x = np.random.default_rng(0).standard_normal((2, self.rows)).astype(F32)
        blocked = self.product(x, np.empty((2, self.cols), dtype=F32))
        return all(np.array_equal(x[r] @ self.w, blocked[r]) for r in range(2))

    def product(self, x: np.ndarray, out: np.ndarray, batched: bool = False) -> np.ndarray:
        """out[r] = x[r] @ W for every row r. batched: one matrix-matrix product for two or more
        rows (fast; a row rounds as in any other many-row product, not as alone). Otherwise each row
        on its own (a stack of one-row products).

        Several rows go block by block (each block stays in the L2 cache while every row passes
        over it); a single row uses the whole matrix only where that was checked to round exactly
        as the blocks do, so a row's result never depends on the batch it is in.
        """
        if batched and len(x) > 1:
            return np.matmul(x, self.w, out=out)
        if len(x) == 1 and getattr(self, "whole_ok", False):
            np.matmul(x[0], self.w, out=out[0])
            return out
        xs, os3 = x[:, None, :], out[:, None, :]
        for j0, j1, block in self.blocks:
            np.matmul(xs, block, out=os3[:, :, j0:j1])
        return out


class Engine:
    """A model ready for inference on the CPU (`charrnn.infer.engine.InferenceEngine`).
    `Engine.load(path)`; then `initial_state`, `step`, `forward`."""

    def __init__(
        self,
        cfg: ModelConfig,
        vocab: Vocab,
        tensors: Mapping[str, np.ndarray],
        threads: int = 0,
        deterministic: bool = False,
    ) -> None:
        self.cfg, self.vocab, self.deterministic = cfg, vocab, deterministic
        self.cell, self.layers, self.hidden = cfg.cell, cfg.layers, cfg.hidden
        self.threads = threads or default_threads()
        self._pool: ThreadPoolExecutor | None = None
        self.header: checkpoint.Header | None = None  # set when loaded from a file
        self._tuner = ThreadTuner(self.threads)
        w = {k.removeprefix("model."): np.asarray(v, dtype=F32) for k, v in tensors.items()}
        half = gate_scale(cfg.cell, cfg.hidden)  # sigmoid gate columns pre-scaled by 1/2
        emb = w["embed.weight"]
        self.w_ih: list[_Matrix | None] = [None]
        self.w_hh: list[_Matrix] = []
        self.b_ih: list[np.ndarray] = []
        self.b_hh: list[np.ndarray] = []
        for i in range(cfg.layers):
            wih, whh = w[f"rnn.weight_ih_l{i}"], w[f"rnn.weight_hh_l{i}"]
            bih, bhh = w[f"rnn.bias_ih_l{i}"], w[f"rnn.bias_hh_l{i}"]
            if cfg.cell == "gru":  # n's hidden part is multiplied by r: its bias cannot be folded
                self.b_ih.append(bih * half)
                self.b_hh.append(bhh * half)
            else:
                self.b_ih.append((bih + bhh) * half)
                self.b_hh.append(np.zeros_like(bhh))
            if i > 0:
                self.w_ih.append(_Matrix(wih.T * half))
            self.w_hh.append(_Matrix(whh.T * half))
        # Layer 0's input projection (and its biases) for every character: one lookup per step;
        # a voiced model's columns after the characters' give each voice's constant (`voice_rows`).
        wih0 = w["rnn.weight_ih_l0"]
        self.table = np.ascontiguousarray((emb @ (wih0[:, : cfg.embed].T * half)) + self.b_ih[0])
        self.voice_table = (
            voice_table(w["voice.weight"], wih0 * half[:, None], cfg.embed) if cfg.voices else None
        )
        self.head = _Matrix(w["head.weight"].T)
        self.head_bias = w["head.bias"].astype(F32)

    # --- loading ------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike, threads: int = 0, deterministic: bool = False) -> Engine:
        """Read a checkpoint's model tensors as data (header validated first; nothing executed)."""
        header = checkpoint.read_header(path)
        cfg = model_config(header)
        vocab = Vocab.from_json(header.meta["vocab"], header.meta["vocab_counts"] or None)
        engine = cls(cfg, vocab, read_model_tensors(header), threads, deterministic)
        engine.header = header
        return engine

    # --- state --------------------------------------------------------------------------------
    def initial_state(self, batch: int = 1, voice: np.ndarray | None = None) -> State:
        """All zeros, as training starts every stream; a voiced model's rows carry their voice
        (weights: V, or batch × V; None: no voice)."""
        state = State.zeros(self.layers, batch, self.hidden, self.cell == "lstm")
        if self.voice_table is not None:
            state.voice = bias_rows(self.voice_table, voice, batch)
        elif voice is not None:
            raise InputError("this model has no voices")
        return state

    # --- one character per stream -------------------------------------------------------------
    def step(self, ids: np.ndarray | Sequence[int], state: State) -> np.ndarray:
        """Advance every stream by its character; returns logits (batch × vocab). Updates `state`."""
        ids = np.asarray(ids, dtype=np.intp)
        out = np.empty((len(ids), self.vocab.size), dtype=F32)
        parts = self._split(len(ids))
        if len(parts) == 1:
            self._step_rows(ids, state, slice(None), out)
            return out
        pool = self._pool or ThreadPoolExecutor(self.threads, thread_name_prefix="charrnn")
        self._pool = pool
        blas_threads(1)  # the threads share the cores; BLAS must not spawn more on top
        for f in [pool.submit(self._step_rows, ids[p], state, p, out[p]) for p in parts]:
            f.result()
        return out

    def _split(self, batch: int) -> list[slice]:
        """Deterministic batches split their rows between Python threads (each running one-row
        products); everything else runs on the calling thread with BLAS threads as tuned."""
        n = min(self.threads, batch // MIN_ROWS_PER_THREAD) if self.deterministic else 1
        if n <= 1:
            blas_threads(self._tuner.choose())
            return [slice(None)]
        cuts = [batch * k // n for k in range(n + 1)]
        return [slice(a, b) for a, b in itertools.pairwise(cuts)]

    def _step_rows(self, ids: np.ndarray, state: State, rows: slice, out: np.ndarray) -> None:
        x = self.table[ids]
        if state.voice is not None:
            x += state.voice[rows]
        for i in range(self.layers):
            h = state.h[i][rows]
            c = state.c[i][rows] if state.c else None
            gi = x if i == 0 else self._input(i, x)
            h_new = self._cell(i, gi, h, c)
            state.h[i][rows] = h_new
            x = h_new
        self.head.product(x, out, not self.deterministic)
        out += self.head_bias

    def _input(self, i: int, x: np.ndarray) -> np.ndarray:
        w = self.w_ih[i]
        assert w is not None  # layers above the first have an input matrix
        gi = w.product(x, np.empty((len(x), w.cols), dtype=F32), not self.deterministic)
        gi += self.b_ih[i]
        return gi

    def _cell(self, i: int, gi: np.ndarray, h: np.ndarray, c: np.ndarray | None) -> np.ndarray:
        """One recurrence step of layer i for a block of rows; c is updated in place (LSTM)."""
        H = self.hidden
        w = self.w_hh[i]
        gh = w.product(h, np.empty((len(h), w.cols), dtype=F32), not self.deterministic)
        if self.cell == "gru":
            gh += self.b_hh[i]
            rz = gi[:, : 2 * H] + gh[:, : 2 * H]
            np.tanh(rz, out=rz)
            rz *= 0.5
            rz += 0.5
            n = gh[:, 2 * H :] * rz[:, :H]
            n += gi[:, 2 * H :]
            np.tanh(n, out=n)
            z = rz[:, H:]
            return n + z * (h - n)  # (1 - z) n + z h
        gh += gi
        np.tanh(gh, out=gh)
        if self.cell == "rnn":
            return gh
        sig = gh[:, : 2 * H]
        sig *= 0.5
        sig += 0.5
        o = gh[:, 3 * H :]
        o *= 0.5
        o += 0.5
        c *= gh[:, H : 2 * H]
        c += gh[:, :H] * gh[:, 2 * H : 3 * H]
        return o * np.tanh(c)

    # --- a whole sequence on one stream -------------------------------------------------------
    def forward(
        self,
        ids: Sequence[int] | np.ndarray,
        state: State | None = None,
        *,
        last_only: bool = False,
        keep_states: bool = False,
    ) -> Forward[State]:
        """Run one stream over a sequence, layer by layer: each layer's input projection for a
        chunk is one matrix product and only the recurrence steps per character."""
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
        every: int = 8,
    ) -> Generator[None, None, Forward[State]]:
        """`forward` in slices: a generator that pauses after every `every` recurrence steps and
        returns the Forward. A server primes a long prompt slice by slice between its batch
        steps, so other streams never wait for it; the arithmetic is forward's, to the bit.
        A pause costs nothing here, so they are frequent (8 steps of a 2×512 model are about
        2 ms): the server bounds its slices in time, and a slice overruns by one unit at most."""
        state = (state or self.initial_state(1)).copy()
        if state.batch != 1:
            raise InputError("forward runs one stream; use step for a batch")
        seq = np.asarray(ids, dtype=np.intp)
        hidden: list[list[np.ndarray]] = [[] for _ in range(self.layers)]
        cells: list[list[np.ndarray]] = [[] for _ in range(self.layers)]
        logits: list[np.ndarray] = []
        for start in range(0, len(seq), PRIME_CHUNK):
            chunk = seq[start : start + PRIME_CHUNK]
            x = self.table[chunk]
            if state.voice is not None:
                x += state.voice[0]
            for i in range(self.layers):
                gi = x
                if i > 0:
                    project = functools.partial(self._project, i)
                    gi = yield from self._in_blocks(project, x, self._w(i))
                hs, cs = yield from self._recur(i, gi, state, every)
                if keep_states:
                    hidden[i].append(hs)
                    if cs is not None:
                        cells[i].append(cs)
                x = hs
            top = x[-1:] if last_only else x
            if not last_only or start + PRIME_CHUNK >= len(seq):
                logits.append((yield from self._in_blocks(self._head, top, self.head.w)))
        out = np.concatenate(logits) if logits else np.empty((0, self.vocab.size), F32)
        fwd = Forward(out, state)
        if keep_states:
            fwd.hidden = [np.concatenate(h) for h in hidden]
            fwd.cells = [np.concatenate(c) for c in cells] if self.cell == "lstm" else None
        return fwd

    def head_logits(self, state: State) -> np.ndarray:
        """The logits a state predicts (batch × vocab): a stream resumed from a saved state."""
        top = state.h[-1]  # row by row, as forward computes its last logits
        return np.concatenate(
            [top[r : r + 1] @ self.head.w + self.head_bias for r in range(len(top))]
        )

    def to_numpy(self, state: State) -> State:
        """The state in numpy's layout: this engine's own, copied."""
        return state.copy()

    def from_numpy(self, state: State) -> State:
        out = state.copy()
        if self.voice_table is not None and out.voice is None:  # kept before voices: none
            out.voice = bias_rows(self.voice_table, None, out.batch)
        return out

    def _w(self, i: int) -> np.ndarray:
        w = self.w_ih[i]
        assert w is not None
        return w.w

    def _head(self, top: np.ndarray) -> np.ndarray:
        return top @ self.head.w + self.head_bias

    @staticmethod
    def _in_blocks(
        product: Callable[[np.ndarray], np.ndarray], x: np.ndarray, w: np.ndarray
    ) -> Generator[None, None, np.ndarray]:
        """product(x) (x @ w and a bias), a block of about BLOCK_MACS multiply-adds at a time with
        a pause after each; a last block under half the size joins the one before it."""
        rows = max(1, -(-BLOCK_MACS // (w.shape[0] * w.shape[1])))
        if len(x) < 2 * rows:
            return product(x)
        bounds = [*range(0, len(x), rows), len(x)]
        if bounds[-1] - bounds[-2] < rows // 2:
            del bounds[-2]
        # block by block into one array: concatenating the blocks copied 32 MB (2×512) unpaused
        out = np.empty((len(x), w.shape[1]), dtype=F32)
        for a, b in itertools.pairwise(bounds):
            out[a:b] = product(x[a:b])
            yield
        return out

    def _project(self, i: int, x: np.ndarray) -> np.ndarray:
        """Layer i's input projection for a whole chunk: one matrix product (plus its bias).

        A chunk of fewer than MIN_PRODUCT_ROWS rows is padded with zero rows: OpenBLAS gives a row
        of a matrix-matrix product the same bits whatever the row count, except for very few rows,
        where it takes other kernels (a single row its matrix-vector one; up to 3 rows another for
        512 × 512 here). So a text read in pieces (a chat session's turns) leaves the state bit for
        bit equal to the same text read in one go."""
        w = self._w(i)
        if len(x) < MIN_PRODUCT_ROWS:
            padded = np.zeros((MIN_PRODUCT_ROWS, x.shape[1]), dtype=F32)
            padded[: len(x)] = x
            return (padded @ w)[: len(x)] + self.b_ih[i]
        return x @ w + self.b_ih[i]

    def _recur(
        self, i: int, gi: np.ndarray, state: State, every: int = 0
    ) -> Generator[None, None, tuple[np.ndarray, np.ndarray | None]]:
        hs = np.empty((len(gi), self.hidden), dtype=F32)
        cs = np.empty_like(hs) if self.cell == "lstm" else None
        h = state.h[i]
        c = state.c[i] if state.c else None
        for t in range(len(gi)):
            h = self._cell(i, gi[t : t + 1].copy(), h, c)
            hs[t] = h[0]
            if cs is not None:
                cs[t] = c[0]
            if every and t % every == every - 1:
                state.h[i] = h
                yield
        state.h[i] = np.ascontiguousarray(h)
        return hs, cs

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
