"""The server's app in this process (Starlette's TestClient runs its lifespan, so the batching
worker starts), over a tiny model trained for a few steps: for tests of the request contract that
need no real socket and must stay fast (the parser fuzz test, the limits)."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1×32 LSTM trained for 4 steps on a slice of the built-in corpus: its best.ckpt."""
    from charrnn.data.dataset import load_dataset
    from charrnn.data.prep import prep
    from charrnn.model import ModelConfig
    from charrnn.training.config import TrainConfig
    from charrnn.training.loop import Trainer
    from tests.conftest import corpus_text

    base = tmp_path_factory.mktemp("tiny")
    (base / "text.txt").write_text(corpus_text(30_000), encoding="utf-8")
    prep([str(base / "text.txt")], base / "ds")
    ds = load_dataset(base / "ds")
    model = ModelConfig(vocab_size=ds.vocab.size, hidden=32, embed=8, layers=1)
    cfg = TrainConfig(
        batch_size=4, seq_len=32, max_steps=4, eval_every=4, eval_chars=2_000, precision="fp32"
    )
    Trainer(ds, model, cfg, base / "run").run()
    return base / "run" / "best.ckpt"


@contextlib.contextmanager
def app_client(ckpt: Path, tmp_path: Path, **settings) -> Iterator[TestClient]:
    """A TestClient over the app serving `ckpt` as model "m", with these Settings fields."""
    from charrnn.serve.app import build_app
    from charrnn.serve.chat_template import parse_template
    from charrnn.serve.models import load_models
    from charrnn.serve.service import Settings

    models = load_models([("m", ckpt)])
    base = Settings(sessions=tmp_path / "s.sqlite", chat={"m": parse_template("plain")})
    with TestClient(build_app(models, dataclasses.replace(base, **settings))) as client:
        yield client
