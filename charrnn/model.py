"""The model: embedding → stacked fused RNN (LSTM, GRU or tanh RNN) → linear head over characters.

Deliberately plain, so the cuDNN / oneDNN fused kernels do the work and checkpoints hold only standard
state_dict keys. Training-time regularisers that `nn.LSTM` lacks (weight-drop, locked dropout) call the
same fused kernel (`torch.lstm` & co., what `nn.LSTM.forward` calls) with masked weights or one layer
at a time, never a per-timestep Python cell. Inference lives in `infer` (the numpy and torch
engines), built from these weights; `load_model` builds the module a checkpoint describes.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from charrnn import checkpoint
from charrnn.checkpoint import Header
from charrnn.model_config import CELLS, Cell, ModelConfig, expected_shapes, model_config

__all__ = [
    "CELLS",
    "Cell",
    "CharRNN",
    "ModelConfig",
    "State",
    "expected_shapes",
    "load_model",
]

# A state is (h, c) for an LSTM and h alone otherwise; each is layers × batch × hidden.
State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]

# The fused multi-layer kernels behind nn.LSTM / nn.GRU / nn.RNN: (input, hx, weights, has_biases,
# layers, dropout, train, bidirectional, batch_first) → (output, *final states).
_FUSED = {"lstm": torch.lstm, "gru": torch.gru, "rnn": torch.rnn_tanh}

# On cuDNN, weights that are not views of the module's one flat buffer (a weight-drop mask, one
# layer's slice) are packed afresh on every call, and PyTorch says so with a warning about memory.
# For these regularisers that copy is the method (AWD-LSTM does the same), not a mistake a user
# can fix, so that one message is not shown.
warnings.filterwarnings("ignore", message="RNN module weights are not part of single contiguous")


# A stack this deep starts with a stronger signal between layers (`_deep_lstm_init`).
DEEP_LAYERS = 3
INTER_LAYER_GAIN = 2.0
FORGET_BIAS = 1.0


def _deep_lstm_init(rnn: nn.Module, hidden: int) -> None:
    """Start a stack of three or more LSTM layers able to pass its input up.

    At PyTorch's default init each layer hands the next a few tenths of its input's signal, so the
    top of a 3-layer stack barely depends on the text (docs/defaults.md measured 0.22 of the input's
    effect against 0.72 for two layers), and on some texts training sat at the unigram entropy for
    the whole of a short run. Doubling the weights from one layer into the next and starting the
    forget gates at 1 (Jozefowicz et al., 2015) let it learn at once; each change alone did not.
    Two-layer stacks keep PyTorch's init, so figures measured with them stand."""
    with torch.no_grad():
        for name, p in rnn.named_parameters():
            if name.startswith("weight_ih_l") and not name.endswith("_l0"):
                p.mul_(INTER_LAYER_GAIN)
            elif name.startswith("bias_ih_l"):  # the gates are stacked i, f, g, o
                p[hidden : 2 * hidden] = FORGET_BIAS


class CharRNN(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.embed)
        if cfg.voices:  # the last row is "no voice" (model_config.ModelConfig.voices)
            self.voice = nn.Embedding(cfg.voices + 1, cfg.voice_dim)
        rnn_cls = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[cfg.cell]
        self.rnn = rnn_cls(
            cfg.input_width,
            cfg.hidden,
            num_layers=cfg.layers,
            dropout=cfg.dropout if cfg.layers > 1 else 0.0,
            batch_first=True,
        )
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.hidden, cfg.vocab_size)
        if cfg.cell == "lstm" and cfg.layers >= DEEP_LAYERS:
            _deep_lstm_init(self.rnn, cfg.hidden)

    def forward(
        self, x: torch.Tensor, state: State | None = None, voice: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, State]:
        """x: batch × time ids → logits batch × time × vocab, and the final state.

        voice (a voiced model only): batch × time voice ids, `cfg.voices` meaning no voice; None
        is no voice throughout."""
        cfg = self.cfg
        inp = self._inputs(x, voice)
        if self.training and (cfg.weight_drop > 0 or (cfg.locked_dropout and cfg.dropout > 0)):
            out, state = self._regularised(
                inp, state if state is not None else self.init_state(len(x), x.device)
            )
            return self.head(self._locked(out)), state
        out, state = self.rnn(inp, state)
        return self.head(self.drop(out)), state

    def _inputs(self, x: torch.Tensor, voice: torch.Tensor | None) -> torch.Tensor:
        """Layer 0's input: the characters' embedding, and beside it the voices' at every step
        (conditioning at each step, not a prefix the model can drift away from)."""
        emb = self.embed(x)
        if not self.cfg.voices:
            if voice is not None:
                raise ValueError("a voice was given to a model without voices")
            return emb
        if voice is None:
            voice = torch.full_like(x, self.cfg.voices)
        return torch.cat([emb, self.voice(voice)], dim=-1)

    def _regularised(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """The training forward with weight-drop and/or locked dropout, through the fused kernel.

        With standard dropout the layers stay one fused call (the kernel drops between layers);
        locked dropout needs its mask between layers, so each layer is its own call."""
        cfg, names = self.cfg, self.rnn._flat_weights_names
        weights = [
            F.dropout(w, cfg.weight_drop) if "weight_hh" in n and cfg.weight_drop > 0 else w
            for n, w in zip(names, self.rnn._flat_weights, strict=True)
        ]
        fused = _FUSED[cfg.cell]
        hx = list(state) if isinstance(state, tuple) else [state]
        if not cfg.locked_dropout:
            hx_arg = tuple(hx) if cfg.cell == "lstm" else hx[0]
            out, *final = fused(
                x, hx_arg, weights, True, cfg.layers, cfg.dropout, True, False, True
            )
            return out, (final[0], final[1]) if cfg.cell == "lstm" else final[0]
        finals: list[list[torch.Tensor]] = []
        for i in range(cfg.layers):
            layer_hx = [h[i : i + 1] for h in hx]
            hx_arg = tuple(layer_hx) if cfg.cell == "lstm" else layer_hx[0]
            x = x if i == 0 else self._locked(x)
            x, *final = fused(
                x, hx_arg, weights[4 * i : 4 * i + 4], True, 1, 0.0, True, False, True
            )
            finals.append(final)
        stacked = [torch.cat(parts) for parts in zip(*finals, strict=True)]
        return x, (stacked[0], stacked[1]) if cfg.cell == "lstm" else stacked[0]

    def _locked(self, x: torch.Tensor) -> torch.Tensor:
        """Dropout with one mask per stream, shared by every time step of the window."""
        p = self.cfg.dropout
        if not self.training or p == 0:
            return x
        if not self.cfg.locked_dropout:
            return self.drop(x)
        mask = x.new_empty(x.shape[0], 1, x.shape[2]).bernoulli_(1 - p) / (1 - p)
        return x * mask

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


def load_model(header: Header, tensors: dict[str, torch.Tensor] | None = None) -> CharRNN:
    """The checkpoint's model for inference (its sampling weights: the average where there is
    one), its parameters the (read-only) loaded tensors."""
    cfg = model_config(header)
    tensors = tensors if tensors is not None else checkpoint.load_tensors(header)
    prefix = checkpoint.sampling_prefix(header)
    model = CharRNN(cfg)  # its random init is thrown away: assign=True adopts the loaded tensors
    model.load_state_dict(
        {k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)},
        assign=True,
    )
    return model.eval()
