"""The batching worker without HTTP: jobs joining and leaving a running batch write what `sample`
writes (deterministic engine), long prompts are read in slices, and the torch engine (the
`--device cuda` path, run here on the CPU) serves and keeps sessions too."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from charrnn.checkpoint import fingerprint
from charrnn.infer.logits import Filters
from charrnn.infer.numpy_engine import Engine
from charrnn.infer.sampler import Options, Sampler
from charrnn.serve.models import Model
from charrnn.serve.scheduler import Job, Scheduler, SessionPlan, Update
from charrnn.serve.sessions import SessionStore


def _model(path: Path, sampler: Sampler) -> Model:
    return Model("run", path, sampler, fingerprint(path), {})


class Collector:
    def __init__(self) -> None:
        self.text: dict[int, str] = {}
        self.finished: dict[int, str] = {}
        self.done = threading.Event()

    def __call__(self, u: Update) -> None:
        for i, piece in u.text.items():
            self.text[i] = self.text.get(i, "") + piece
        self.finished |= u.finished
        assert u.error is None, u.error
        if u.done:
            self.done.set()


def _job(model: Model, prompt: str, opts: Options, seeds: list[int], **kw) -> tuple[Job, Collector]:
    got = Collector()
    ids = model.engine.vocab.encode(prompt, "skip")
    return Job(model, prompt, ids, opts, seeds, notify=got, **kw), got


def test_jobs_joining_a_running_batch_write_what_sample_writes(trained: Path) -> None:
    sampler = Sampler(Engine.load(trained, deterministic=True))
    model = _model(trained, sampler)
    sched = Scheduler()
    try:
        long_prompt = "First Citizen:\n" * 40  # 600 characters: read in slices between steps
        plans = [
            ("ROMEO:", Options(300, Filters(0.8)), [1]),
            (long_prompt, Options(100, Filters(1.0, top_k=5)), [2, 3]),
            ("", Options(80, Filters(0.5), stop="\n"), [4]),
            ("KING", Options(0), [5]),
        ]
        jobs = []
        for prompt, opts, seeds in plans:  # each joins while the earlier ones are running
            job, got = _job(model, prompt, opts, seeds)
            sched.submit(job)
            jobs.append((prompt, opts, seeds, got))
            threading.Event().wait(0.01)
        for prompt, opts, seeds, got in jobs:
            assert got.done.wait(60)
            for i, s in enumerate(seeds):
                (expected,) = sampler.samples_for(prompt, opts, [s])
                assert got.text.get(i, "") == expected.text
                assert got.finished[i] == expected.finish_reason
    finally:
        sched.close()


def test_torch_engine_serves_and_keeps_sessions(trained: Path, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from charrnn.infer.torch_engine import TorchEngine

    sampler = Sampler(TorchEngine.load(trained, "cpu"))  # type: ignore[arg-type]
    model = _model(trained, sampler)
    store = SessionStore(tmp_path / "s.sqlite")
    sched = Scheduler()
    try:
        opts = Options(60, Filters(0.8))
        job, got = _job(model, "ROMEO:", opts, [9])
        sched.submit(job)
        assert got.done.wait(60)
        assert got.text[0] == sampler.generate("ROMEO:", 60, 0.8, rng_seed=9)
        job, got = _job(model, "A", opts, [1], session=SessionPlan("t", store))
        sched.submit(job)
        assert got.done.wait(60)
        saved = store.get("t")
        assert saved is not None and saved.chars == 1 + len(got.text[0])
        # the stored state is the state after the text: the torch engine's own, in numpy layout
        fwd = sampler.engine.forward(model.engine.vocab.encode("A" + got.text[0]), last_only=True)
        ref = sampler.engine.to_numpy(fwd.state)
        for a, b in zip(saved.state.h, ref.h, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-4)
        base = sampler.engine.from_numpy(saved.state)
        job, got = _job(model, "", opts, [2], session=SessionPlan("t", store, base, saved.tail))
        sched.submit(job)
        assert got.done.wait(60) and len(got.text[0]) == 60
    finally:
        sched.close()
        store.close()
