"""A training worker for the distributed tests, importable by spawned processes (elastic_launch)."""

from __future__ import annotations

from pathlib import Path

import torch


def on_two_ranks(run_id: str, fn, *args: object) -> dict:
    """Run `fn(*args)` on two local gloo ranks (elastic_launch, a free port); {rank: its return}."""
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=2,
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",
        run_id=run_id,
        max_restarts=0,
    )
    return elastic_launch(config, fn)(*args)


def train_steps(dataset_dir: str, out_dir: str, batch_size: int, steps: int) -> dict:
    """Train `steps` steps; every rank returns its final weights (rank 0 also writes the run)."""
    from charrnn.data.dataset import load_dataset
    from charrnn.model import ModelConfig
    from charrnn.training.config import TrainConfig
    from charrnn.training.loop import Trainer

    torch.set_num_threads(1)
    ds = load_dataset(Path(dataset_dir))
    # no randomness in the forward: each rank would draw its own weight-drop mask
    model = ModelConfig(
        vocab_size=ds.vocab.size, hidden=32, embed=8, layers=2, dropout=0.0, weight_drop=0.0
    )
    cfg = TrainConfig(
        batch_size=batch_size,
        seq_len=16,
        max_steps=steps,
        eval_every=steps,
        log_every=1,
        precision="fp32",
        eval_chars=2000,
    )
    trainer = Trainer(ds, model, cfg, Path(out_dir), device="cpu")
    trainer.run()
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}
