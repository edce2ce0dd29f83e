"""What a fresh run is: its training config (defaults, fine-tuning's, or a resumed checkpoint's, with the
options given on top) and a new model's options (the rules that fit the defaults to the data and the
plan). `cli.train` calls these; the rules themselves are `charrnn.train.plan`'s pure functions.
"""

from __future__ import annotations

from dataclasses import fields

from charrnn.cli.console import console
from charrnn.train.config import TrainConfig, parse_duration
from charrnn.train.plan import FINETUNE_DEFAULTS, model_defaults

# ModelConfig's defaults, repeated rather than imported: importing the model would load torch for
# `charrnn -h` (a test checks that the two agree).
_M = {
    "cell": "lstm",
    "layers": 2,
    "hidden": 512,
    "embed": 64,
    "dropout": 0.3,
    "weight_drop": None,  # the cell's: 0.2 for the LSTM, 0 otherwise
    "locked_dropout": True,
}
# prep's validation split rule, repeated for the help text (prep imports numpy; a test checks them)
DEFAULT_VAL_FRAC, MIN_VAL_CHARS = 0.1, 1_000
# Without any stopping option a run stops by itself: after 10 minutes (the schedule anneals to it),
# or 50 epochs for a small corpus, whichever comes first.
DEFAULT_STOP = {"time_budget": 600.0, "max_epochs": 50}


def say_if_all_text(corpus: str, chars: int) -> None:
    """Say when raw text prepared without --val-frac was too small for a validation split."""
    from charrnn.data.prep import auto_val_frac

    if not auto_val_frac(chars):
        val = int(chars * DEFAULT_VAL_FRAC)
        console.print(
            f"{corpus}: {chars:,} chars, too few for a validation split ({DEFAULT_VAL_FRAC:.0%} "
            f"would be {val:,}, under {MIN_VAL_CHARS:,}): training on all of it",
            highlight=False,
            markup=False,
        )


def as_options(values: dict) -> str:
    """{"weight_drop": 0} → "--weight-drop 0": what a rule chose, as the user would have typed it."""
    return ", ".join(f"--{k.replace('_', '-')} {v:g}" for k, v in values.items())


_RULES = {
    "long-run": "a long run: using {} (the long-run defaults)",
    "all-text": "all of the text is for training: using {} (nothing is held out, so fitting the "
    "text is the goal; the long-run defaults do not apply)",
}


def new_model(dataset, given: dict, tcfg: TrainConfig, world_size: int, say: bool):
    """A fresh run's model: the options given, else the defaults this data and plan call for."""
    from charrnn.model import ModelConfig

    n_train, n_val = len(dataset.split("train")), len(dataset.split("val"))
    rule, values = model_defaults(tcfg, n_train, n_val, world_size)
    plain = ModelConfig(vocab_size=1, **{k: given.get(k, d) for k, d in _M.items()})
    # what the rule changes: options not given whose default (for this cell) differs
    chosen = {k: v for k, v in values.items() if k not in given and getattr(plain, k) != v}
    if chosen and say:
        console.print(_RULES[rule].format(as_options(chosen)), markup=False, highlight=False)
    merged = {k: given.get(k, chosen.get(k, d)) for k, d in _M.items()}
    return ModelConfig(vocab_size=dataset.vocab.size, **merged)


def train_config(given: dict, header, finetune: bool = False) -> TrainConfig:
    """Defaults (fine-tuning's where --init-from), or the checkpoint's config, with the options the
    user gave on top."""
    names = {f.name for f in fields(TrainConfig)}
    changes = {k: v for k, v in given.items() if k in names and k != "time_budget"}
    if "time_budget" in given:
        changes["time_budget"] = parse_duration(given["time_budget"])
    if finetune:
        changes = {**FINETUNE_DEFAULTS, **changes}
    if header is None:
        if not {"max_epochs", "max_steps", "time_budget"} & changes.keys():
            changes |= DEFAULT_STOP  # about ten minutes on a ~1 MB corpus, never endless
        return TrainConfig(**changes)
    # the streams are the checkpoint's (check_unchanged refused any real change); its per-process
    # batch size is what the trainer shares out among this run's processes
    for fixed in ("batch_size", "seq_len"):
        changes.pop(fixed, None)
    return TrainConfig.from_dict(header.meta["train"]).with_(**changes)
