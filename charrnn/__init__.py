"""charrnn: character-level recurrent language models, trained and sampled from the command line.

The public names live here (docs/python-api.md). Importing this package is cheap on purpose: each
name loads its module on first use (PEP 562 `__getattr__`), so `charrnn inspect` and `charrnn --help`
answer instantly and sampling on CPU never loads torch. Every other module path is internal and
changed in 0.2.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from charrnn.errors import CharRNNError, InputError

__version__ = "0.2.0"

if TYPE_CHECKING:
    from charrnn.api.events import AllText, FineTuning, Planned, Prepared
    from charrnn.api.files import export, prep
    from charrnn.api.options import TrainOptions
    from charrnn.api.run import Run, RunInterrupted, Stop, plan, train
    from charrnn.data.dataset import load_dataset
    from charrnn.infer.beam import beam_search
    from charrnn.infer.controls import Rules
    from charrnn.infer.logits import Filters
    from charrnn.infer.sampler import Options, Sample, Sampler
    from charrnn.infer.score import Score, Scorer
    from charrnn.model_config import ModelConfig
    from charrnn.render import Notebook, Terminal
    from charrnn.training.config import TrainConfig
    from charrnn.training.events import Evaluated, Finished, Logged, Note, Snapshot, Started
    from charrnn.training.loop import Trainer
    from charrnn.training.plan import Plan
    from charrnn.vocab import Vocab

# public name → the module that defines it (imported on first use)
_LAZY = {
    "Sampler": "charrnn.infer.sampler",
    "Options": "charrnn.infer.sampler",
    "Sample": "charrnn.infer.sampler",
    "Filters": "charrnn.infer.logits",
    "Rules": "charrnn.infer.controls",
    "beam_search": "charrnn.infer.beam",
    "Scorer": "charrnn.infer.score",
    "Score": "charrnn.infer.score",
    "Vocab": "charrnn.vocab",
    "ModelConfig": "charrnn.model_config",
    "TrainConfig": "charrnn.training.config",
    "Trainer": "charrnn.training.loop",
    "prep": "charrnn.api.files",
    "export": "charrnn.api.files",
    "load_dataset": "charrnn.data.dataset",
    # training from Python: the call, its options, result and stop, the plan, the events
    "train": "charrnn.api.run",
    "plan": "charrnn.api.run",
    "Run": "charrnn.api.run",
    "Stop": "charrnn.api.run",
    "RunInterrupted": "charrnn.api.run",
    "TrainOptions": "charrnn.api.options",
    "Plan": "charrnn.training.plan",
    "Prepared": "charrnn.api.events",
    "AllText": "charrnn.api.events",
    "FineTuning": "charrnn.api.events",
    "Planned": "charrnn.api.events",
    "Started": "charrnn.training.events",
    "Note": "charrnn.training.events",
    "Logged": "charrnn.training.events",
    "Evaluated": "charrnn.training.events",
    "Snapshot": "charrnn.training.events",
    "Finished": "charrnn.training.events",
    "Terminal": "charrnn.render",
    "Notebook": "charrnn.render",
}

__all__ = [  # noqa: RUF022  (grouped as the docs list them)
    "CharRNNError",
    "InputError",
    "ModelConfig",
    "Options",
    "Filters",
    "Rules",
    "Sample",
    "Sampler",
    "Score",
    "Scorer",
    "TrainConfig",
    "Trainer",
    "Vocab",
    "__version__",
    "beam_search",
    "load",
    "load_dataset",
    "prep",
    "export",
    "train",
    "plan",
    "Run",
    "Stop",
    "RunInterrupted",
    "TrainOptions",
    "Plan",
    "Prepared",
    "AllText",
    "FineTuning",
    "Planned",
    "Started",
    "Note",
    "Logged",
    "Evaluated",
    "Snapshot",
    "Finished",
    "Terminal",
    "Notebook",
]


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'charrnn' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def load(
    path: str,
    device: str = "cpu",
    threads: int = 0,
    deterministic: bool = False,
    engine: str = "numpy",
    dtype: str = "int8",
) -> Sampler:
    """Load a checkpoint for sampling: `charrnn.load("runs/x/best.ckpt").generate("ROMEO:", 200)`.

    On CPU this never imports torch (the numpy engine); `device="cuda"` (or "auto": a GPU where
    there is one) uses torch. `threads` caps the CPU threads (0: every core this process may use).
    `deterministic`: sample i of a batch equals its seed run alone (CPU; slower batches).
    `engine="onnx"`: onnxruntime with int8 weights (`dtype="f32"`: full precision), faster on one
    stream; needs the onnx extra (`pip install -e '.[onnx]'` in the checkout).
    """
    from charrnn.infer.sampler import Sampler

    return Sampler.from_checkpoint(path, device, threads, deterministic, engine, dtype)
