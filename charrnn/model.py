"""The model: embedding → stacked fused RNN (LSTM, GRU or tanh RNN) → linear head over characters.

Deliberately plain, so the cuDNN / oneDNN fused kernels do the work and checkpoints hold only standard
state_dict keys. Inference lives in `engine` (numpy, CPU) and `engine_torch` (GPU), built from these weights.
"""

from __future__ import annotations

import torch
from torch import nn

from charrnn.architecture import CELLS, Cell, ModelConfig, expected_shapes

__all__ = [
    "CELLS",
    "Cell",
    "CharRNN",
    "ModelConfig",
    "State",
    "expected_shapes",
]

# A state is (h, c) for an LSTM and h alone otherwise; each is layers × batch × hidden.
State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


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
