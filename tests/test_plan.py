"""The planning rules as one pure function (`charrnn.train.plan.plan`): what a fresh, resumed and
fine-tuning run chooses from the options given, the text's size and the budget, with no I/O."""

from __future__ import annotations

from charrnn.model_config import ModelConfig
from charrnn.train.plan import DEFAULT_STOP, FINETUNE_DEFAULTS, LONG_RUN_MODEL, plan

MB = 1_000_000


def fresh(given: dict, train: int = 900_000, val: int = 100_000, vocab_size: int = 65, **kw):
    return plan(given, vocab_size=vocab_size, train_chars=train, val_chars=val, **kw)


def test_a_ten_minute_run_on_a_megabyte_gets_the_standard_model() -> None:
    p = fresh({"time_budget": "10m"})
    assert (p.model.layers, p.model.hidden, p.model.dropout, p.model.weight_drop) == (
        2,
        512,
        0.3,
        0.2,
    )
    assert (p.train.lr, p.train.batch_size, p.train.seq_len, p.train.eval_every) == (
        0.012,
        64,
        100,
        250,
    )
    assert p.notes == ()


def test_an_hour_on_a_megabyte_is_a_long_run() -> None:
    p = fresh({"time_budget": "60m"})
    assert (p.model.layers, p.model.dropout) == (
        LONG_RUN_MODEL["layers"],
        LONG_RUN_MODEL["dropout"],
    )
    assert p.notes == ("a long run: using --layers 3, --dropout 0.4 (the long-run defaults)",)


def test_what_is_given_wins_and_only_the_rest_is_chosen() -> None:
    p = fresh({"time_budget": "60m", "layers": 2})
    assert (p.model.layers, p.model.dropout) == (2, 0.4)
    assert p.notes == ("a long run: using --dropout 0.4 (the long-run defaults)",)
    assert fresh({"time_budget": "60m", "layers": 2, "dropout": 0.1}).notes == ()


def test_no_validation_split_means_no_dropout_whatever_the_length() -> None:
    p = fresh({"max_epochs": 500}, train=30, val=0)
    assert (p.model.dropout, p.model.weight_drop, p.model.layers) == (0.0, 0.0, 2)
    assert p.notes[0].startswith(
        "all of the text is for training: using --dropout 0, --weight-drop 0"
    )


def test_no_stopping_option_stops_after_ten_minutes_or_fifty_epochs() -> None:
    p = fresh({})
    assert (p.train.time_budget, p.train.max_epochs) == (
        DEFAULT_STOP["time_budget"],
        DEFAULT_STOP["max_epochs"],
    )
    assert fresh({"max_steps": 10}).train.time_budget is None


def test_the_cells_weight_drop_default_is_kept() -> None:
    assert fresh({"cell": "gru", "time_budget": "10m"}).model.weight_drop == 0.0
    assert (
        fresh({"cell": "lstm", "weight_drop": 0.5, "time_budget": "10m"}).model.weight_drop == 0.5
    )


def source_meta(**model) -> dict:
    cfg = ModelConfig(vocab_size=50, layers=3, hidden=64, **model)
    return {"model": cfg.to_dict(), "train": {"batch_size": 8, "seq_len": 32}}


def test_fine_tuning_keeps_the_source_shape_with_its_own_rate() -> None:
    p = fresh({"time_budget": "60m"}, source_meta=source_meta(dropout=0.2), vocab_size=70)
    assert (p.model.layers, p.model.hidden, p.model.dropout, p.model.vocab_size) == (3, 64, 0.2, 70)
    assert (p.train.lr, p.train.warmup) == (FINETUNE_DEFAULTS["lr"], FINETUNE_DEFAULTS["warmup"])
    assert p.notes == ()  # the long-run rule does not apply to a model that exists


def test_fine_tuning_on_all_of_a_text_drops_dropout() -> None:
    p = fresh({}, train=500, val=0, source_meta=source_meta(dropout=0.2))
    assert (p.model.dropout, p.model.weight_drop) == (0.0, 0.0)
    assert "--dropout 0, --weight-drop 0" in p.notes[0]


def test_a_resumed_run_keeps_its_model_and_takes_new_regularisers() -> None:
    meta = source_meta(dropout=0.2)
    meta["train"] = {"batch_size": 8, "seq_len": 32, "max_steps": 100}
    p = fresh({"max_steps": 200, "dropout": 0.5, "batch_size": 64}, resume_meta=meta, vocab_size=50)
    assert (p.model.layers, p.model.dropout) == (3, 0.5)
    assert (p.train.max_steps, p.train.batch_size, p.train.seq_len) == (200, 8, 32)
    assert p.notes == ()


def test_every_process_counts_towards_the_epochs_a_run_plans() -> None:
    """2,000 steps of 64 × 100 characters are 14 epochs of 900,000 for one process (the standard
    model), 28 for two (a long run): the world size is an input of the plan."""
    assert fresh({"max_steps": 2000}, world_size=1).model.layers == 2
    assert fresh({"max_steps": 2000}, world_size=2).model.layers == LONG_RUN_MODEL["layers"]
