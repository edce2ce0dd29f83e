"""The torch inference path, for `--device cuda` (and mps): the same interface as the numpy `Engine`
(`initial_state`, `step`, `forward`, states with `select`), with logits handed back as numpy arrays so
the sampling policies are shared. A prime runs through the fused `nn.LSTM`/`nn.GRU`; each further
character through a hand-fused step (the first layer's input as a vocab × gates table, one product
per layer, no autograd). The CPU default is the numpy engine; this path is for GPUs. Unlike the numpy
engine its batched products may round a stream differently depending on the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from charrnn import checkpoint
from charrnn.infer.numpy_engine import Forward
from charrnn.infer.numpy_engine import State as NumpyState
from charrnn.model import CharRNN, State, load_model, state_tensors
from charrnn.vocab import Vocab

PRIME_CHUNK = 4096


@dataclass
class TorchState:
    """h (and c) as layers × batch × hidden tensors on the device."""

    h: torch.Tensor
    c: torch.Tensor | None = None

    @property
    def batch(self) -> int:
        return self.h.shape[1]

    def select(self, rows: Sequence[int] | np.ndarray) -> TorchState:
        idx = torch.as_tensor(np.asarray(rows, dtype=np.int64), device=self.h.device)
        return TorchState(self.h[:, idx], None if self.c is None else self.c[:, idx])

    def copy(self) -> TorchState:
        return TorchState(self.h.clone(), None if self.c is None else self.c.clone())

    def module_state(self) -> State:
        return (self.h, self.c) if self.c is not None else self.h

    @staticmethod
    def concat(states: Sequence[TorchState]) -> TorchState:
        """One state holding the rows of these states in order (streams joining a batch)."""
        h = torch.cat([s.h for s in states], dim=1)
        c = None if states[0].c is None else torch.cat([s.c for s in states], dim=1)  # type: ignore[misc]
        return TorchState(h, c)


class _FastStep:
    """Advance a batch of streams by one character: ids (B,) → logits (B, vocab)."""

    def __init__(self, model: CharRNN) -> None:
        cfg = model.cfg
        self.cell, self.layers, self.hidden = cfg.cell, cfg.layers, cfg.hidden
        rnn = model.rnn
        with torch.inference_mode():
            w = {k: v.detach().float() for k, v in rnn.named_parameters()}
            emb = model.embed.weight.detach().float()
            self.table = emb @ w["weight_ih_l0"].T + w["bias_ih_l0"]  # vocab × gates
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
    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.table[ids]
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
    """A checkpoint's model on a torch device, stepping streams like `Engine`."""

    def __init__(self, model: CharRNN, vocab: Vocab, device: str) -> None:
        self.model, self.vocab, self.device = model.to(device).eval(), vocab, torch.device(device)
        self.cfg, self.cell = model.cfg, model.cfg.cell
        self.fast = _FastStep(self.model)
        self.header: checkpoint.Header | None = None

    @classmethod
    def load(cls, path, device: str) -> TorchEngine:
        header = checkpoint.read_header(path)
        vocab = Vocab.from_json(header.meta["vocab"], header.meta["vocab_counts"] or None)
        engine = cls(load_model(header), vocab, device)
        engine.header = header
        return engine

    @torch.inference_mode()
    def head_logits(self, state: TorchState) -> np.ndarray:
        """The logits a state predicts (batch × vocab): a stream resumed from a saved state."""
        return self.model.head(state.h[-1]).float().cpu().numpy()

    def to_numpy(self, state: TorchState) -> NumpyState:
        """The numpy engine's state layout (per layer, batch × hidden): how sessions store it."""
        h = [x.float().cpu().numpy() for x in state.h]
        c = None if state.c is None else [x.float().cpu().numpy() for x in state.c]
        return NumpyState(h, c)

    def from_numpy(self, state: NumpyState) -> TorchState:
        def stack(xs: list[np.ndarray]) -> torch.Tensor:
            return torch.as_tensor(np.stack(xs), device=self.device)

        return TorchState(stack(state.h), None if state.c is None else stack(state.c))

    def initial_state(self, batch: int = 1) -> TorchState:
        st = state_tensors(self.model.init_state(batch, self.device))
        return TorchState(st[0], st[1] if len(st) > 1 else None)

    @torch.inference_mode()
    def forward(
        self,
        ids,
        state: TorchState | None = None,
        *,
        last_only: bool = False,
    ) -> Forward:
        """Logits for a sequence on one stream and the state after it (priming; per-position
        states are the numpy engine's job)."""
        state = state or self.initial_state(1)
        seq = torch.as_tensor(np.asarray(ids, dtype=np.int64), device=self.device)[None]
        mod: State = state.module_state()
        outs = []
        for start in range(0, seq.shape[1], PRIME_CHUNK):
            out, mod = self.model(seq[:, start : start + PRIME_CHUNK], mod)
            outs.append(out[0, -1:] if last_only else out[0])
        ts = state_tensors(mod)
        logits = torch.cat(outs).float().cpu().numpy() if outs else np.empty((0, self.vocab.size))
        return Forward(logits, TorchState(ts[0], ts[1] if len(ts) > 1 else None))

    @torch.inference_mode()
    def step(self, ids, state: TorchState) -> np.ndarray:
        self.fast.set_state(state.module_state())
        out = self.fast(torch.as_tensor(np.asarray(ids, dtype=np.int64), device=self.device))
        state.h = torch.stack(self.fast.h)
        if state.c is not None:
            state.c = torch.stack(self.fast.c)
        return out.float().cpu().numpy()
