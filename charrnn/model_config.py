"""What a model is, in numbers: its configuration, the tensor shapes that configuration implies, and the
check of a checkpoint's tensors against it.

Torch-free on purpose: `inspect`, the numpy inference engine and `charrnn sample` on CPU read models
without importing torch. Building the `nn.Module` is `model`'s job.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Literal

from charrnn.errors import InputError

if TYPE_CHECKING:
    from charrnn.checkpoint import Header

Cell = Literal["lstm", "gru", "rnn"]
CELLS: tuple[str, ...] = ("lstm", "gru", "rnn")


# The default weight-drop by cell (docs/defaults.md).
WEIGHT_DROP = {"lstm": 0.2, "gru": 0.0, "rnn": 0.0}


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    cell: str = "lstm"
    layers: int = 2
    hidden: int = 512
    embed: int = 64
    dropout: float = 0.3
    # DropConnect on the recurrent matrices (AWD-LSTM's weight-drop): a fraction of weight_hh's
    # entries zeroed for a whole training step, the same for every stream and time step. None: the
    # cell's default, WEIGHT_DROP (measured for the LSTM; for the GRU the masked weights cost more
    # than a third of the bf16 training speed on the development CPU, so it is off there).
    weight_drop: float | None = None
    # Variational dropout: one mask per stream for the whole step (not one per character) between
    # layers and before the head, so a unit dropped at t is dropped at every t of the window.
    locked_dropout: bool = True
    # Voices (docs/training.md#voices): how many named voices the model is conditioned on (0: none)
    # and the width of their learned embedding, concatenated to the character embedding at layer 0.
    # The embedding has voices + 1 rows: the last is "no voice", what the model sees for windows
    # trained without their voice and what it is given when no voice is asked for.
    voices: int = 0
    voice_dim: int = 0

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise InputError(f"unknown cell {self.cell!r}; choose one of {', '.join(CELLS)}")
        for name in ("vocab_size", "layers", "hidden", "embed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError(f"model {name} must be a positive integer, got {value!r}")
        if not isinstance(self.dropout, int | float) or not 0 <= self.dropout < 1:
            raise InputError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if self.weight_drop is None:
            object.__setattr__(self, "weight_drop", WEIGHT_DROP.get(self.cell, 0.0))
        if not isinstance(self.weight_drop, int | float) or not 0 <= self.weight_drop < 1:
            raise InputError(f"weight-drop must be in [0, 1), got {self.weight_drop!r}")
        for name in ("voices", "voice_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise InputError(f"model {name} must be a non-negative integer, got {value!r}")
        if (self.voices == 0) != (self.voice_dim == 0):
            raise InputError("model voices and voice_dim must both be 0 or both positive")
        if not isinstance(self.locked_dropout, bool):
            raise InputError(f"locked-dropout must be true or false, got {self.locked_dropout!r}")

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
        # a checkpoint from before these regularisers was trained without them: so it continues
        return cls(**{"weight_drop": 0.0, "locked_dropout": False, **d})

    def to_dict(self) -> dict:
        """The JSON form; an unvoiced model's has no voice fields, so it reads as before voices."""
        d = asdict(self)
        if not self.voices:
            del d["voices"], d["voice_dim"]
        return d

    @property
    def input_width(self) -> int:
        """Layer 0's input: the character embedding, then the voice embedding where there is one."""
        return self.embed + self.voice_dim


def expected_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """The state_dict shapes of CharRNN(cfg), computed without building it (so a checkpoint can be
    checked before anything is allocated, and without touching torch's meta-device machinery)."""
    gates = {"lstm": 4, "gru": 3, "rnn": 1}[cfg.cell] * cfg.hidden
    shapes: dict[str, tuple[int, ...]] = {"embed.weight": (cfg.vocab_size, cfg.embed)}
    if cfg.voices:
        shapes["voice.weight"] = (cfg.voices + 1, cfg.voice_dim)
    for i in range(cfg.layers):
        shapes[f"rnn.weight_ih_l{i}"] = (gates, cfg.input_width if i == 0 else cfg.hidden)
        shapes[f"rnn.weight_hh_l{i}"] = (gates, cfg.hidden)
        shapes[f"rnn.bias_ih_l{i}"] = (gates,)
        shapes[f"rnn.bias_hh_l{i}"] = (gates,)
    shapes["head.weight"] = (cfg.vocab_size, cfg.hidden)
    shapes["head.bias"] = (cfg.vocab_size,)
    return shapes


def model_config(header: Header) -> ModelConfig:
    """The model a checkpoint describes, checked against its tensor shapes without allocating."""
    cfg = ModelConfig.from_dict(header.meta["model"])
    if cfg.vocab_size != len(header.meta["vocab"]):
        raise InputError(
            f"{header.path}: corrupt checkpoint (vocabulary size disagrees with model)"
        )
    from charrnn.checkpoint import AVERAGE, has_average

    prefixes = ["model."] + ([AVERAGE] if has_average(header) else [])
    for prefix in prefixes:  # the raw weights, and the average where the file has one
        expected = {f"{prefix}{k}": v for k, v in expected_shapes(cfg).items()}
        found = {k: v.shape for k, v in header.tensors.items() if k.startswith(prefix)}
        if found != expected:
            diff = sorted(set(found.items()) ^ set(expected.items()))[:1]
            what = f": {diff[0][0]}" if diff else ""
            raise InputError(
                f"{header.path}: corrupt checkpoint (tensors disagree with config{what})"
            )
    return cfg
