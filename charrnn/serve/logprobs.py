"""OpenAI's `logprobs` for a character model: each character's log-probability under the model's own
distribution (before temperature and filters) and the k most likely characters there.

Computed by the batching worker as characters are drawn; shaped for the wire by `protocol`.
"""

from __future__ import annotations

import numpy as np

from charrnn.infer.logits import log_softmax
from charrnn.vocab import Vocab

# a character, its log-probability and the top k (None for a prompt's first character)
LogprobEntry = tuple[str, float | None, dict[str, float] | None]


def entry(logits: np.ndarray | None, ch: int, k: int, chars: tuple[str, ...]) -> LogprobEntry:
    """The model's own log-probability of ch and its top k (ties in vocabulary order)."""
    if logits is None:
        return (chars[ch], None, None)
    lp = log_softmax(np.asarray(logits, dtype=np.float64))
    top = np.argsort(-lp, kind="stable")[:k] if k else []
    return (chars[ch], float(lp[ch]), {chars[j]: float(lp[j]) for j in top})


def prompt_logprobs(
    vocab: Vocab, prompt: str, logits: np.ndarray | None, k: int
) -> list[LogprobEntry]:
    """echo with logprobs: each prompt character under the model given the ones before it
    (`logits` row t predicts the prompt's known character t + 1). The first has none, as in
    OpenAI's API, nor have characters the model does not know (they were skipped)."""
    out: list[LogprobEntry] = []
    t = 0  # index into the prompt's known characters
    for c in prompt:
        if c not in vocab or t == 0 or logits is None:
            out.append((c, None, None))
        else:
            out.append(entry(logits[t - 1], vocab.index(c), k, vocab.chars))
        t += c in vocab
    return out
