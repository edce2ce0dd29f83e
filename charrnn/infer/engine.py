"""The inference-engine protocol: what the sampler, the scorer and the server call on an engine, and
the values engines hand back (`Forward`; `State`, a hidden state in numpy's layout).

It computes nothing and imports neither torch nor an engine: `numpy_engine` (CPU, no torch) and
`torch_engine` (CUDA and MPS; CPU for tests) implement it, and callers name the protocol rather than
asking an engine what it has (`hasattr`). It does not choose an engine for a device: that is
`Sampler.from_checkpoint`'s job.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar, runtime_checkable

import numpy as np

from charrnn.checkpoint import Header
from charrnn.model_config import ModelConfig
from charrnn.vocab import Vocab

T = TypeVar("T")


@runtime_checkable
class EngineState(Protocol):
    """A batch of streams' hidden state, in whatever form its engine keeps it."""

    @property
    def batch(self) -> int: ...

    def select(self, rows: Sequence[int] | np.ndarray) -> EngineState:
        """A new state holding these rows in this order (repeats allowed)."""
        ...

    def copy(self) -> EngineState: ...

    @staticmethod
    def concat(states: Sequence[EngineState]) -> EngineState:
        """One state holding the rows of these states in order (streams joining a batch)."""
        ...


S = TypeVar("S", bound=EngineState)


@dataclass
class State:
    """Hidden state of a batch of streams in numpy: per layer, h (and for an LSTM, c) of shape
    batch × hidden. The numpy engine's own state, and the layout every engine converts its state to
    and from (`to_numpy`, `from_numpy`) where a state is kept outside it (server sessions).

    A voiced model's state also carries each row's voice: the constant its voice (or mix, or no
    voice) adds to layer 0's input pre-activations, batch × gates in the numpy engine's scale
    (sigmoid gates halved). Rows keep their voice through select and concat, so one batch can
    hold streams of different voices. None for a model without voices."""

    h: list[np.ndarray]
    c: list[np.ndarray] | None = None
    voice: np.ndarray | None = None

    @property
    def batch(self) -> int:
        return self.h[0].shape[0]

    @staticmethod
    def zeros(layers: int, batch: int, hidden: int, lstm: bool) -> State:
        """All zeros, as training starts every stream (an LSTM's cells too)."""
        h = [np.zeros((batch, hidden), dtype=np.float32) for _ in range(layers)]
        return State(h, [z.copy() for z in h] if lstm else None)

    def select(self, rows: Sequence[int] | np.ndarray) -> State:
        """A new state holding these rows in this order (repeats allowed): beams, compaction."""
        idx = np.asarray(rows, dtype=np.intp)
        return State(
            [h[idx] for h in self.h],
            [c[idx] for c in self.c] if self.c else None,
            None if self.voice is None else self.voice[idx],
        )

    def copy(self) -> State:
        return self.select(np.arange(self.batch))

    @staticmethod
    def concat(states: Sequence[State]) -> State:
        """One state holding the rows of these states in order (streams joining a batch)."""
        h = [np.concatenate([s.h[i] for s in states]) for i in range(len(states[0].h))]
        c = None
        if states[0].c is not None:
            c = [np.concatenate([s.c[i] for s in states]) for i in range(len(states[0].c))]  # type: ignore[index]
        voices = [s.voice for s in states]
        voice = None if voices[0] is None else np.concatenate(voices)  # type: ignore[arg-type]
        return State(h, c, voice)


@dataclass
class Forward(Generic[S]):
    """What a run over a sequence returns: logits per position (or only the last), the final state,
    and optionally every layer's hidden (and cell) state per position (for scoring and viz)."""

    logits: np.ndarray  # T × vocab float32, or 1 × vocab with last_only
    state: S  # the engine's own state after the sequence (batch 1)
    hidden: list[np.ndarray] | None = None  # per layer, T × hidden
    cells: list[np.ndarray] | None = None  # per LSTM layer, T × hidden


@runtime_checkable
class InferenceEngine(Protocol[S]):
    """A checkpoint's model ready for inference, on some device. Logits and per-position states
    are numpy arrays whatever the device, so the sampling policies are shared."""

    cfg: ModelConfig
    cell: str  # "lstm", "gru" or "rnn"
    vocab: Vocab
    header: Header | None  # the validated header, when loaded from a file

    def initial_state(self, batch: int = 1, voice: np.ndarray | None = None) -> S:
        """All zeros, as training starts every stream. voice (a voiced model only): the voice
        weights of every row (length V, or batch × V; each row summing to 1), None for no voice;
        the state then carries each row's voice (see `State`)."""
        ...

    def step(self, ids: Sequence[int] | np.ndarray, state: S) -> np.ndarray:
        """Advance every stream of `state` by its character, in place; logits batch × vocab."""
        ...

    def forward(
        self,
        ids: Sequence[int] | np.ndarray,
        state: S | None = None,
        *,
        last_only: bool = False,
        keep_states: bool = False,
    ) -> Forward[S]:
        """One stream (batch 1; from zeros without a state) over a sequence. The state given is
        not changed. keep_states: every layer's hidden (and cell) state per position as well."""
        ...

    def forward_steps(
        self,
        ids: Sequence[int] | np.ndarray,
        state: S | None = None,
        *,
        last_only: bool = False,
        keep_states: bool = False,
        every: int = 64,
    ) -> Generator[None, None, Forward[S]]:
        """`forward` as a generator that pauses about every `every` characters and returns the
        Forward: a server reads a long prompt slice by slice between its batch steps."""
        ...

    def head_logits(self, state: S) -> np.ndarray:
        """The logits a state predicts (batch × vocab): a stream resumed from a saved state."""
        ...

    def to_numpy(self, state: S) -> State:
        """The state in numpy's layout (a copy), as sessions store it."""
        ...

    def from_numpy(self, state: State) -> S:
        """A numpy-layout state as this engine's own (a copy)."""
        ...

    def close(self) -> None:
        """Let go of threads and caches; the engine is not used afterwards."""
        ...


def run_to_end(steps: Generator[None, None, T]) -> T:
    """Run a `forward_steps` generator without pausing; its returned value."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value
