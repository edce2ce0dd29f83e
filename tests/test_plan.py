"""The planning rules as one pure function (`charrnn.training.plan.plan`): what a fresh, resumed and
fine-tuning run chooses from the options given, the text's size and vocabulary, the budget and the
machine's speed (data: `Speeds`), with no I/O."""

from __future__ import annotations

import math

from hypothesis import given as examples
from hypothesis import strategies as st

from charrnn.model_config import ModelConfig
from charrnn.training.plan import DEFAULT_STOP, FINETUNE_DEFAULTS, RULES_VERSION, plan
from charrnn.training.sizing import (
    CANDIDATES,
    MAX_EVAL_SHARE,
    MAX_WEIGHTS_PER_CHAR,
    MIN_EPOCHS,
    MIN_EVALS,
    MIN_STEPS,
    evaluations,
)
from charrnn.training.speed import from_shapes, reference, weight_count

# tiny-shakespeare's split: the text the pinned plans (and the README's figures) are for
SHAKESPEARE = {"train": 1_003_854, "val": 111_540, "vocab_size": 65}


def fresh(given: dict, train: int = 900_000, val: int = 100_000, vocab_size: int = 65, **kw):
    return plan(given, vocab_size=vocab_size, train_chars=train, val_chars=val, **kw)


def shape(p) -> tuple:
    m = p.model
    return (m.layers, m.hidden, m.dropout, m.weight_drop)


def test_a_megabyte_gets_todays_plans_at_ten_and_sixty_minutes_at_the_reference_speed() -> None:
    """The README's quality figures were measured with these plans: they must not move."""
    for budget, model in (("10m", (2, 512, 0.3, 0.2)), ("60m", (3, 512, 0.4, 0.2))):
        p = fresh({"time_budget": budget}, **SHAKESPEARE)
        assert shape(p) == model, budget
        assert (p.train.lr, p.train.batch_size, p.train.seq_len) == (0.012, 64, 100)
        assert (p.train.eval_every, p.train.warmup) == (250, 100)
        assert p.record["inputs"]["speed"]["source"] == "reference"
        assert p.record["rules"] == RULES_VERSION


def test_a_small_text_in_a_short_budget_gets_a_small_model_with_more_dropout() -> None:
    """The case that started it: 86 KB of licence texts in 3 minutes (the long-run rule gave it
    3×512); a smaller model makes enough steps, and many epochs call for more dropout."""
    p = fresh({"time_budget": "3m"}, train=77_000, val=8_600, vocab_size=95)
    assert (p.model.layers, p.model.hidden) in CANDIDATES[:2]
    assert p.record["limit"]["lacks"] == "steps"
    assert p.model.dropout >= 0.4
    assert p.record["estimate"]["steps"] >= MIN_STEPS


def test_a_text_too_large_to_see_often_gets_the_model_that_sees_it_most() -> None:
    """5 MB in ten minutes: 2×256 would make its steps but see the text about 4 times; 1×256 sees
    it about 8 times, and did better (docs/defaults.md). An hour affords a wider model again."""
    five = {"train": 4_500_000, "val": 500_000, "vocab_size": 228}
    speeds = from_shapes(
        {"1x256": 66_000, "2x256": 35_500, "2x512": 13_000}, "lstm", 64, 228, "cached"
    )
    ten = fresh({"time_budget": "10m"}, speeds=speeds, **five)
    assert (ten.model.layers, ten.model.hidden) == (1, 256)
    assert ten.record["limit"] == {"shape": "2x256", "lacks": "passes"}
    assert ten.record["estimate"]["epochs"] >= MIN_EPOCHS
    # the same speeds on a 1 MB text: 2×512 makes its 1,100 steps and 7 passes
    one = fresh({"time_budget": "10m"}, speeds=speeds, train=1_000_000, val=100_000)
    assert (one.model.layers, one.model.hidden) == (2, 512)
    hour = fresh({"time_budget": "60m"}, speeds=speeds, **five)
    assert (hour.model.layers, hour.model.hidden) > (1, 256)
    assert hour.record["estimate"]["epochs"] >= MIN_EPOCHS
    # 100 MB is never seen five times in an hour here: the cheapest shape, the most passes
    huge = fresh({"time_budget": "60m"}, train=100_000_000, val=1_000_000, speeds=speeds)
    assert (huge.model.layers, huge.model.hidden) == CANDIDATES[0]


def test_a_faster_machine_affords_a_larger_model() -> None:
    slow = from_shapes({"2x256": 9_000, "2x512": 3_000}, "lstm", 64, 65, "measured", 3.0)
    fast = from_shapes({"2x256": 400_000, "2x512": 300_000}, "lstm", 64, 65, "measured", 3.0)
    small = fresh({"time_budget": "10m"}, speeds=slow)
    big = fresh({"time_budget": "10m"}, speeds=fast)
    assert (small.model.layers, small.model.hidden) < (big.model.layers, big.model.hidden)
    assert big.record["inputs"]["speed"]["chars_per_sec"] == {"2x256": 400_000, "2x512": 300_000}
    # measuring took three seconds of the budget: the steps planned leave them out
    cached = from_shapes({"2x256": 9_000, "2x512": 3_000}, "lstm", 64, 65, "cached")
    unmeasured = fresh({"time_budget": "10m"}, speeds=cached)
    assert shape(unmeasured) == shape(small)
    assert small.record["estimate"]["steps"] < unmeasured.record["estimate"]["steps"]


def test_a_small_text_never_gets_a_model_that_can_learn_it_by_heart() -> None:
    """86 KB of licences at 10 minutes: 2×512 (43 weights a character) lost 0.05 nats to 2×256
    (11) on this machine; a longer budget or a faster machine must not bring it back."""
    fast = from_shapes(
        {"1x256": 400_000, "2x256": 300_000, "2x512": 200_000}, "lstm", 64, 82, "cached"
    )
    for budget in ("10m", "30m", "60m", "8h"):
        p = fresh({"time_budget": budget}, train=77_400, val=8_600, vocab_size=82, speeds=fast)
        assert (p.model.layers, p.model.hidden) == (2, 256), budget
        assert p.record["limit"] == {"shape": "2x512", "lacks": "weights"}  # the plan says why
    # the line lies between 2×256 and 2×512 at this vocabulary
    assert weight_count("lstm", 2, 256, 64, 82) <= MAX_WEIGHTS_PER_CHAR * 77_400
    assert weight_count("lstm", 2, 512, 64, 82) > MAX_WEIGHTS_PER_CHAR * 77_400
    # a wider model once the text is large enough for it
    more = fresh({"time_budget": "60m"}, train=400_000, val=40_000, vocab_size=82, speeds=fast)
    assert (more.model.layers, more.model.hidden) == (3, 512)
    assert "limit" not in more.record  # the largest candidate: nothing larger to explain
    # a text too small for any candidate gets the smallest; a given shape is never capped
    tiny = fresh({"time_budget": "60m"}, train=4_000, val=0, vocab_size=40, speeds=fast)
    assert (tiny.model.layers, tiny.model.hidden) == CANDIDATES[0]
    assert tiny.record["limit"] == {"shape": "1x256", "lacks": "weights"}  # even the smallest
    given = fresh({"time_budget": "60m", "layers": 3, "hidden": 512}, train=4_000, val=0)
    assert (given.model.layers, given.model.hidden) == (3, 512) and "limit" not in given.record
    # --layers given: the width is chosen under the cap too
    two = fresh({"time_budget": "60m", "layers": 2}, train=77_400, val=8_600, speeds=fast)
    assert (two.model.layers, two.model.hidden) == (2, 256)
    assert two.record["limit"] == {"shape": "2x512", "lacks": "weights"}
    # without a time budget nothing is sized, so nothing is explained
    assert "limit" not in fresh({"max_steps": 100}, train=77_400, val=8_600).record


def test_what_is_given_wins_and_the_rest_is_chosen_to_suit_it() -> None:
    p = fresh({"time_budget": "60m", "layers": 2}, **SHAKESPEARE)
    assert (p.model.layers, p.model.hidden) == (2, 512)
    assert "layers" not in p.record["chosen"] and p.record["chosen"]["hidden"] == 512
    # three layers in three minutes on 5 MB: 3×512 would make too few steps, so a narrower one
    p = fresh({"time_budget": "3m", "layers": 3}, train=4_500_000, val=500_000, vocab_size=228)
    assert (p.model.layers, p.model.hidden) == (3, 256)
    p = fresh({"time_budget": "60m", "layers": 2, "hidden": 128, "dropout": 0.1, "eval_every": 7})
    assert shape(p)[:3] == (2, 128, 0.1) and p.train.eval_every == 7
    assert set(p.record["chosen"]) <= {"weight_drop", "warmup", "eval_every"}


def test_under_one_epoch_nothing_is_regularised() -> None:
    p = fresh({"time_budget": "3m"}, train=100_000_000, val=1_000_000, vocab_size=200)
    assert (p.model.dropout, p.model.weight_drop) == (0.0, 0.0)
    assert p.record["estimate"]["epochs"] < 1


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


def test_without_a_time_budget_nothing_is_measured_and_the_shape_is_the_standard_one() -> None:
    for given, epochs in (({"max_steps": 2000}, 14.2), ({"max_epochs": 3}, 3.0)):
        p = fresh(given)
        assert (p.model.layers, p.model.hidden, p.train.batch_size, p.train.seq_len) == (
            2,
            512,
            64,
            100,
        )
        assert p.record["inputs"]["speed"] is None
        assert math.isclose(p.record["estimate"]["epochs"], epochs, rel_tol=0.01)
    assert fresh({"max_steps": 2000}).model.dropout == 0.3  # 14 epochs
    assert fresh({"max_epochs": 3}).model.dropout == 0.2
    assert fresh({"max_steps": 2000}, world_size=4).model.dropout == 0.4  # 57 epochs: 4 processes


def test_short_runs_evaluate_at_least_five_times_within_a_tenth_of_the_budget() -> None:
    p = fresh({"max_steps": 300})
    assert p.train.eval_every == 60 and evaluations(300, 60) == MIN_EVALS
    assert fresh({"max_steps": 3}).train.eval_every == 1
    # 5 MB in 3 minutes: one evaluation reads a million characters (both weight sets)
    p = fresh({"time_budget": "3m"}, train=4_500_000, val=500_000, vocab_size=228)
    est = p.record["estimate"]
    assert evaluations(est["steps"], p.train.eval_every) >= MIN_EVALS
    assert p.train.eval_chars == 1_000_000  # the characters evaluated do not change
    # an hour on 10 MB: every 250 steps would spend over a tenth of the hour evaluating
    p = fresh({"time_budget": "60m"}, train=9_000_000, val=1_000_000)
    est = p.record["estimate"]
    n = evaluations(est["steps"], p.train.eval_every)
    assert p.train.eval_every > 250 and n * est["eval_seconds"] <= 0.1 * 3600 + est["eval_seconds"]


@examples(
    chars=st.integers(2_000, 100_000_000),
    vocab=st.integers(30, 5_000),
    seconds=st.integers(30, 24 * 3600),
    world=st.sampled_from([1, 2, 4, 8]),
)
def test_every_text_budget_and_world_gets_a_sane_plan(chars, vocab, seconds, world) -> None:
    val = chars // 9
    p = fresh(
        {"time_budget": f"{seconds}s"}, train=chars, val=val, vocab_size=vocab, world_size=world
    )
    assert (p.model.layers, p.model.hidden) in CANDIDATES
    assert 0 <= p.model.dropout <= 0.5 and p.train.warmup <= max(1, p.record["estimate"]["steps"])
    steps = p.record["estimate"]["steps"]
    t_eval = p.record["estimate"]["eval_seconds"]
    affordable = int(MAX_EVAL_SHARE * seconds / t_eval) if t_eval else MIN_EVALS
    assert evaluations(steps, p.train.eval_every) >= min(MIN_EVALS, steps, max(1, affordable))
    # more time never plans a smaller model; more processes never fewer epochs of one shape
    longer = fresh({"time_budget": f"{seconds * 4}s"}, train=chars, val=val, vocab_size=vocab)
    alone = fresh({"time_budget": f"{seconds}s"}, train=chars, val=val, vocab_size=vocab)
    size = {s: i for i, s in enumerate(CANDIDATES)}
    assert (
        size[(longer.model.layers, longer.model.hidden)]
        >= size[(alone.model.layers, alone.model.hidden)]
    )
    fixed = {"time_budget": f"{seconds}s", "layers": 2, "hidden": 256}
    many = fresh(fixed, train=chars, val=val, vocab_size=vocab, world_size=world)
    one = fresh(fixed, train=chars, val=val, vocab_size=vocab)
    if chars > 64 * 100 * 8 * 4:  # a smaller text shrinks the batch to fit the processes
        assert many.record["estimate"]["epochs"] >= 0.95 * one.record["estimate"]["epochs"]


def test_a_larger_vocabulary_costs_speed() -> None:
    """A 5,000-character vocabulary (Chinese) makes the head as costly as the recurrence."""
    same = {"time_budget": "10m", "layers": 2, "hidden": 512}
    few, many = fresh(same, vocab_size=30), fresh(same, vocab_size=5000)
    assert many.record["estimate"]["chars_per_sec"] < few.record["estimate"]["chars_per_sec"] * 0.6
    few, many = (
        fresh({"time_budget": "10m"}, vocab_size=30),
        fresh({"time_budget": "10m"}, vocab_size=5000),
    )
    assert (many.model.layers, many.model.hidden) < (few.model.layers, few.model.hidden)


def test_the_cells_weight_drop_default_is_kept() -> None:
    assert fresh({"cell": "gru", "time_budget": "10m"}).model.weight_drop == 0.0
    assert (
        fresh({"cell": "lstm", "weight_drop": 0.5, "time_budget": "10m"}).model.weight_drop == 0.5
    )


def source_meta(**model) -> dict:
    cfg = ModelConfig(vocab_size=50, layers=3, hidden=64, **model)
    return {"model": cfg.to_dict(), "train": {"batch_size": 8, "seq_len": 32}}


def test_fine_tuning_keeps_the_source_shape_and_its_own_rate_and_warmup() -> None:
    p = fresh({"time_budget": "60m"}, source_meta=source_meta(dropout=0.2), vocab_size=70)
    assert (p.model.layers, p.model.hidden, p.model.dropout, p.model.vocab_size) == (3, 64, 0.2, 70)
    assert (p.train.lr, p.train.warmup) == (FINETUNE_DEFAULTS["lr"], FINETUNE_DEFAULTS["warmup"])
    assert (p.train.batch_size, p.train.seq_len) == (64, 100)
    assert set(p.record["chosen"]) == {"eval_every", "warmup"} and p.notes == ()
    short = fresh({"max_steps": 100}, source_meta=source_meta(), vocab_size=70)
    assert short.train.eval_every == 20 and short.train.warmup == FINETUNE_DEFAULTS["warmup"]


def test_fine_tuning_on_all_of_a_text_drops_dropout() -> None:
    p = fresh({}, train=500, val=0, source_meta=source_meta(dropout=0.2))
    assert (p.model.dropout, p.model.weight_drop) == (0.0, 0.0)
    assert "--dropout 0, --weight-drop 0" in p.notes[0]


def test_a_resumed_run_keeps_its_model_and_plan_and_takes_new_regularisers() -> None:
    meta = source_meta(dropout=0.2)
    meta["train"] = {"batch_size": 8, "seq_len": 32, "max_steps": 100, "eval_every": 17}
    meta["plan"] = {"rules": 1, "chosen": {"eval_every": 17}}
    p = fresh({"max_steps": 200, "dropout": 0.5, "batch_size": 64}, resume_meta=meta, vocab_size=50)
    assert (p.model.layers, p.model.dropout) == (3, 0.5)
    assert (p.train.max_steps, p.train.batch_size, p.train.seq_len, p.train.eval_every) == (
        200,
        8,
        32,
        17,
    )
    assert p.record is meta["plan"] and p.notes == ()
    del meta["plan"]  # a checkpoint from before plans: nothing is planned (the loop fits warmup)
    assert fresh({}, resume_meta=meta, vocab_size=50).record is None


def test_reference_speed_is_the_development_machines() -> None:
    ref = reference()
    assert ref.source == "reference" and ref.seconds == 0
    assert ref.chars_per_sec(ref.points[0][0]) == 38_000
