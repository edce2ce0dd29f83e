"""The model: embedding → stacked fused RNN (LSTM, GRU or tanh RNN) → linear head over characters.

Deliberately plain, so the cuDNN / oneDNN fused kernels do the work and checkpoints hold only standard
state_dict keys. Fast single-character inference lives in `sampler`, built from these weights.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Literal

import torch
from torch import nn

from charrnn.errors import InputError

Cell = Literal["lstm", "gru", "rnn"]
CELLS: tuple[str, ...] = ("lstm", "gru", "rnn")
# A state is (h, c) for an LSTM and h alone otherwise; each is layers × batch × hidden.
State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    cell: str = "lstm"
    layers: int = 2
    hidden: int = 512
    embed: int = 64
    dropout: float = 0.3

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise InputError(f"unknown cell {self.cell!r}; choose one of {', '.join(CELLS)}")
        for name in ("vocab_size", "layers", "hidden", "embed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError(f"model {name} must be a positive integer, got {value!r}")
        if not isinstance(self.dropout, int | float) or not 0 <= self.dropout < 1:
            raise InputError(f"dropout must be in [0, 1), got {self.dropout!r}")

    @classmethod
    def from_dict(cls, d: object) -> ModelConfig:
        """Rebuild from checkpoint JSON, rejecting unknown or missing fields."""
        if not isinstance(d, dict):
            raise InputError("model config must be a JSON object")
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise InputError(f"model config has unknown fields: {', '.join(sorted(unknown))}")
        if "vocab_size" not in d:
            raise InputError("model config lacks vocab_size")
        return cls(**d)

    def to_dict(self) -> dict:
        return asdict(self)


class CharRNN(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.embed)
        rnn_cls = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[cfg.cell]
        self.rnn = rnn_cls(
            cfg.embed,
            cfg.hidden,
            num_layers=cfg.layers,
            dropout=cfg.dropout if cfg.layers > 1 else 0.0,
            batch_first=True,
        )
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.hidden, cfg.vocab_size)

    def forward(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """x: batch × time ids → logits batch × time × vocab, and the final state."""
        out, state = self.rnn(self.embed(x), state)
        return self.head(self.drop(out)), state

    def init_state(self, batch: int, device: torch.device | str = "cpu") -> State:
        h = torch.zeros(self.cfg.layers, batch, self.cfg.hidden, device=device)
        return (h, torch.zeros_like(h)) if self.cfg.cell == "lstm" else h


def expected_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """The state_dict shapes of CharRNN(cfg), computed without building it (so a checkpoint can be
    checked before anything is allocated, and without touching torch's meta-device machinery)."""
    gates = {"lstm": 4, "gru": 3, "rnn": 1}[cfg.cell] * cfg.hidden
    shapes: dict[str, tuple[int, ...]] = {"embed.weight": (cfg.vocab_size, cfg.embed)}
    for i in range(cfg.layers):
        shapes[f"rnn.weight_ih_l{i}"] = (gates, cfg.embed if i == 0 else cfg.hidden)
        shapes[f"rnn.weight_hh_l{i}"] = (gates, cfg.hidden)
        shapes[f"rnn.bias_ih_l{i}"] = (gates,)
        shapes[f"rnn.bias_hh_l{i}"] = (gates,)
    shapes["head.weight"] = (cfg.vocab_size, cfg.hidden)
    shapes["head.bias"] = (cfg.vocab_size,)
    return shapes


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def detach_state(state: State) -> State:
    """Cut the graph at a batch boundary: truncated BPTT keeps the values, not the history."""
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)  # type: ignore[return-value]
    return state.detach()


def state_tensors(state: State) -> list[torch.Tensor]:
    return list(state) if isinstance(state, tuple) else [state]


def state_from_tensors(cell: str, tensors: list[torch.Tensor]) -> State:
    return (tensors[0], tensors[1]) if cell == "lstm" else tensors[0]


def configure_adamw(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only: decaying biases and gains only hurts."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": rest, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.99))
