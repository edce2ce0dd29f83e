"""The next-character distribution: every adjustment of a model's logits, in one documented order, and
the draw. The CLI, the Python API, beam search and the server all call these functions, so the same
options give the same text everywhere.

Order: (0) the logit bias is added and the repetition penalties subtracted (OpenAI's
`logit_bias`, `frequency_penalty` and `presence_penalty`, on characters: `shift_rows`); (1) masks
(characters that `--ban`, `--no-repeat`, `--until` or a record's rules forbid) are
removed; (2) temperature scales what is left (0 means greedy: only the most likely remains); (3)
top-k keeps the k most likely; (4) top-p keeps the smallest set of most likely characters whose
probability reaches p; (5) min-p keeps those at least p × the most likely one's probability. The most
likely allowed character always survives (3)–(5). Work is in float64, row by row (a batch's rows
go through together, but no operation mixes rows), so a stream's draw never depends on the other
streams of a batch. It knows nothing of models or text.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from charrnn.errors import InputError

NEG_INF = -np.inf
PENALTY_MAX = 2.0  # OpenAI's range for frequency_penalty and presence_penalty
BIAS_MAX = 100.0  # and for logit_bias


@dataclass(frozen=True)
class Filters:
    """The drawing options: temperature and the truncations applied after it."""

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    min_p: float | None = None
    # Step (0): per character, count × frequency + (count > 0) × presence is subtracted, counts
    # over the text generated so far; logit_bias holds (id, bias) pairs added to the logits.
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    logit_bias: tuple[tuple[int, float], ...] = ()

    @property
    def shifts(self) -> bool:
        """Whether step (0) changes anything."""
        return bool(self.frequency_penalty or self.presence_penalty or self.logit_bias)

    def check(self) -> None:
        """One-line errors naming the flag, before anything slow happens."""
        for name in ("frequency_penalty", "presence_penalty"):
            v = getattr(self, name)
            if not -PENALTY_MAX <= v <= PENALTY_MAX:  # also rejects NaN
                raise InputError(f"--{name.replace('_', '-')} must be in [-2, 2], got {v}")
        for _, bias in self.logit_bias:
            if not -BIAS_MAX <= bias <= BIAS_MAX:
                raise InputError(f"--logit-bias must be in [-100, 100], got {bias}")
        if not self.temperature >= 0:  # also rejects NaN
            raise InputError(f"--temp must be >= 0 (0 = greedy), got {self.temperature}")
        if self.top_k is not None and self.top_k < 0:
            raise InputError(f"--top-k must be >= 0 (0 = off), got {self.top_k}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise InputError(f"--top-p must be in (0, 1], got {self.top_p}")
        if self.min_p is not None and not 0 <= self.min_p <= 1:
            raise InputError(f"--min-p must be in [0, 1], got {self.min_p}")


def shift_rows(
    logits: np.ndarray, filters: Filters, counts: list[dict[int, int]] | None = None
) -> np.ndarray:
    """Step (0) on a (streams × vocab) array: the bias added, then each row's penalties for the
    characters its stream has written (`counts[row]`: id → times). float64; rows stay apart."""
    x = np.array(logits, dtype=np.float64, ndmin=2)
    for cid, bias in filters.logit_bias:
        x[:, cid] += bias
    fp, pp = filters.frequency_penalty, filters.presence_penalty
    if (fp or pp) and counts:
        for row, seen in enumerate(counts):
            if seen:
                ids = np.fromiter(seen.keys(), dtype=np.intp, count=len(seen))
                n = np.fromiter(seen.values(), dtype=np.float64, count=len(seen))
                x[row, ids] -= n * fp + pp
    return x


def adjust(logits: np.ndarray, filters: Filters, banned: np.ndarray | None = None) -> np.ndarray:
    """Steps (1)–(5) on one row of logits: float64 log-weights, -inf where excluded."""
    rows = None if banned is None else np.asarray(banned)[None]
    return adjust_rows(np.asarray(logits)[None], filters, rows)[0]


def adjust_rows(
    logits: np.ndarray, filters: Filters, banned: np.ndarray | None = None
) -> np.ndarray:
    """Steps (1)–(5) on a (streams × vocab) array, each row on its own: every operation is
    elementwise or runs along a row, so a row's result is the same in any batch (the batch is only
    there to pay numpy's per-call cost once per step instead of once per stream)."""
    x = np.array(logits, dtype=np.float64, ndmin=2)
    if banned is not None:
        x[banned] = NEG_INF
    alive = np.isfinite(x).any(axis=1)
    if not alive.all():
        x[~alive] = NEG_INF
        if not alive.any():
            return x
    rows = np.arange(len(x))
    best = np.argmax(np.where(alive[:, None], x, 0.0), axis=1)
    if filters.temperature == 0:
        out = np.full_like(x, NEG_INF)
        out[rows[alive], best[alive]] = 0.0
        return out
    top_k = filters.top_k
    if top_k and top_k < x.shape[1]:  # chosen on the raw logits: no rounding ties after scaling
        cut = np.partition(x, -top_k, axis=1)[:, -top_k]
        x = np.where(x >= cut[:, None], x, NEG_INF)
    with np.errstate(invalid="ignore"):  # dead rows: -inf - -inf; they stay all -inf below
        x = (x - x[rows, best][:, None]) / max(filters.temperature, np.finfo(np.float64).tiny)
    x[~alive] = NEG_INF
    if filters.top_p is not None and filters.top_p < 1:
        p = np.exp(x)
        order = np.argsort(-x, axis=1, kind="stable")
        ranked = np.take_along_axis(p, order, axis=1)
        total = p.sum(axis=1, keepdims=True)
        before = np.cumsum(ranked, axis=1) / total - ranked / total  # mass strictly more likely
        drop = np.zeros_like(x, dtype=bool)
        np.put_along_axis(drop, order, before >= filters.top_p, axis=1)
        x[drop] = NEG_INF
    if filters.min_p:
        x[x < np.log(filters.min_p)] = NEG_INF  # x is log(p / p_best)
    x[rows[alive], best[alive]] = 0.0  # the most likely always stays (top_p may round it away)
    return x


def probabilities(adjusted: np.ndarray) -> np.ndarray | None:
    """Normalised probabilities of one row, or None when nothing is allowed."""
    p = probabilities_rows(np.asarray(adjusted)[None])[0]
    return None if np.isnan(p[0]) else p


def probabilities_rows(adjusted: np.ndarray) -> np.ndarray:
    """Normalised probabilities per row; a row where nothing is allowed is all NaN."""
    finite = np.isfinite(adjusted)
    top = np.max(np.where(finite, adjusted, NEG_INF), axis=1, keepdims=True)
    with np.errstate(invalid="ignore"):
        p = np.where(finite, np.exp(adjusted - top), 0.0)
        return p / p.sum(axis=1, keepdims=True)


def draw(probs: np.ndarray, u: float) -> int:
    """The character whose cumulative-probability interval holds u ∈ [0, 1): inverse-CDF sampling,
    deterministic for a given u and never a character of probability 0."""
    return int(draw_rows(np.asarray(probs)[None], np.array([u]))[0])


def draw_rows(probs: np.ndarray, u: np.ndarray) -> np.ndarray:
    """draw() for every row at once (row r with u[r]); rows must have some probability."""
    cdf = np.cumsum(probs, axis=1)
    target = u * cdf[:, -1]
    picks = np.minimum((cdf <= target[:, None]).sum(axis=1), probs.shape[1] - 1)
    rows = np.arange(len(picks))
    for r in np.flatnonzero(probs[rows, picks] == 0):  # landed on the last boundary: step back
        while probs[r, picks[r]] == 0:
            picks[r] -= 1
    return picks


def redirect(
    probs: np.ndarray, source: np.ndarray, target: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """Move the probability of `source` characters onto `target` ones, shared in proportion to
    `weights` (evenly if they are all 0): how `--max-words` ends a text where the model wanted to
    end a word. Without any target in the vocabulary the source is simply removed."""
    p = probs.copy()
    moved = p[source].sum()
    p[source] = 0.0
    if target.any() and moved > 0:
        w = np.where(target, weights, 0.0)
        w = w / w.sum() if w.sum() > 0 else target / target.sum()
        p += moved * w
    return p


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Natural-log probabilities of one or more rows of logits (float64)."""
    x = np.asarray(logits, dtype=np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))
