"""charrnn: character-level recurrent language models, trained and sampled from the command line.

Importing this package is cheap on purpose: torch and numpy load only when a function needs them,
so `charrnn inspect` and `charrnn --help` answer instantly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from charrnn.errors import CharRNNError, InputError

__version__ = "0.1.0"

if TYPE_CHECKING:
    from charrnn.sampler import Sampler

__all__ = ["CharRNNError", "InputError", "Sampler", "__version__", "load"]


def load(path: str, device: str = "cpu", **kwargs: Any) -> Sampler:
    """Load a checkpoint for sampling: `charrnn.load("runs/x/best.ckpt").generate("ROMEO:", 200)`."""
    from charrnn.sampler import Sampler

    return Sampler.from_checkpoint(path, device=device, **kwargs)
