"""Dynamic evaluation: score a text while the model keeps learning from what it has just read.

The text is read in segments as one stream (state carried, as in `score`); each segment is first
scored with the current weights, then the weights take one plain gradient step on that segment's loss
before the next is read (Krause et al., "Dynamic Evaluation of Neural Sequence Models", the SGD form;
`decay` optionally pulls the weights back toward the trained ones each step). Only characters
predicted before the model learned from them count, so the figure is an honest prediction score of an
adapting model: what it measures is how much a model gains by adapting to a text's own style, names
and repetitions. It needs gradients, so it uses torch; the checkpoint is read, never written.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from charrnn import checkpoint
from charrnn.checkpoint import Header
from charrnn.model import detach_state, load_model

SEGMENT = 50  # characters per segment: one gradient step after each
# Chosen on the first 20,000 characters of tiny-shakespeare's validation text with the 10-minute
# model (plain 1.3363 nats/char): lr 0.02 → 1.3288, 0.1 → 1.3097, 0.2 → 1.2952, 0.4 → 1.2769,
# 0.8 → 1.2791 (decay 0.01); segments of 25 and 100 did no better than 50.
LR = 0.4  # SGD step on the segment's mean loss
DECAY = 0.0  # per step, the share of the way back to the trained weights (0.01 cost 0.005 here)


def dynamic_nats(
    header: Header,
    ids: np.ndarray,
    start_id: int | None,
    first_logprobs: np.ndarray,
    lr: float = LR,
    segment: int = SEGMENT,
    decay: float = DECAY,
) -> float:
    """Total surprisal (nats) of `ids` under dynamic evaluation. The first character is predicted
    as `score` predicts it: after `start_id` (a newline) when given, else by `first_logprobs`."""
    torch.manual_seed(0)
    tensors = {k: v.clone().float() for k, v in checkpoint.load_tensors(header).items()}
    model = load_model(header, tensors)
    model.eval()  # no dropout: the same function `score` computes, now with changing weights
    params = [p for p in model.parameters()]
    for p in params:
        p.requires_grad_(True)
    trained = [p.detach().clone() for p in params]
    x = torch.as_tensor(np.asarray(ids, dtype=np.int64))
    if start_id is None:
        total = float(-first_logprobs[int(x[0])]) if len(x) else 0.0
        inputs, targets = x[:-1], x[1:]
    else:
        total = 0.0
        inputs, targets = torch.cat([torch.tensor([start_id]), x[:-1]]), x
    state = None
    for a in range(0, len(targets), segment):
        inp, tgt = inputs[a : a + segment][None], targets[a : a + segment]
        logits, state = model(inp, state)
        loss = F.cross_entropy(logits[0].float(), tgt, reduction="sum")
        total += float(loss.detach())
        grads = torch.autograd.grad(loss / len(tgt), params)
        with torch.no_grad():
            for p, g, p0 in zip(params, grads, trained, strict=True):
                p.sub_(lr * g).add_(decay * (p0 - p))
        state = detach_state(state)
    return total
