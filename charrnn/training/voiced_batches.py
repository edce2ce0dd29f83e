"""Truncated-BPTT batches over a labelled training split: each epoch's text is a deterministic
order of span pieces drawn from (seed, epoch), with the voices balanced as asked, cut into streams
exactly as `StreamBatcher` cuts the plain text; each batch carries the voice of every input
character, and a share of stream rows per step drop theirs (the "no voice" id).

Every draw is a function of (seed, epoch) or (seed, step) alone, so every rank and a resumed run
agree without storing anything. No per-character array of the corpus is built: a position maps to
its piece by a search over the epoch's cumulative piece lengths. No torch, no model; the unvoiced
path (`batches.StreamBatcher`) does not come through here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from charrnn.data.dataset import RELEASE_EVERY, release
from charrnn.data.voices import VoiceTable
from charrnn.errors import InputError, option
from charrnn.model_config import ModelConfig
from charrnn.training.batches import StreamBatcher
from charrnn.training.config import TrainConfig

# Spans are cut into pieces of at most this many characters, so a long document is shuffled and
# subsampled in parts, not read whole or not at all.
PIECE = 16_384
# Until bench/tags.py measures them (docs/training.md#voices).
DEFAULT_BALANCE = "equal"
DEFAULT_UNTAGGED_SHARE = 0.1


def voiced_config(cfg: TrainConfig, sizes: Sequence[int]) -> TrainConfig:
    """The config with the voice settings a run on voices of these training sizes uses: the
    balance (capped when only --voice-cap was given), the cap (the median size of the voices with
    text, when none was given) and the untagged share."""
    balance = cfg.balance or ("capped" if cfg.voice_cap is not None else DEFAULT_BALANCE)
    if cfg.voice_cap is not None and balance != "capped":
        raise InputError(f"{option('voice_cap')} applies to --balance capped, not {balance}")
    cap = cfg.voice_cap
    if balance == "capped" and cap is None:  # (a voice without text here has no say)
        cap = max(1, int(np.median([s for s in sizes if s > 0] or [1])))
    share = DEFAULT_UNTAGGED_SHARE if cfg.untagged_share is None else cfg.untagged_share
    return cfg.with_(balance=balance, voice_cap=cap, untagged_share=share)


def voiced_epoch(
    cfg: TrainConfig, voices: VoiceTable | None, model: ModelConfig | None, chars: int
) -> tuple[TrainConfig, int]:
    """A run's config with its voice settings, and the characters its epoch trains on (`chars`,
    the training split's, for unlabelled text); refuses a model conditioned on other voices."""
    if model is not None and model.voices and model.voices != len(voices or ()):
        raise InputError(f"the model has {model.voices} voices, the text {len(voices or ())}")
    if voices is None:
        return cfg, chars
    cfg = voiced_config(cfg, voices.chars("train"))
    return cfg, epoch_chars(voices.chars("train"), cfg.balance, cfg.voice_cap)


def quotas(sizes: Sequence[int], balance: str, cap: int | None) -> list[int]:
    """Characters each voice contributes to an epoch: its size (proportional), the mean size
    (equal; a voice with no training text gives none), or its size up to the cap (capped)."""
    if balance == "proportional":
        return [int(s) for s in sizes]
    if balance == "capped":
        return [min(int(s), int(cap or 0)) for s in sizes]
    present = [int(s) for s in sizes if s > 0]
    mean = sum(present) // max(1, len(present))
    return [mean if s > 0 else 0 for s in sizes]


def epoch_chars(sizes: Sequence[int], balance: str, cap: int | None) -> int:
    """The characters an epoch really trains on (what the planner counts)."""
    return sum(quotas(sizes, balance, cap))


def pieces(spans: np.ndarray) -> np.ndarray:
    """Spans cut into pieces of at most PIECE characters: rows [start, length, voice]."""
    lengths = spans[:, 1]
    n = -(-lengths // PIECE)
    which = np.repeat(np.arange(len(spans)), n)
    first = np.cumsum(n) - n
    k = np.arange(len(which)) - first[which]
    start = spans[which, 0] + k * PIECE
    length = np.minimum(PIECE, lengths[which] - k * PIECE)
    return np.stack([start, length, spans[which, 2]], axis=1).astype(np.int64)


class VoicedBatcher:
    """Batches of (inputs, targets, voices) over a labelled split; `streams` contiguous streams
    of each epoch's virtual text, each rank owning a block of rows, as `StreamBatcher`."""

    def __init__(
        self,
        ids: np.ndarray,
        spans: np.ndarray,
        voices: int,
        streams: int,
        seq_len: int,
        cfg: TrainConfig,
        rank: int = 0,
        world: int = 1,
    ):
        if streams % world:
            raise InputError(f"{streams} streams cannot be shared by {world} processes")
        self.ids, self.voices, self.seq_len = ids, voices, seq_len
        self.seed, self.streams, self.rank, self.world = cfg.rng_seed, streams, rank, world
        self.shift_seed = cfg.rng_seed if cfg.shift_windows else None
        self.share = float(cfg.untagged_share or 0.0)
        self.pieces = pieces(spans)
        self._mine = [self.pieces[self.pieces[:, 2] == v] for v in range(voices)]
        sizes = np.bincount(spans[:, 2], weights=spans[:, 1], minlength=voices).astype(np.int64)
        self.sizes = [int(s) for s in sizes]
        self.quotas = quotas(self.sizes, cfg.balance or DEFAULT_BALANCE, cfg.voice_cap)
        self.epoch_chars = sum(self.quotas)
        self.stream_len = (self.epoch_chars - 1) // streams
        self.steps_per_epoch = self.stream_len // seq_len
        if self.steps_per_epoch < 1:
            raise InputError(f"{self.epoch_chars} chars cannot fill {streams} streams of {seq_len}")
        self.max_shift = min(seq_len - 1, self.stream_len - self.steps_per_epoch * seq_len)
        per_rank = streams // world
        self.rows = np.arange(rank * per_rank, (rank + 1) * per_rank, dtype=np.int64)
        self._window = self.rows[:, None] * self.stream_len + np.arange(seq_len + 1)[None, :]
        self._epoch: int | None = None
        self._order = np.zeros((0, 3), dtype=np.int64)
        self._ends = np.zeros(0, dtype=np.int64)

    def shift(self, epoch: int) -> int:
        """Where the epoch's windows start in each stream (as `StreamBatcher.shift`)."""
        if self.shift_seed is None or epoch == 0 or self.max_shift == 0:
            return 0
        rng = np.random.default_rng([self.shift_seed, epoch])
        return int(rng.integers(0, self.max_shift + 1))

    def order(self, epoch: int) -> np.ndarray:
        """The epoch's text as rows [start, length, voice] of pieces, in reading order: each voice's
        quota (whole copies of its pieces, then a draw without replacement, the last piece cut to
        fit), all shuffled together; a function of (seed, epoch) alone."""
        if self._epoch == epoch:
            return self._order
        rng = np.random.default_rng([self.seed, 0xBA1A, epoch])
        chosen = []
        for v, (size, quota) in enumerate(zip(self.sizes, self.quotas, strict=True)):
            mine = self._mine[v]
            if quota == 0 or size == 0:
                continue
            whole, rest = divmod(quota, size)
            chosen += [mine] * whole
            if rest:
                drawn = mine[rng.permutation(len(mine))]
                ends = np.cumsum(drawn[:, 1])
                k = int(np.searchsorted(ends, rest, side="left"))
                part = drawn[: k + 1].copy()
                part[k, 1] = rest - (ends[k - 1] if k else 0)
                chosen.append(part)
        text = np.concatenate(chosen)
        self._order = text[rng.permutation(len(text))]
        self._ends = np.cumsum(self._order[:, 1])
        self._epoch = epoch
        return self._order

    def untagged(self, step: int) -> np.ndarray:
        """Which of this rank's rows drop their voice at `step`: drawn for every stream from
        (seed, step), so the draw is the same whatever the number of processes."""
        rng = np.random.default_rng([self.seed, 0x0DD5, step])
        return (rng.random(self.streams) < self.share)[self.rows]

    def batch(self, t: int, epoch: int, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Inputs, targets and the inputs' voice ids (int64, rows × seq_len) for step t of the
        epoch; `step` (the run's) draws the rows that go untagged (id `voices`)."""
        order = self.order(epoch)
        pos = self._window + self.shift(epoch) + t * self.seq_len
        k = np.searchsorted(self._ends, pos, side="right")
        real = order[k, 0] + pos - (self._ends[k] - order[k, 1])
        w = np.asarray(self.ids[real], dtype=np.int64)
        voice = order[k[:, :-1], 2]
        voice[self.untagged(step)] = self.voices
        if t % RELEASE_EVERY == RELEASE_EVERY - 1:
            release(self.ids)
        return w[:, :-1], w[:, 1:], voice


def make_batcher(
    ids: np.ndarray, voices: VoiceTable | None, cfg: TrainConfig, rank: int, world: int
) -> StreamBatcher | VoicedBatcher:
    """The run's batcher: the plain streams of an unlabelled split, as ever, or voiced batches."""
    streams = cfg.batch_size * world
    if voices is None:
        shift = cfg.rng_seed if cfg.shift_windows else None
        return StreamBatcher(ids, streams, cfg.seq_len, rank, world, shift)
    spans = voices.spans("train")
    return VoicedBatcher(ids, spans, len(voices), streams, cfg.seq_len, cfg, rank, world)
