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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from charrnn.checkpoint import Header
from charrnn.errors import InputError
from charrnn.infer.controls import Guard, Rules
from charrnn.infer.engine import InferenceEngine
from charrnn.infer.guidance import Voicing
from charrnn.infer.logits import Filters
from charrnn.infer.numpy_engine import Engine
from charrnn.infer.score import Score, Scorer
from charrnn.infer.stream import Stream, draw
from charrnn.infer.voices import Tag, Voices, check_strength, resolve
from charrnn.vocab import Unknown, Vocab

MAX_SEED = 2**63


def seed_of(rng_seed: int, i: int) -> int:
    """Sample i's seed: the run's seed plus i (so sample 0 is the seed itself, and sample i can be
    reproduced alone with --rng-seed S+i)."""
    return (rng_seed + i) % MAX_SEED


def bias_ids(vocab: Vocab, bias: object) -> tuple[tuple[int, float], ...]:
    """A logit bias by character ({"e": -5.0}) as (id, bias) pairs; characters the vocabulary
    lacks are an InputError naming them (a bias on a character that cannot appear is a mistake)."""
    if not bias:
        return ()
    if not isinstance(bias, dict) or not all(isinstance(c, str) and len(c) == 1 for c in bias):
        raise InputError("logit_bias maps single characters to numbers")
    missing = [c for c in bias if c not in vocab]
    if missing:
        shown = " ".join(repr(c) for c in missing)
        raise InputError(f"--logit-bias: not in the model's vocabulary: {shown}")
    return tuple((vocab.index(c), float(b)) for c, b in bias.items())


def new_seed() -> int:
    return secrets.randbits(31)


@dataclass(frozen=True)
class Options:
    """Everything that decides a sample besides the prime and the seed."""

    length: int = 2000
    filters: Filters = field(default_factory=Filters)
    rules: Rules = field(default_factory=Rules)
    stop: str | tuple[str, ...] | None = None  # one stop string or several
    unknown: Unknown = "error"
    tag: Tag = None  # a voiced model's voice: a name, or {name: weight} for a mix
    tag_strength: float = 1.0  # guidance toward the voice (`guidance`): 1 is the plain voice

    @property
    def stops(self) -> tuple[str, ...]:
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())

    def check(self) -> None:
        if self.length < 0:
            raise InputError(f"--length must be >= 0, got {self.length}")
        if any(s == "" for s in self.stops):
            raise InputError("--stop needs a non-empty string")
        self.filters.check()
        self.rules.check()
        check_strength(self.tag_strength)

    def to_json(self) -> dict:
        f = self.filters
        tag = dict(self.tag) if isinstance(self.tag, dict) else self.tag  # a copy of a mix
        voice = {} if tag is None else {"tag": tag, "tag_strength": self.tag_strength}
        return {
            "length": self.length,
            "temperature": f.temperature,
            "top_k": f.top_k,
            "top_p": f.top_p,
            "min_p": f.min_p,
            "frequency_penalty": f.frequency_penalty,
            "presence_penalty": f.presence_penalty,
            "logit_bias": {str(i): b for i, b in f.logit_bias},
            **{k: v for k, v in self.rules.to_json().items() if k != "record"},
            "stop": self.stop
            if self.stop is None or isinstance(self.stop, str)
            else list(self.stop),
            **voice,
        }


@dataclass
class Sample:
    """One finished sample: its text (without the prime), seed, and why it ended: `length` (the
    cap), `stop` (the --stop string), `until` (the boundary), `dead_end` (the controls left no
    character possible)."""

    text: str
    rng_seed: int
    finish_reason: str


class Sampler:
    """A trained model ready to write text. Build with `charrnn.load(path)` or from an engine."""

    def __init__(self, engine: InferenceEngine) -> None:
        self.engine = engine
        self.vocab: Vocab = engine.vocab
        self.voices: Voices | None = Voices.of(engine)  # None: a model without voices

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        device: str = "cpu",
        threads: int = 0,
        deterministic: bool = False,
        engine: str = "numpy",
        dtype: str = "int8",
    ) -> Sampler:
        """CPU: the numpy engine (no torch), or with engine="onnx" onnxruntime (int8 weights by
        default; `dtype="f32"` for full precision). cuda / mps: the torch engine on that device.
        deterministic: every stream's arithmetic is independent of its batch (see `numpy_engine`).
        `auto` is resolved here (a GPU where there is one); a device that is not there is an
        `InputError`."""
        from charrnn import hub
        from charrnn.device import resolve_device

        path = hub.local(path)  # hf:OWNER/NAME[@REVISION] → the cached file
        if engine not in ("numpy", "onnx"):
            raise InputError(f"unknown engine {engine!r}; choose numpy or onnx")
        if engine == "onnx":
            if device != "cpu":
                raise InputError(f"--engine onnx runs on the CPU; leave out --device {device}")
            if deterministic:
                raise InputError(
                    "--deterministic is a numpy engine mode; leave it out with --engine onnx"
                )
            if dtype not in ("int8", "f32"):
                raise InputError(f"--engine onnx takes --dtype int8 or f32, got {dtype!r}")
            from charrnn.infer.onnx_engine import OnnxEngine

            return cls(OnnxEngine.load(path, dtype))
        device = resolve_device(device)
        if device == "cpu":
            return cls(Engine.load(path, threads, deterministic))
        from charrnn.infer.torch_engine import TorchEngine

        return cls(TorchEngine.load(path, device))

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
        """The continuation of `prime` (without it), `length` characters at most. A voiced model
        takes `tag` (a voice's name, or {name: weight} for a mix) and `tag_strength` (1: the plain
        voice; above 1 further toward it, see `guidance`)."""
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
        filters = Filters(
            temperature,
            top_k,
            top_p,
            kw.pop("min_p", None),
            float(kw.pop("frequency_penalty", 0.0) or 0.0),  # type: ignore[arg-type]
            float(kw.pop("presence_penalty", 0.0) or 0.0),  # type: ignore[arg-type]
            bias_ids(self.vocab, kw.pop("logit_bias", None)),
        )
        rule_kw = {k: kw.pop(k) for k in list(kw) if k in Rules.__dataclass_fields__}
        if isinstance(rule_kw.get("ban"), str):
            raise InputError("ban takes a list of strings")
        rule_kw["ban"] = tuple(rule_kw.get("ban") or ())
        rules = Rules(**rule_kw)
        stop = kw.pop("stop", None)
        stop = tuple(stop) if isinstance(stop, list | tuple) else stop
        opts = Options(
            length,
            filters,
            rules,
            stop,
            kw.pop("unknown", "error"),
            tag=kw.pop("tag", None),  # type: ignore[arg-type]
            tag_strength=kw.pop("tag_strength", 1.0),  # type: ignore[arg-type]
        )
        if kw:
            raise TypeError(f"unknown sampling options: {', '.join(kw)}")
        opts.check()
        self.voicing(opts)  # an unknown voice is refused before anything runs
        return opts, new_seed() if seed is None else int(seed)

    def samples(self, prime: str, opts: Options, rng_seed: int, n: int = 1) -> list[Sample]:
        """n finished samples (seeds rng_seed + i)."""
        return self.samples_for(prime, opts, [seed_of(rng_seed, i) for i in range(n)])

    def samples_for(self, prime: str, opts: Options, seeds: list[int]) -> list[Sample]:
        run = self.run(prime, opts, seeds)
        for _ in run:
            pass
        return run.results

    def score(self, text: str, unknown: Unknown = "skip", tag: Tag = None) -> Score:
        """How probable the text is under the model: `.nats_per_char`, `.bpc`, `.perplexity`,
        `.chars`, `.unknown` (the figures of `charrnn score`; see `charrnn.infer.score`); under a
        voice or a mix with `tag`. Which voice wrote a text: `Scorer(engine).by_tag(text)`."""
        return Scorer(self.engine).score(text, unknown, resolve(self.voices, tag))

    # --- the engine loop ----------------------------------------------------------------------
    def run(self, prime: str, opts: Options, seeds: list[int], keep_first: bool = True) -> _Run:
        """Generate one stream per seed together; iterate for the pieces each stream shows per
        step, then read `.results`. keep_first=False: the caller takes the first stream's text
        from the pieces as they come, and its result holds no text (an endless stream stays small)."""
        opts.check()
        return _Run(self, prime, opts, seeds, keep_first)

    def voicing(self, opts: Options) -> Voicing:
        """The engine with the options' voice and strength; refuses an unknown voice, a negative
        or all-zero mix, and a tag on a model without voices (one line each)."""
        weights = resolve(self.voices, opts.tag, opts.tag_strength)
        counts = self.voices.start_counts(weights) if self.voices else None
        return Voicing(self.engine, weights, opts.tag_strength, counts)

    def prime_state(self, prime: str, unknown: Unknown = "error", voicing: Voicing | None = None):
        """(logits after the prime, or None with no prime and no newline in the vocabulary; the
        state after it, one sample) under a voicing (None: no voice)."""
        ids = self.vocab.encode(prime, unknown)
        if not ids and "\n" in self.vocab:
            ids = [self.vocab.index("\n")]
        return (voicing or Voicing(self.engine)).prime(ids)


class _Run:
    """Iterating yields, per step, the piece each stream shows (empty once it has ended)."""

    def __init__(
        self, sampler: Sampler, prime: str, opts: Options, seeds: list[int], keep_first: bool
    ) -> None:
        self.sampler, self.opts, self.prime = sampler, opts, prime
        self.streams = [
            Stream(s, Guard(opts.rules, sampler.vocab, prime), opts.stops, keep_first or i > 0)
            for i, s in enumerate(seeds)
        ]
        self.results: list[Sample] = []

    def __iter__(self) -> Iterator[list[str]]:
        sampler, opts, vocab = self.sampler, self.opts, self.sampler.vocab
        streams = self.streams
        voicing = sampler.voicing(opts)
        logits0, state0 = sampler.prime_state(self.prime, opts.unknown, voicing)
        live = list(range(len(streams))) if opts.length > 0 else []
        state = state0.select([0] * len(live))
        logits = None if logits0 is None else np.repeat(logits0[None], len(live), axis=0)
        for _ in range(opts.length):
            pieces = [""] * len(streams)
            chosen = draw(vocab, opts.filters, [streams[i] for i in live], logits, voicing.counts)
            nxt, keep = [], []
            for row, i in enumerate(live):
                pieces[i] = streams[i].take(chosen[row], vocab)
                if streams[i].reason is None:
                    nxt.append(chosen[row])
                    keep.append(row)
            yield pieces
            live = [live[r] for r in keep]
            if not live:
                break
            state = state.select(keep) if len(keep) != state.batch else state
            logits = voicing.step(np.array(nxt), state)
        tail = [""] * len(streams)
        for i in live:
            streams[i].reason = streams[i].reason or "length"
            tail[i] = streams[i].flush()
        if any(tail):
            yield tail
        self.results = [Sample("".join(s.out), s.seed, s.reason or "length") for s in streams]
