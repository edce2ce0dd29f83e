"""The training state in a checkpoint: weights, optimizer, grad scaler and carried hidden states packed
into named tensors and back, and the metadata sections that describe the run.

Tensor names: `model.<state_dict key>` (never DDP's `module.` prefix), `optim.<param index>.<name>`
(AdamW's step / exp_avg / exp_avg_sq), `carry.<j>` (the hidden state carried between batches, all
streams of all ranks, float32). The container (header validation, atomic writes) is `checkpoint`;
the model for inference is `model.load_model`.
"""

from __future__ import annotations

import torch

from charrnn import checkpoint
from charrnn.checkpoint import Header
from charrnn.errors import InputError
from charrnn.model import CharRNN, ModelConfig, State, state_from_tensors
from charrnn.model_config import model_config
from charrnn.training.averaging import PREFIX, Averaged
from charrnn.training.config import TrainConfig
from charrnn.vocab import Vocab


def pack(
    model: CharRNN, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, carry: list
) -> tuple[dict[str, torch.Tensor], dict]:
    """The tensors of a resumable checkpoint and the `optim` metadata section."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    osd = optimizer.state_dict()
    for i, st in osd["state"].items():
        tensors.update({f"optim.{i}.{k}": v for k, v in st.items() if torch.is_tensor(v)})
    tensors.update({f"carry.{j}": c for j, c in enumerate(carry)})
    optim = {"class": type(optimizer).__name__, "param_groups": osd["param_groups"]}
    if scaler.is_enabled():
        optim["scaler"] = scaler.state_dict()
    return tensors, optim


def restore(
    header: Header,
    model: CharRNN,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    rows: slice,
    device: torch.device,
    average: Averaged | None = None,
) -> State | None:
    """Load weights, optimizer and scaler state (and the weight average) in place; return this
    rank's carried state."""
    model_config(header)  # shapes checked before anything is copied
    tensors = checkpoint.load_tensors(header)
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    if average is not None and not average.load(tensors):
        average.load({PREFIX + k: v for k, v in model.state_dict().items()})
    state: dict[int, dict] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, i, name = k.split(".", 2)
            state.setdefault(int(i), {})[name] = v.clone()
    optim = header.meta["optim"]
    groups = [{**g, "betas": tuple(g["betas"])} for g in optim.get("param_groups", [])]
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError, TypeError) as e:
        raise InputError(f"{header.path}: optimizer state does not fit the model ({e})") from None
    if "scaler" in optim:
        scaler.load_state_dict(optim["scaler"])
    carry = [tensors[f"carry.{j}"][:, rows].to(device) for j in range(2) if f"carry.{j}" in tensors]
    return state_from_tensors(model.cfg.cell, carry) if carry else None


def metadata(
    model_cfg: ModelConfig, cfg: TrainConfig, vocab: Vocab, corpus: dict, state: dict, optim: dict
) -> dict:
    """The checkpoint's JSON metadata sections that describe the run (docs/formats.md);
    the trainer adds its history and parameter count, and `init_from` for a fine-tuned run."""
    return {
        "model": model_cfg.to_dict(),
        "train": cfg.to_dict(),
        "vocab": vocab.to_json(),
        "vocab_counts": list(vocab.counts or []),
        "corpus": corpus,
        "state": state,
        "optim": optim,
        "versions": {"torch": torch.__version__},
    }
