"""What `charrnn train` does for a run that starts from a checkpoint's weights: fitting the model to
the text's vocabulary (--init-from), and reading a resumed fine-tuning run's text through its wider
vocabulary. The merge and the transplant themselves are `charrnn.training.finetune`'s.
"""

from __future__ import annotations

from charrnn.cli.console import console
from charrnn.training.config import TrainConfig


def fine_tune(source, dataset, tcfg: TrainConfig, say: bool):
    """The model a fine-tuning run starts from, fitted to the text's vocabulary; says what it did."""
    from charrnn.training.finetune import start_from

    start = start_from(source, dataset.vocab, tcfg.rng_seed)
    if say:
        m = source.meta["model"]
        console.print(
            f"fine-tuning from {source.path} ({m['cell'].upper()} {m['layers']}×{m['hidden']}, "
            f"step {start.record['step']:,}, {start.record['weights']} weights): "
            f"lr {tcfg.lr:g}, warmup {tcfg.warmup}",
            highlight=False,
            markup=False,
        )
        if start.new_chars:
            shown = " ".join(repr(c) for c in start.new_chars[:40])
            more = f" and {len(start.new_chars) - 40} more" if len(start.new_chars) > 40 else ""
            console.print(
                f"{len(start.new_chars)} new characters join the vocabulary "
                f"({start.vocab.size} in all): {shown}{more}",
                highlight=False,
                markup=False,
            )
    return start


def as_checkpoint_vocab(dataset, chars: list[str]):
    """A resumed fine-tuning run's text, read through the checkpoint's wider vocabulary (any other
    mismatch is left for the corpus check to report)."""
    from charrnn.training.finetune import reencode
    from charrnn.vocab import Vocab

    if dataset.vocab.to_json() == chars or not set(dataset.vocab.chars) <= set(chars):
        return dataset
    return reencode(dataset, Vocab.from_json(chars))
