"""charrnn: character-level recurrent language models, trained and sampled from the command line.

Importing this package is cheap on purpose: torch and numpy load only when a function needs them,
so `charrnn inspect` and `charrnn --help` answer instantly, and sampling on CPU never loads torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from charrnn.errors import CharRNNError, InputError

__version__ = "0.1.0"

if TYPE_CHECKING:
    from charrnn.infer.sampler import Sampler

__all__ = ["CharRNNError", "InputError", "Sampler", "__version__", "load"]


def load(path: str, device: str = "cpu", threads: int = 0, deterministic: bool = False) -> Sampler:
    """Load a checkpoint for sampling: `charrnn.load("runs/x/best.ckpt").generate("ROMEO:", 200)`.

    On CPU this never imports torch (the numpy engine); `device="cuda"` uses torch on the GPU.
    `threads` caps the CPU threads (0: every core this process may use). `deterministic`: sample i
    of a batch equals its seed run alone (CPU; slower batches).
    """
    from charrnn.infer.sampler import Sampler

    return Sampler.from_checkpoint(path, device, threads, deterministic)
