"""Evaluation: the mean loss of a model over a whole split, carrying state as training does, and the
unigram entropy that tells what "learned nothing" scores.

Deterministic and independent of batch size and world size: a fixed number of contiguous streams,
shared round-robin by the ranks, so every figure is comparable across runs. It does not train or save.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from charrnn.model import CharRNN, state_from_tensors, state_tensors
from charrnn.training import distributed

EVAL_STREAMS = 32
EVAL_SEQ = 256


def unigram_entropy(counts: list[int]) -> float:
    """Entropy in nats/char of the character frequencies: the loss of a model that learned nothing."""
    c = np.asarray(counts, dtype=np.float64)
    p = c[c > 0] / c.sum()
    return float(-(p * np.log(p)).sum())


@torch.no_grad()
def evaluate(
    model: CharRNN,
    ids: np.ndarray,
    device: torch.device,
    world: distributed.World,
    voice: int | None = None,
) -> tuple[float, int]:
    """Mean loss over the whole of `ids`, carrying state: EVAL_STREAMS contiguous streams shared
    round-robin by the ranks, the last one continuing into the remainder. Returns (loss, count).
    `voice`: a voiced model reads the text as that voice throughout."""

    def run(x: torch.Tensor, state):
        if voice is None:
            return model(x, state)
        return model(x, state, torch.full_like(x, voice))

    n = len(ids) - 1
    streams = min(EVAL_STREAMS, n)
    length = n // streams
    rows = np.arange(world.rank, streams, world.size)
    total = torch.zeros((), dtype=torch.float64, device=device)
    was_training = model.training
    model.eval()
    state = None
    for t in range(0, length, EVAL_SEQ):
        s = min(EVAL_SEQ, length - t)
        idx = rows[:, None] * length + t + np.arange(s + 1)[None, :]
        w = torch.from_numpy(np.asarray(ids[idx], dtype=np.int64)).to(device)
        logits, state = run(w[:, :-1], state)
        total += F.cross_entropy(logits.flatten(0, 1).float(), w[:, 1:].flatten(), reduction="sum")
    tail = n - streams * length
    owns_tail = bool(rows.size) and rows[-1] == streams - 1
    if tail and owns_tail:
        w = torch.from_numpy(np.asarray(ids[streams * length :], dtype=np.int64)).to(device)[None]
        last = [s[:, -1:].contiguous() for s in state_tensors(state)] if state is not None else None
        logits, _ = run(w[:, :-1], state_from_tensors(model.cfg.cell, last) if last else None)
        total += F.cross_entropy(logits.flatten(0, 1).float(), w[:, 1:].flatten(), reduction="sum")
    model.train(was_training)
    count = len(rows) * length + (tail if owns_tail else 0)
    loss_sum, count_all = distributed.all_sum(world, [total.item(), float(count)], device)
    return loss_sum / max(count_all, 1.0), int(count_all)


def evaluate_voices(
    model: CharRNN,
    ids: np.ndarray,
    chars: list[int],
    eval_chars: int,
    device: torch.device,
    world: distributed.World,
) -> tuple[float, list[float | None]]:
    """Each voice's loss on up to eval_chars / V characters of its own validation text (`chars`:
    each voice's size; the split holds the voices' parts in order), each from a fresh state with
    its voice (a model without voices, the --no-condition baseline, reads them unvoiced); and
    their unweighted mean, so a large voice does not stand for the rest. None: a voice with no
    prediction to score."""
    conditioned = model.cfg.voices > 0
    losses: list[float | None] = []
    present = sum(1 for n in chars if n > 1)  # (a fine-tuned model's voice may have none here)
    start, per = 0, max(1, eval_chars // max(1, present))
    for v, n in enumerate(chars):
        part = ids[start : start + min(n, per + 1)]
        start += n
        if len(part) < 2:
            losses.append(None)
            continue
        losses.append(evaluate(model, part, device, world, v if conditioned else None)[0])
    known = [x for x in losses if x is not None]
    return (sum(known) / len(known) if known else float("inf")), losses
