"""The voices bench's units of work (bench/tags.py): one training run, one sample set, one
attribution pass, one timing. Each returns a JSON-able dict that `Store` keeps (--units), so a
rerun skips what is done.

Training runs as `charrnn train` in a child process (as a user runs it); sampling and scoring use
the Python API in this process (`charrnn.Sampler`, `Scorer`), numpy engine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from common import ROOT
from tags_corpora import NaiveBayes, build_corpus, snippets

VAL_FRAC, TEST_FRAC = 0.1, 0.1


@dataclass(frozen=True)
class Scale:
    """How big each kind of unit is: the full bench, or --quick's smoke run of every kind."""

    caps: dict[str, int]  # corpus → characters per voice
    voices: int | None  # only the first n voices of each corpus (quick)
    budgets: tuple[str, ...]
    seeds: tuple[int, ...]
    ablation_budget: str
    balances: tuple[str, ...] = ("proportional", "equal", "capped")
    shares: tuple[float, ...] = (0.05, 0.1, 0.2)
    samples: int = 20  # per voice and strength
    sample_len: int = 300
    strengths: tuple[float, ...] = (1.0, 1.5, 2.0, 3.0)
    lengths: tuple[int, ...] = (100, 300, 1000)
    snippets: int = 200  # per voice and length
    mix_samples: int = 50
    mix_weights: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    reps: int = 5  # alternating timed runs
    cost_train: tuple[str, ...] = ("--layers", "1", "--hidden", "256", "--max-steps", "30")
    cost_lengths: dict[int, int] = field(default_factory=lambda: {1: 2000, 64: 300})
    train_extra: tuple[str, ...] = ()


FULL = Scale(
    caps={"distinct": 1_000_000, "close": 150_000},
    voices=None,
    budgets=("3m", "10m"),
    seeds=(1, 2),
    ablation_budget="10m",
)
QUICK = Scale(
    caps={"distinct": 24_000, "close": 24_000},
    voices=3,
    budgets=("8s",),
    seeds=(1, 2),
    ablation_budget="8s",
    shares=(0.05, 0.1),
    samples=4,
    sample_len=60,
    strengths=(1.0, 2.0),
    lengths=(50, 200),
    snippets=10,
    mix_samples=6,
    reps=2,
    cost_train=("--layers", "1", "--hidden", "32", "--max-steps", "6", "--batch-size", "8"),
    cost_lengths={1: 100, 64: 30},
    train_extra=("--layers", "1", "--hidden", "32", "--no-calibrate"),
)


class Store:
    """Finished units, one JSON line each ({"key", "seconds", "result"}), appended as each ends."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.done: dict[str, dict] = {}
        if path.is_file():
            for line in path.read_text().splitlines():
                if line.strip():
                    rec = json.loads(line)
                    self.done[rec["key"]] = rec
        path.parent.mkdir(parents=True, exist_ok=True)

    def __contains__(self, key: str) -> bool:
        return key in self.done

    def result(self, key: str) -> dict | None:
        rec = self.done.get(key)
        return rec["result"] if rec else None

    def put(self, key: str, seconds: float, result: dict) -> None:
        rec = {"key": key, "seconds": round(seconds, 1), "result": result}
        with self.path.open("a") as f:
            f.write(json.dumps(rec) + "\n")
        self.done[key] = rec


class Bench:
    """Where the corpora, datasets and runs live (--work), and what they give the units."""

    def __init__(self, work: Path, scale: Scale, units: Path | None = None) -> None:
        self.work, self.scale = work.resolve(), scale
        self.store = Store(units or work / "units.jsonl")
        self._judges: dict[str, NaiveBayes] = {}
        self._texts: dict[tuple[str, str], dict[str, str]] = {}

    def dataset(self, corpus: str) -> Path:
        """The corpus prepared once (each voice's own last 10 % validation, 10 % test before it)."""
        import charrnn

        out = self.work / "data" / f"{corpus}-{self.scale.caps[corpus]}-{self.scale.voices or 0}"
        if not (out / "meta.json").is_file():
            folder = build_corpus(self.work, corpus, self.scale.caps[corpus], self.scale.voices)
            charrnn.prep(folder, out, val_frac=VAL_FRAC, test_frac=TEST_FRAC, tags_from="dir")
        return out

    def texts(self, corpus: str, split: str) -> dict[str, str]:
        """Each voice's part of a split, as text."""
        if (corpus, split) not in self._texts:
            from charrnn import load_dataset

            ds = load_dataset(self.dataset(corpus))
            table, ids = ds.voices, np.asarray(ds.split(split))
            parts = {}
            for name, start, n in zip(
                table.names, table.offsets(split), table.chars(split), strict=True
            ):
                parts[name] = ds.vocab.decode(ids[start : start + n].tolist())
            self._texts[corpus, split] = parts
        return self._texts[corpus, split]

    def judge(self, corpus: str) -> NaiveBayes:
        if corpus not in self._judges:
            self._judges[corpus] = NaiveBayes(self.texts(corpus, "train"))
        return self._judges[corpus]


def train_key(corpus: str, budget: str, seed: int, voiced: bool, balance: str, share: float) -> str:
    """A training run's key: its configuration with the defaults spelled out, so a run that
    coincides with another (the balance runs' default, say) is the same unit."""
    cond = f"voiced/{balance}/{share}" if voiced else f"unvoiced/{balance}"
    return f"train/{corpus}/{budget}/{cond}/seed{seed}"


# --- training ----------------------------------------------------------------------------------


def charrnn_train(bench: Bench, corpus: str, out: Path, args: list[str]) -> dict:
    """`charrnn train DATASET ARGS --out OUT --json`; a run stopped half-way (a last.ckpt and no
    result) is resumed exactly, counting its earlier time against the budget."""
    base = [sys.executable, "-m", "charrnn", "train", str(bench.dataset(corpus))]
    base += [*args, "--out", str(out), "--json", "--quiet"]
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    last = out / "last.ckpt"
    tries = [[*base, "--resume", str(last)]] if last.is_file() else []
    tries.append([*base, "--overwrite"])
    for i, cmd in enumerate(tries):
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if done.returncode == 0:
            return json.loads(done.stdout)
        if i == len(tries) - 1:
            raise RuntimeError(f"charrnn train failed: {' '.join(cmd)}\n{done.stderr[-2000:]}")
    raise AssertionError


def train(
    bench: Bench,
    corpus: str,
    budget: str,
    seed: int,
    condition: bool,
    balance: str | None = None,
    share: float | None = None,
    partner: dict | None = None,
) -> dict:
    """One timed run; its best evaluation per voice (the evaluation at the best step reads each
    voice's validation part, from a fresh state, up to eval_chars / V characters). `partner`: the
    voiced run a --no-condition baseline is measured against; the baseline trains what the
    partner's plan chose (shape, dropout, cadence, warmup), so conditioning is all that differs."""
    from charrnn.checkpoint import read_header

    out = bench.work / "runs" / f"{corpus}-{budget}-{'v' if condition else 'u'}-{balance}-{share}"
    out = out.with_name(out.name + f"-s{seed}")
    args = ["--time-budget", budget, "--rng-seed", str(seed), *bench.scale.train_extra]
    args += [] if condition else ["--no-condition"]
    args += ["--balance", balance] if balance else []
    args += ["--untagged-share", str(share)] if share is not None else []
    if partner is not None:
        chosen = read_header(bench.work / partner["checkpoint"]).meta["plan"]["chosen"]
        args += [x for k, v in chosen.items() for x in (f"--{k.replace('_', '-')}", str(v))]
    result = charrnn_train(bench, corpus, out, args)
    evals = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    at_best = [e for e in evals if "val_voices" in e and e["step"] == result["best_step"]]
    m = read_header(result["best_path"]).meta["model"]
    return {
        "best_val_loss": result["best_val_loss"],
        "val_voices": at_best[-1]["val_voices"],
        "steps": result["step"],
        "best_step": result["best_step"],
        "elapsed": round(result["elapsed"], 1),
        "model": f"{m['cell']} {m['layers']}x{m['hidden']}",
        "args": args,
        "checkpoint": str(Path(result["best_path"]).resolve().relative_to(bench.work)),
    }


# --- sampling and attribution (numpy engine) ---------------------------------------------------


def _sampler(bench: Bench, run: dict):
    from charrnn import Sampler

    return Sampler.from_checkpoint(bench.work.resolve() / run["checkpoint"])


def _onehot(names: tuple[str, ...], name: str) -> np.ndarray:
    return np.eye(len(names))[names.index(name)]


def samples(bench: Bench, corpus: str, run: dict, strengths: tuple[float, ...]) -> dict:
    """Per strength: samples per voice judged by the classifier (share in the asked voice), and
    their nats/char under the plain voiced model (strength 1) with that voice."""
    from charrnn import Scorer

    s = bench.scale
    sampler, judge = _sampler(bench, run), bench.judge(corpus)
    names = sampler.voices.names
    scorer = Scorer(sampler.engine)
    out: dict = {"voices": list(names), "by_strength": {}, "first_lines": {}}
    for strength in strengths:
        hits, nats, chars, per_voice = 0, 0.0, 0, {}
        for v, name in enumerate(names):
            texts = sampler.generate_batch(
                "", s.sample_len, s.samples, 1.0, tag=name, tag_strength=strength, rng_seed=v
            )
            said = [judge.predict(t) for t in texts]
            per_voice[name] = said.count(name) / len(texts)
            hits += said.count(name)
            for sc in scorer.score_lines(texts, "skip", _onehot(names, name)):
                nats, chars = nats + sc.nats, chars + sc.chars
            if strength == 1.0:
                out["first_lines"][name] = [t.strip().splitlines()[:3] for t in texts[:2]]
        out["by_strength"][str(strength)] = {
            "share": hits / (len(names) * s.samples),
            "per_voice": per_voice,
            "nats_per_char": nats / max(chars, 1),
        }
    return out


def attribution(bench: Bench, corpus: str, run: dict) -> dict:
    """`score --by-tag` (Scorer.by_tag_lines: each snippet from a fresh state, under each voice)
    and the classifier on the same test snippets, per length."""
    from charrnn import Scorer

    s = bench.scale
    sampler, judge = _sampler(bench, run), bench.judge(corpus)
    scorer = Scorer(sampler.engine)
    test = bench.texts(corpus, "test")
    out: dict = {}
    for length in s.lengths:
        cut, overlap = [], False
        for v, (name, text) in enumerate(test.items()):
            got, lap = snippets(text, length, s.snippets, seed=1000 * length + v)
            cut += [(name, x) for x in got]
            overlap |= lap
        truth = [n for n, _ in cut]
        model = [t.best for t in scorer.by_tag_lines([x for _, x in cut])]
        naive = [judge.predict(x) for _, x in cut]
        out[str(length)] = {
            "n": len(cut),
            "overlap": overlap,
            "charrnn": sum(a == b for a, b in zip(model, truth, strict=True)),
            "classifier": sum(a == b for a, b in zip(naive, truth, strict=True)),
            "classifier_per_voice": {
                name: sum(p == name for p, t in zip(naive, truth, strict=True) if t == name)
                / max(1, truth.count(name))
                for name in test
            },
        }
    return out


def mix(bench: Bench, corpus: str, run: dict) -> dict:
    """Samples of a two-voice mix (the model's first two voices) at each weight of the first; the
    classifier's share attributed to each of the two."""
    s = bench.scale
    sampler, judge = _sampler(bench, run), bench.judge(corpus)
    a, b = sampler.voices.names[:2]
    shares = {}
    for i, w in enumerate(s.mix_weights):
        texts = sampler.generate_batch(
            "", s.sample_len, s.mix_samples, 1.0, tag={a: w, b: 1.0 - w}, rng_seed=100 + i
        )
        said = [judge.predict(t) for t in texts]
        shares[str(w)] = {"first": said.count(a) / len(texts), "second": said.count(b) / len(texts)}
    first = sampler.generate_batch("", s.sample_len, 1, 1.0, tag={a: 0.5, b: 0.5}, rng_seed=7)
    return {"pair": [a, b], "shares": shares, "first_lines": first[0].strip().splitlines()[:3]}


# --- cost --------------------------------------------------------------------------------------


def cost_train(bench: Bench, corpus: str, rep: int, condition: bool) -> dict:
    """A short fixed-step run; its training chars/s (median of the log records after the first)."""
    out = bench.work / "runs" / f"cost-{'v' if condition else 'u'}-{rep}"
    args = [*bench.scale.cost_train, "--log-every", "2", "--no-calibrate", "--rng-seed", "1"]
    args += [] if condition else ["--no-condition"]
    if out.exists():  # a timing is never resumed: start again
        import shutil

        shutil.rmtree(out)
    charrnn_train(bench, corpus, out, args)
    lines = (out / "metrics.jsonl").read_text().splitlines()
    cps = [json.loads(x)["chars_per_sec"] for x in lines if '"chars_per_sec"' in x]
    return {
        "chars_per_sec": float(np.median(cps[1:] or cps)),
        "checkpoint": str((out / "last.ckpt").relative_to(bench.work)),
    }


def cost_sample(bench: Bench, model: str, streams: int, variant: str) -> dict:
    """Sampling chars/s of one batch of `streams` (numpy engine, default threads): the unvoiced
    model, or the voiced one at strength 1 or 2 (same shape, from the cost runs)."""
    from charrnn import Sampler

    sampler = Sampler.from_checkpoint(bench.work / model)
    length = bench.scale.cost_lengths[streams]
    kw: dict = {}
    if variant != "unvoiced":
        kw = {"tag": sampler.voices.names[0], "tag_strength": 2.0 if variant == "s2" else 1.0}
    sampler.generate_batch("", 20, streams, 1.0, rng_seed=0, **kw)  # warm up
    t = time.perf_counter()
    sampler.generate_batch("", length, streams, 1.0, rng_seed=1, **kw)
    return {"chars_per_sec": streams * length / (time.perf_counter() - t)}
