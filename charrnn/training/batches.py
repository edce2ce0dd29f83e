"""Truncated-BPTT batches, as in char-rnn: the training split is cut into contiguous streams and batch
t is the t-th window of every stream, so a hidden state carried from one batch to the next continues
the same text; each rank owns a block of the streams.

It reads ids and returns arrays: no torch, no model.
"""

from __future__ import annotations

import numpy as np

from charrnn.data.dataset import RELEASE_EVERY, release
from charrnn.errors import InputError


def fit_batch(n: int, batch_size: int, seq_len: int, world: int = 1) -> tuple[int, int]:
    """Shrink (batch_size, seq_len) until the train split holds at least one full batch.

    Batch size goes first (halving), then sequence length, so a 25-character toy still trains.
    """
    while batch_size > 1 and (n - 1) // (batch_size * world) < seq_len:
        batch_size //= 2
    seq_len = min(seq_len, (n - 1) // (batch_size * world))
    if seq_len < 1:
        raise InputError(f"the training split ({n} chars) is too small for {world} processes")
    return batch_size, seq_len


def fit_streams(
    n: int, batch_size: int, seq_len: int, world: int, resumed_streams: int | None = None
) -> tuple[int, int, str]:
    """A run's per-process batch size and seq-len, and what to tell the user. A resumed run keeps
    its streams (shared out among however many processes there are now); a new one shrinks
    batch × seq-len to fit a small corpus (`fit_batch`)."""
    if resumed_streams is not None:
        if resumed_streams % world:
            raise InputError(
                f"the checkpoint's {resumed_streams} streams cannot be shared by {world} processes"
            )
        return resumed_streams // world, seq_len, ""
    b, s = fit_batch(n, batch_size, seq_len, world)
    if (b, s) == (batch_size, seq_len):
        return b, s, ""
    return (
        b,
        s,
        (
            f"corpus too small for batch {batch_size} × seq-len {seq_len}: using batch {b} × seq-len {s}"
        ),
    )


class StreamBatcher:
    """Truncated-BPTT batches: `streams` contiguous streams, each rank owning a block of rows."""

    def __init__(
        self,
        ids: np.ndarray,
        streams: int,
        seq_len: int,
        rank: int = 0,
        world: int = 1,
        shift_seed: int | None = None,
    ):
        if streams % world:
            raise InputError(f"{streams} streams cannot be shared by {world} processes")
        self.ids, self.seq_len, self.shift_seed = ids, seq_len, shift_seed
        self.stream_len = (len(ids) - 1) // streams
        self.steps_per_epoch = self.stream_len // seq_len
        if self.steps_per_epoch < 1:
            raise InputError(f"{len(ids)} chars cannot fill {streams} streams of {seq_len}")
        # an epoch reads steps × seq_len of each stream; what is left over is room to shift into
        self.max_shift = min(seq_len - 1, self.stream_len - self.steps_per_epoch * seq_len)
        per_rank = streams // world
        rows = np.arange(rank * per_rank, (rank + 1) * per_rank, dtype=np.int64)
        self._window = rows[:, None] * self.stream_len + np.arange(seq_len + 1)[None, :]

    def shift(self, epoch: int) -> int:
        """Where epoch `epoch`'s windows start within each stream: 0 unless shifting, else a draw
        from (seed, epoch) alone, so every rank and a resumed run agree without storing it. Drawn
        afresh each step: a seeded draw costs about 8 µs, nothing beside a training step."""
        if self.shift_seed is None or epoch == 0 or self.max_shift == 0:
            return 0
        rng = np.random.default_rng([self.shift_seed, epoch])
        return int(rng.integers(0, self.max_shift + 1))

    def batch(self, t: int, epoch: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Inputs and targets (int64, shape rows × seq_len) for step t of the epoch."""
        start = self.shift(epoch) + t * self.seq_len
        w = np.asarray(self.ids[self._window + start], dtype=np.int64)
        if t % RELEASE_EVERY == RELEASE_EVERY - 1:
            release(self.ids)
        return w[:, :-1], w[:, 1:]
