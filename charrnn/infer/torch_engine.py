"""The torch inference engine, for `--device cuda` (and mps; CPU in tests): the `InferenceEngine`
protocol of `charrnn.infer.engine` over a checkpoint's `CharRNN`, with logits and per-position states
handed back as numpy arrays so the sampling policies are shared.

A prime runs through the fused `nn.LSTM`/`nn.GRU`/`nn.RNN` a slice at a time. Per-position states
(`keep_states`: scoring, viz) run one layer at a time through single-layer fused modules, each
layer's outputs being its hidden states; an LSTM's cells are then recomputed from those outputs
(the gates in one product, the cell recurrence elementwise). Each further character goes through a
hand-fused step (the first layer's input as a vocab × gates table, one product per layer, no
autograd).

It is not the CPU default: the numpy engine is (no torch import, faster per character). Unlike the
numpy engine, its batched products may round a stream differently depending on the batch, and a
sequence read in slices may round differently from the same sequence read at once.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from charrnn import checkpoint
from charrnn.errors import InputError
from charrnn.infer.engine import Forward, run_to_end
from charrnn.infer.engine import State as NumpyState
from charrnn.infer.voice_rows import bias_rows, gate_scale, voice_table
from charrnn.model import CharRNN, State, load_model, state_from_tensors, state_tensors
from charrnn.vocab import Vocab

PRIME_CHUNK = 4096  # characters per fused call when nothing asks for pauses
_PARAMS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
_FUSED = {"lstm": torch.lstm, "gru": torch.gru, "rnn": torch.rnn_tanh}  # as nn.LSTM & co. call


@dataclass
class TorchState:
    """h (and c) as layers × batch × hidden tensors on the device; a voiced model's rows' voice
    constants (batch × gates, unscaled) in `voice` (see `engine.State`)."""

    h: torch.Tensor
    c: torch.Tensor | None = None
    voice: torch.Tensor | None = None

    @property
    def batch(self) -> int:
        return self.h.shape[1]

    def select(self, rows: Sequence[int] | np.ndarray) -> TorchState:
        idx = torch.as_tensor(np.asarray(rows, dtype=np.int64), device=self.h.device)
        return TorchState(
            self.h[:, idx],
            None if self.c is None else self.c[:, idx],
            None if self.voice is None else self.voice[idx],
        )

    def copy(self) -> TorchState:
        return TorchState(
            self.h.clone(),
            None if self.c is None else self.c.clone(),
            None if self.voice is None else self.voice.clone(),
        )

    def module_state(self) -> State:
        return (self.h, self.c) if self.c is not None else self.h

    @staticmethod
    def concat(states: Sequence[TorchState]) -> TorchState:
        """One state holding the rows of these states in order (streams joining a batch)."""
        h = torch.cat([s.h for s in states], dim=1)
        c = None if states[0].c is None else torch.cat([s.c for s in states], dim=1)  # type: ignore[misc]
        v = None if states[0].voice is None else torch.cat([s.voice for s in states])  # type: ignore[misc]
        return TorchState(h, c, v)


class _FastStep:
    """Advance a batch of streams by one character: ids (B,) → logits (B, vocab)."""

    def __init__(self, model: CharRNN) -> None:
        cfg = model.cfg
        self.cell, self.layers, self.hidden = cfg.cell, cfg.layers, cfg.hidden
        rnn = model.rnn
        with torch.inference_mode():
            w = {k: v.detach().float() for k, v in rnn.named_parameters()}
            emb = model.embed.weight.detach().float()
            w0 = w["weight_ih_l0"][:, : cfg.embed]  # a voiced model's voice columns: TorchEngine
            self.table = emb @ w0.T + w["bias_ih_l0"]  # vocab × gates
            self.w_hh = [w[f"weight_hh_l{i}"].T.contiguous() for i in range(cfg.layers)]
            self.b_hh = [w[f"bias_hh_l{i}"] for i in range(cfg.layers)]
            self.w_ih = [None] + [w[f"weight_ih_l{i}"].T.contiguous() for i in range(1, cfg.layers)]
            self.b_ih = [None] + [w[f"bias_ih_l{i}"] for i in range(1, cfg.layers)]
            if cfg.cell != "gru":  # one product per layer: [x, h] @ [W_ih; W_hh] with b_ih + b_hh
                self.table = self.table + self.b_hh[0]
                self.w_cat = [None] + [
                    torch.cat([self.w_ih[i], self.w_hh[i]], 0).contiguous()
                    for i in range(1, cfg.layers)
                ]
                self.b_cat = [None] + [self.b_ih[i] + self.b_hh[i] for i in range(1, cfg.layers)]
            self.w_out = model.head.weight.detach().float().T.contiguous()
            self.b_out = model.head.bias.detach().float()
        self.h: list[torch.Tensor] = []
        self.c: list[torch.Tensor] = []

    def set_state(self, state: State) -> None:
        """Take the module's state (layers × B × H tensors) after a prime."""
        ts = state_tensors(state)
        self.h = [ts[0][i].float().contiguous() for i in range(self.layers)]
        self.c = [ts[1][i].float().contiguous() for i in range(self.layers)] if len(ts) > 1 else []

    @torch.inference_mode()
    def __call__(self, ids: torch.Tensor, voice: torch.Tensor | None = None) -> torch.Tensor:
        x = self.table[ids] if voice is None else self.table[ids] + voice
        H = self.hidden
        for i in range(self.layers):
            h = self.h[i]
            if self.cell == "gru":
                gi = x if i == 0 else torch.addmm(self.b_ih[i], x, self.w_ih[i])
                gh = torch.addmm(self.b_hh[i], h, self.w_hh[i])
                rz = torch.sigmoid(gi[:, : 2 * H] + gh[:, : 2 * H])
                n = torch.tanh(torch.addcmul(gi[:, 2 * H :], rz[:, :H], gh[:, 2 * H :]))
                h = torch.lerp(n, h, rz[:, H:])  # (1 - z) n + z h
            else:
                if i == 0:
                    g = torch.addmm(x, h, self.w_hh[0])
                else:
                    g = torch.addmm(self.b_cat[i], torch.cat([x, h], 1), self.w_cat[i])
                if self.cell == "rnn":
                    h = torch.tanh(g)
                else:
                    s = torch.sigmoid(g)
                    c = torch.addcmul(
                        s[:, H : 2 * H] * self.c[i], s[:, :H], torch.tanh(g[:, 2 * H : 3 * H])
                    )
                    self.c[i] = c
                    h = s[:, 3 * H :] * torch.tanh(c)
            self.h[i] = h
            x = h
        return torch.addmm(self.b_out, x, self.w_out)


class TorchEngine:
    """A checkpoint's model on a torch device, stepping streams like the numpy `Engine`."""

    def __init__(self, model: CharRNN, vocab: Vocab, device: str) -> None:
        self.model, self.vocab, self.device = model.to(device).eval(), vocab, torch.device(device)
        self.cfg, self.cell = model.cfg, model.cfg.cell
        self.fast = _FastStep(self.model)
        self.header: checkpoint.Header | None = None
        self._layers: list[nn.RNNBase] | None = None  # single-layer modules, for keep_states
        self._voices: np.ndarray | None = None  # (V + 1) × gates, unscaled (`voice_rows`)
        if self.cfg.voices:
            with torch.inference_mode():
                w0 = model.rnn.weight_ih_l0.detach().float()
                self._voices = voice_table(
                    model.voice.weight.detach().float().cpu().numpy(),
                    w0.cpu().numpy(),
                    self.cfg.embed,
                )
                self._w0 = w0[:, : self.cfg.embed].contiguous()  # layer 0's character columns
            self._scale = torch.as_tensor(gate_scale(self.cell, self.cfg.hidden), device=device)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str) -> TorchEngine:
        header = checkpoint.read_header(path)
        vocab = Vocab.from_json(header.meta["vocab"], header.meta["vocab_counts"] or None)
        engine = cls(load_model(header), vocab, device)
        engine.header = header
        return engine

    # --- state --------------------------------------------------------------------------------
    def initial_state(self, batch: int = 1, voice: np.ndarray | None = None) -> TorchState:
        """All zeros; a voiced model's rows carry their voice (weights: V or batch × V; None: no
        voice)."""
        st = state_tensors(self.model.init_state(batch, self.device))
        state = TorchState(st[0], st[1] if len(st) > 1 else None)
        if self._voices is not None:
            rows = bias_rows(self._voices, voice, batch)
            state.voice = torch.as_tensor(rows, device=self.device)
        elif voice is not None:
            raise InputError("this model has no voices")
        return state

    def to_numpy(self, state: TorchState) -> NumpyState:
        """The numpy engine's state layout (per layer, batch × hidden; a voice in its scale): how
        sessions store it."""
        h = [x.float().cpu().numpy().copy() for x in state.h]
        c = None if state.c is None else [x.float().cpu().numpy().copy() for x in state.c]
        v = None if state.voice is None else (state.voice * self._scale).cpu().numpy()
        return NumpyState(h, c, v)

    def from_numpy(self, state: NumpyState) -> TorchState:
        def stack(xs: list[np.ndarray]) -> torch.Tensor:
            return torch.as_tensor(np.stack(xs), dtype=torch.float32, device=self.device)

        out = TorchState(stack(state.h), None if state.c is None else stack(state.c))
        if self._voices is not None:  # a state kept before voices has none
            v = state.voice
            out.voice = (
                torch.as_tensor(v, device=self.device) / self._scale
                if v is not None
                else torch.as_tensor(bias_rows(self._voices, None, out.batch), device=self.device)
            )
        return out

    @torch.inference_mode()
    def head_logits(self, state: TorchState) -> np.ndarray:
        """The logits a state predicts (batch × vocab): a stream resumed from a saved state."""
        return self.model.head(state.h[-1]).float().cpu().numpy()

    # --- one character per stream -------------------------------------------------------------
    @torch.inference_mode()
    def step(self, ids: Sequence[int] | np.ndarray, state: TorchState) -> np.ndarray:
        """Advance every stream by its character; returns logits (batch × vocab). Updates `state`."""
        self.fast.set_state(state.module_state())
        ids_t = torch.as_tensor(np.asarray(ids, dtype=np.int64), device=self.device)
        out = self.fast(ids_t, state.voice)
        state.h = torch.stack(self.fast.h)
        if state.c is not None:
            state.c = torch.stack(self.fast.c)
        return out.float().cpu().numpy()

    # --- a whole sequence on one stream -------------------------------------------------------
    def forward(
        self,
        ids: Sequence[int] | np.ndarray,
        state: TorchState | None = None,
        *,
        last_only: bool = False,
        keep_states: bool = False,
    ) -> Forward[TorchState]:
        """Logits for a sequence on one stream and the state after it (the given state is not
        changed); keep_states: every layer's hidden (and cell) state per position too."""
        steps = self.forward_steps(
            ids, state, last_only=last_only, keep_states=keep_states, every=PRIME_CHUNK
        )
        return run_to_end(steps)

    def forward_steps(
        self,
        ids: Sequence[int] | np.ndarray,
        state: TorchState | None = None,
        *,
        last_only: bool = False,
        keep_states: bool = False,
        every: int = 64,
    ) -> Generator[None, None, Forward[TorchState]]:
        """`forward` as slices of `every` characters (one fused call each), pausing between
        slices; returns the Forward."""
        state = state if state is not None else self.initial_state(1)
        if state.batch != 1:
            raise InputError("forward runs one stream; use step for a batch")
        seq = torch.as_tensor(np.asarray(ids, dtype=np.int64), device=self.device).reshape(1, -1)
        n, size = seq.shape[1], min(every, PRIME_CHUNK) if every > 0 else PRIME_CHUNK
        mod: State = state.module_state()
        logits: list[np.ndarray] = []
        hidden: list[list[np.ndarray]] = [[] for _ in range(self.cfg.layers)]
        cells: list[list[np.ndarray]] = [[] for _ in range(self.cfg.layers)]
        for start in range(0, n, size):
            last = start + size >= n
            with torch.inference_mode():
                chunk = seq[:, start : start + size]
                if keep_states:
                    out, mod = self._by_layer(chunk, mod, hidden, cells, state.voice)
                elif state.voice is not None:
                    out, mod = self._voiced(chunk, mod, state.voice)
                else:
                    out, mod = self.model(chunk, mod)
                if not last_only or last:
                    top = out[0, -1:] if last_only else out[0]
                    logits.append(top.float().cpu().numpy())
            if not last:
                yield
        ts = state_tensors(mod)
        voice = None if state.voice is None else state.voice.clone()
        final = TorchState(ts[0], ts[1] if len(ts) > 1 else None, voice)
        fwd = Forward(
            np.concatenate(logits) if logits else np.empty((0, self.vocab.size), np.float32),
            final if n else state.copy(),
        )
        if keep_states:
            empty = np.empty((0, self.cfg.hidden), np.float32)
            fwd.hidden = [np.concatenate(h) if h else empty.copy() for h in hidden]
            if self.cell == "lstm":
                fwd.cells = [np.concatenate(c) if c else empty.copy() for c in cells]
        return fwd

    def _voiced_params(self, voice: torch.Tensor, layers: int) -> list[torch.Tensor]:
        """The fused kernel's weights for the first `layers` layers of a voiced model reading
        characters alone: layer 0's character columns, its voice constant folded into its input
        bias (one stream, so one constant)."""
        flat = [p.detach().float() for p in self.model.rnn._flat_weights[: 4 * layers]]
        flat[0], flat[2] = self._w0, flat[2] + voice[0]
        return flat

    def _voiced(
        self, seq: torch.Tensor, mod: State, voice: torch.Tensor
    ) -> tuple[torch.Tensor, State]:
        """The model over one slice of one voiced stream: logits 1 × T × vocab, final state."""
        cfg, ts = self.cfg, state_tensors(mod)
        hx = (ts[0], ts[1]) if self.cell == "lstm" else ts[0]
        flat = self._voiced_params(voice, cfg.layers)
        x = self.model.embed(seq).float()
        out, *final = _FUSED[self.cell](x, hx, flat, True, cfg.layers, 0.0, False, False, True)
        return self.model.head(out), state_from_tensors(self.cell, list(final))

    def _by_layer(
        self,
        seq: torch.Tensor,
        mod: State,
        hidden: list[list[np.ndarray]],
        cells: list[list[np.ndarray]],
        voice: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, State]:
        """The model over one slice, one layer at a time (in inference mode): logits 1 × T × vocab
        and the final state; appends each layer's hidden (and cell) states per position. A voiced
        model's layer 0 runs with its voice in its input bias."""
        ts = state_tensors(mod)
        x = self.model.embed(seq).float()
        finals: list[list[torch.Tensor]] = []
        for i, layer in enumerate(self._single_layers()):
            hx = [t[i : i + 1].float().contiguous() for t in ts]
            hx_arg = (hx[0], hx[1]) if self.cell == "lstm" else hx[0]
            params = [getattr(layer, f"{p}_l0") for p in _PARAMS]
            inp = x
            if i == 0 and voice is not None:
                params = self._voiced_params(voice, 1)
                x, *new = _FUSED[self.cell](x, hx_arg, params, True, 1, 0.0, False, False, True)
            else:
                x, new = layer(x, hx_arg)
                new = state_tensors(new)
            finals.append(new)
            hidden[i].append(x[0].cpu().numpy())
            if self.cell == "lstm":
                cells[i].append(_cells(params, inp[0], x[0], hx[0][0, 0], hx[1][0, 0]))
        stacked = [torch.cat(parts) for parts in zip(*finals, strict=True)]
        return self.model.head(x), state_from_tensors(self.cell, stacked)

    def _single_layers(self) -> list[nn.RNNBase]:
        """Layer i of the model as its own one-layer fused module (weights copied once)."""
        if self._layers is None:
            rnn, cfg = self.model.rnn, self.cfg
            layers = []
            for i in range(cfg.layers):
                # built on the meta device: no random init (and no draw from torch's generator)
                layer = type(rnn)(
                    cfg.input_width if i == 0 else cfg.hidden,
                    cfg.hidden,
                    batch_first=True,
                    device="meta",
                )
                weights = {
                    f"{p}_l0": getattr(rnn, f"{p}_l{i}").detach().float().clone() for p in _PARAMS
                }
                layer.load_state_dict(weights, assign=True)
                layer.flatten_parameters()
                layers.append(layer.eval())
            self._layers = layers
        return self._layers

    def close(self) -> None:
        self._layers = None


def _cells(
    params: list[torch.Tensor],
    inp: torch.Tensor,
    out: torch.Tensor,
    h0: torch.Tensor,
    c0: torch.Tensor,
) -> np.ndarray:
    """An LSTM layer's cell state per position (T × hidden) from its input and outputs: every
    position's gates in one product (the previous output is the hidden state each reads), then
    the cell recurrence c_t = f_t c_(t-1) + i_t g_t elementwise, on the host. params: the layer's
    weight_ih, weight_hh, bias_ih, bias_hh."""
    w_ih, w_hh, b_ih, b_hh = params
    prev = torch.cat([h0[None], out[:-1]])
    gates = torch.addmm(b_ih + b_hh, inp, w_ih.T)
    gates = torch.addmm(gates, prev, w_hh.T)
    i, f, g, _ = gates.chunk(4, 1)
    forget = torch.sigmoid(f).cpu().numpy()
    write = (torch.sigmoid(i) * torch.tanh(g)).cpu().numpy()
    cs = np.empty_like(write)
    c = c0.cpu().numpy()
    for t in range(len(cs)):
        c = forget[t] * c + write[t]
        cs[t] = c
    return cs
