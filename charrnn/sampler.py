"""Sampling policies on top of the inference engine: seeded streams, the writer's controls, stop
strings, records. `charrnn.load(path)` returns a `Sampler`.

Every sample has its own seed and its own random generator, and the engine's arithmetic per stream does
not depend on the batch, so sample i of a batch is exactly the sample its seed gives alone. A draw is
inverse-CDF sampling of one uniform number from the sample's generator (numpy's PCG64). It does not
print: the CLI decides where text goes. It does not know the model's arithmetic (`engine`), the
distribution's adjustments (`logits`) or the constraints' rules (`controls`).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from charrnn.checkpoint import Header
from charrnn.controls import Guard, Rules
from charrnn.engine import Engine
from charrnn.errors import InputError
from charrnn.logits import Filters, adjust_rows, draw_rows, probabilities_rows, redirect
from charrnn.score import Score, Scorer
from charrnn.vocab import Unknown, Vocab

MAX_SEED = 2**63


def seed_of(rng_seed: int, i: int) -> int:
    """Sample i's seed: the run's seed plus i (so sample 0 is the seed itself, and sample i can be
    reproduced alone with --rng-seed S+i)."""
    return (rng_seed + i) % MAX_SEED


def new_seed() -> int:
    return secrets.randbits(31)


@dataclass(frozen=True)
class Options:
    """Everything that decides a sample besides the prime and the seed."""

    length: int = 2000
    filters: Filters = field(default_factory=Filters)
    rules: Rules = field(default_factory=Rules)
    stop: str | None = None
    unknown: Unknown = "error"

    def check(self) -> None:
        if self.length < 0:
            raise InputError(f"--length must be >= 0, got {self.length}")
        self.filters.check()
        self.rules.check()

    def to_json(self) -> dict:
        f = self.filters
        return {
            "length": self.length,
            "temperature": f.temperature,
            "top_k": f.top_k,
            "top_p": f.top_p,
            "min_p": f.min_p,
            **{k: v for k, v in self.rules.to_json().items() if k != "record"},
            "stop": self.stop,
        }


@dataclass
class Sample:
    """One finished sample: its text (without the prime), seed, and why it ended: `length` (the
    cap), `stop` (the --stop string), `until` (the boundary), `dead_end` (the controls left no
    character possible)."""

    text: str
    rng_seed: int
    finish_reason: str


class _Stream:
    """One sample being written: its generator, constraints, and text held back for --stop."""

    def __init__(self, seed: int, guard: Guard, stop: str | None, keep: bool = True) -> None:
        self.seed, self.rng = seed, np.random.Generator(np.random.PCG64(seed))
        self.guard, self.stop = guard, stop or ""
        self.held, self.out, self.reason, self.keep = "", [], None, keep

    def emit(self, ch: str) -> str:
        """Take ch into the text; return what may be shown now (text that might begin the stop
        string is held back until it is known not to)."""
        self.guard.accept(ch)
        if not self.stop:
            if self.keep:
                self.out.append(ch)
            return ch
        self.held += ch
        if self.held.endswith(self.stop):
            self.held = self.held[: -len(self.stop)]
            self.reason = "stop"
            return self.flush()
        keep = next(
            k
            for k in range(min(len(self.held), len(self.stop) - 1), -1, -1)
            if self.held.endswith(self.stop[:k])
        )
        shown, self.held = self.held[: len(self.held) - keep], self.held[len(self.held) - keep :]
        if self.keep:
            self.out.append(shown)
        return shown

    def flush(self) -> str:
        shown, self.held = self.held, ""
        if self.keep:
            self.out.append(shown)
        return shown


class Sampler:
    """A trained model ready to write text. Build with `charrnn.load(path)` or from an engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.vocab: Vocab = engine.vocab

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, device: str = "cpu", threads: int = 0, deterministic: bool = False
    ) -> Sampler:
        """CPU: the numpy engine (no torch). cuda / mps: the torch engine on that device.
        deterministic: every stream's arithmetic is independent of its batch (see `engine`)."""
        if device == "cpu":
            return cls(Engine.load(path, threads, deterministic))
        from charrnn.engine_torch import TorchEngine

        return cls(TorchEngine.load(path, device))  # type: ignore[arg-type]

    @property
    def header(self) -> Header | None:
        """The checkpoint's validated header, when loaded from a file."""
        return self.engine.header

    # --- the simple API -----------------------------------------------------------------------
    def generate(
        self,
        prime: str = "",
        length: int = 2000,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        **kw: object,
    ) -> str:
        """The continuation of `prime` (without it), `length` characters at most."""
        return "".join(self.stream(prime, length, temperature, top_k, top_p, **kw))

    def stream(
        self,
        prime: str = "",
        length: int = 2000,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        **kw: object,
    ) -> Iterator[str]:
        """Yield the continuation piece by piece as it is generated."""
        opts, seed = self._options(length, temperature, top_k, top_p, kw)
        for pieces in self.run(prime, opts, [seed], keep_first=False):
            if pieces[0]:
                yield pieces[0]

    def generate_batch(
        self,
        prime: str,
        length: int,
        num_samples: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        **kw: object,
    ) -> list[str]:
        """num_samples continuations generated together; sample i uses seed rng_seed + i."""
        opts, seed = self._options(length, temperature, top_k, top_p, kw)
        return [s.text for s in self.samples(prime, opts, seed, num_samples)]

    def _options(self, length, temperature, top_k, top_p, kw) -> tuple[Options, int]:
        seed = kw.pop("rng_seed", None)
        filters = Filters(temperature, top_k, top_p, kw.pop("min_p", None))
        rule_kw = {k: kw.pop(k) for k in list(kw) if k in Rules.__dataclass_fields__}
        if isinstance(rule_kw.get("ban"), str):
            raise InputError("ban takes a list of strings")
        rule_kw["ban"] = tuple(rule_kw.get("ban") or ())
        rules = Rules(**rule_kw)
        opts = Options(length, filters, rules, kw.pop("stop", None), kw.pop("unknown", "error"))
        if kw:
            raise TypeError(f"unknown sampling options: {', '.join(kw)}")
        opts.check()
        return opts, new_seed() if seed is None else int(seed)

    def samples(self, prime: str, opts: Options, rng_seed: int, n: int = 1) -> list[Sample]:
        """n finished samples (seeds rng_seed + i)."""
        return self.samples_for(prime, opts, [seed_of(rng_seed, i) for i in range(n)])

    def samples_for(self, prime: str, opts: Options, seeds: list[int]) -> list[Sample]:
        run = self.run(prime, opts, seeds)
        for _ in run:
            pass
        return run.results

    def score(self, text: str, unknown: Unknown = "skip") -> Score:
        """How probable the text is under the model: `.nats_per_char`, `.bpc`, `.perplexity`,
        `.chars`, `.unknown` (the figures of `charrnn score`; see `charrnn.score`)."""
        return Scorer(self.engine).score(text, unknown)

    # --- the engine loop ----------------------------------------------------------------------
    def run(self, prime: str, opts: Options, seeds: list[int], keep_first: bool = True) -> _Run:
        """Generate one stream per seed together; iterate for the pieces each stream shows per
        step, then read `.results`. keep_first=False: the caller takes the first stream's text
        from the pieces as they come, and its result holds no text (an endless stream stays small)."""
        opts.check()
        return _Run(self, prime, opts, seeds, keep_first)

    def prime_state(self, prime: str, unknown: Unknown = "error"):
        """(logits after the prime, or None with no prime and no newline in the vocabulary; the
        state after it, one stream)."""
        ids = self.vocab.encode(prime, unknown)
        if not ids and "\n" in self.vocab:
            ids = [self.vocab.index("\n")]
        if not ids:
            return None, self.engine.initial_state(1)
        fwd = self.engine.forward(ids, last_only=True)
        return fwd.logits[-1], fwd.state


class _Run:
    """Iterating yields, per step, the piece each stream shows (empty once it has ended)."""

    def __init__(
        self, sampler: Sampler, prime: str, opts: Options, seeds: list[int], keep_first: bool
    ) -> None:
        self.sampler, self.opts, self.prime = sampler, opts, prime
        self.streams = [
            _Stream(s, Guard(opts.rules, sampler.vocab, prime), opts.stop, keep_first or i > 0)
            for i, s in enumerate(seeds)
        ]
        self.results: list[Sample] = []

    def __iter__(self) -> Iterator[list[str]]:
        sampler, opts, vocab = self.sampler, self.opts, self.sampler.vocab
        streams = self.streams
        logits0, state0 = sampler.prime_state(self.prime, opts.unknown)
        live = list(range(len(streams))) if opts.length > 0 else []
        state = state0.select([0] * len(live))
        logits = None if logits0 is None else np.repeat(logits0[None], len(live), axis=0)
        for _ in range(opts.length):
            pieces = [""] * len(streams)
            chosen = self._draws([streams[i] for i in live], logits)
            nxt, keep = [], []
            for row, i in enumerate(live):
                s, ch = streams[i], chosen[row]
                if ch < 0:
                    s.reason = "dead_end"
                elif s.guard.ends_before(vocab.chars[ch]):
                    s.reason = "until"
                else:
                    pieces[i] = s.emit(vocab.chars[ch])
                if s.reason is None:
                    nxt.append(ch)
                    keep.append(row)
                else:
                    pieces[i] += s.flush()
            yield pieces
            live = [live[r] for r in keep]
            if not live:
                break
            state = state.select(keep) if len(keep) != state.batch else state
            logits = sampler.engine.step(np.array(nxt), state)
        tail = [""] * len(streams)
        for i in live:
            streams[i].reason = streams[i].reason or "length"
            tail[i] = streams[i].flush()
        if any(tail):
            yield tail
        self.results = [Sample("".join(s.out), s.seed, s.reason or "length") for s in streams]

    def _draws(self, streams: list[_Stream], logits: np.ndarray | None) -> list[int]:
        """One draw per stream (-1: the controls left nothing): masks, filters, the --max-words
        redirect, then each stream's own u. The rows go through the adjustments together (no
        operation mixes rows), so a stream draws the same character in any batch."""
        vocab, filters = self.sampler.vocab, self.opts.filters
        u = np.array([s.rng.random() for s in streams])
        if logits is None:  # no prime and no newline: the corpus's character frequencies
            counts = np.array(vocab.counts or [1] * vocab.size, dtype=np.float64)
            logits = np.repeat(np.log(np.maximum(counts, 1e-300))[None], len(streams), axis=0)
            filters = replace(filters, temperature=1.0 if filters.temperature else 0.0)
        masks = [s.guard.banned() for s in streams]
        banned = None
        if any(m is not None for m in masks):
            banned = np.zeros(logits.shape, dtype=bool)
            for row, m in enumerate(masks):
                if m is not None:
                    banned[row] = m
        p = probabilities_rows(adjust_rows(logits, filters, banned))
        for row, s in enumerate(streams):
            moved = s.guard.redirect()
            if moved is None or np.isnan(p[row, 0]):
                continue
            source, target = moved
            if masks[row] is not None:
                target = target & ~masks[row]
            weights = np.exp(np.asarray(logits[row], np.float64) - np.max(logits[row]))
            p[row] = redirect(p[row], source, target, weights)
            if p[row].sum() <= 0:
                p[row] = np.nan
            elif filters.temperature == 0:
                p[row] = np.arange(vocab.size) == np.argmax(p[row])
        dead = np.isnan(p[:, 0])
        picks = np.full(len(streams), -1)
        if not dead.all():
            picks[~dead] = draw_rows(p[~dead], u[~dead])
        return picks.tolist()
