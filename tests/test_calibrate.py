"""Calibration measures this machine for real: timed training steps of the reference shapes, a cache
keyed by what changes speed, refreshed from finished runs, and rank 0 measuring for every rank."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from charrnn.model_config import ModelConfig
from charrnn.training import calibrate, speed_cache
from charrnn.training.speed import REFERENCE, reference

from .conftest import corpus_text, run_cli
from .dist_worker import on_two_ranks

CPU = torch.device("cpu")


@pytest.fixture
def calibrating(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests measure: the suite's fixed reference speed is switched off."""
    monkeypatch.delenv(calibrate.NO_CALIBRATE_ENV, raising=False)


def test_a_measurement_is_the_speed_of_real_training_steps() -> None:
    small = calibrate.measure(
        ModelConfig(vocab_size=40, hidden=32, embed=8, layers=1), 4, 16, CPU, "fp32"
    )
    assert math.isfinite(small) and small > 0


def cached_readings() -> dict:
    """The cache file's keyed readings (format 2)."""
    data = json.loads(calibrate.cache_file().read_text())
    assert data["format"] == speed_cache.FORMAT
    return data["readings"]


def write_cache(readings: object) -> None:
    calibrate.cache_file().parent.mkdir(parents=True, exist_ok=True)
    calibrate.cache_file().write_text(
        json.dumps({"format": speed_cache.FORMAT, "readings": readings})
    )


def key(model: ModelConfig, batch: int = 4, seq: int = 16, world: int = 1) -> str:
    return calibrate.reading_key(CPU, "fp32", model, world, batch, seq)


@pytest.mark.usefixtures("calibrating")
def test_the_first_plan_measures_and_the_next_reads_the_cache() -> None:
    model = ModelConfig(vocab_size=50)
    first = calibrate.speeds(model, 4, 16, CPU, "fp32", world=1, budget=60)
    assert first.source == "measured" and first.seconds > 0
    assert sorted(first.shapes) == sorted(calibrate.CPU_SHAPES)  # arithmetic scales the rest
    cache = cached_readings()
    (only,) = cache
    assert only == key(model) and only.startswith(calibrate.machine_key(CPU, "fp32", "lstm", 50, 1))
    assert "batch=4 | seq=16 | embed=64 | weight_drop=0.2 | locked_dropout=True" in only
    assert set(cache[only]) == set(calibrate.CPU_SHAPES)

    again = calibrate.speeds(model, 4, 16, CPU, "fp32", world=1, budget=60)
    assert again.source == "cached" and again.seconds == 0  # costs the budget nothing
    assert again.shapes == first.shapes


@pytest.mark.usefixtures("calibrating")
def test_what_changes_speed_is_measured_afresh() -> None:
    calibrate.speeds(ModelConfig(vocab_size=50), 4, 16, CPU, "fp32", world=1, budget=60)
    other = calibrate.speeds(ModelConfig(vocab_size=51), 4, 16, CPU, "fp32", world=1, budget=60)
    gru = calibrate.speeds(
        ModelConfig(vocab_size=50, cell="gru"), 4, 16, CPU, "fp32", world=1, budget=60
    )
    assert other.source == gru.source == "measured"
    assert len(cached_readings()) == 3


@pytest.mark.usefixtures("calibrating")
@pytest.mark.parametrize(
    ("batch", "seq", "options"),
    [
        (2, 16, {}),  # a --batch-size 2 run, or a tiny text whose batch was halved
        (4, 8, {}),
        (4, 16, {"embed": 16}),
        (4, 16, {"weight_drop": 0.0}),
        (4, 16, {"locked_dropout": False}),
    ],
)
def test_a_reading_serves_only_the_conditions_it_was_taken_under(
    batch: int, seq: int, options: dict
) -> None:
    """A plan at batch 4 × seq-len 16 (embed 64, weight-drop 0.2, locked dropout) never reads a
    speed taken under other conditions: one `--batch-size 8` run used to set every later plan's
    speeds, several times too slow for the default batch."""
    model = ModelConfig(vocab_size=50)
    calibrate.speeds(
        ModelConfig(vocab_size=50, **options), batch, seq, CPU, "fp32", world=1, budget=60
    )
    plan = calibrate.speeds(model, 4, 16, CPU, "fp32", world=1, budget=60)
    assert plan.source == "measured"
    assert len(cached_readings()) == 2  # both kept, each under its own conditions


@pytest.mark.usefixtures("calibrating")
def test_a_finished_runs_speed_replaces_a_slow_reading() -> None:
    model = ModelConfig(vocab_size=50, layers=2, hidden=512)
    write_cache({key(model, world=2): {"1x256": 60_000.0, "2x256": 30_000.0, "2x512": 700.0}})
    # a reading taken while the host was busy would choose tiny models from now on ...
    calibrate.remember(model, CPU, "fp32", 2, 4, 16, chars_per_sec=22_000.0)
    # ... until a real run of that shape says how fast it is (per process: two shared 22k)
    assert cached_readings()[key(model, world=2)] == {
        "1x256": 60_000.0,
        "2x256": 30_000.0,
        "2x512": 11_000.0,
    }
    cached = calibrate.speeds(model, 4, 16, CPU, "fp32", world=2, budget=60)
    assert cached.source == "cached"
    assert cached.shapes["2x512"] == 22_000.0  # both processes' characters


@pytest.mark.usefixtures("calibrating")
def test_a_finished_run_refreshes_only_its_own_conditions() -> None:
    model = ModelConfig(vocab_size=50, layers=2, hidden=512)
    default = {"1x256": 60_000.0, "2x256": 30_000.0, "2x512": 12_000.0}
    write_cache({key(model, batch=64, seq=100): default})
    calibrate.remember(model, CPU, "fp32", 1, 8, 100, chars_per_sec=2_500.0)  # --batch-size 8
    readings = cached_readings()
    assert readings[key(model, batch=64, seq=100)] == default
    assert readings[key(model, batch=8, seq=100)] == {"2x512": 2_500.0}


@pytest.mark.usefixtures("calibrating")
def test_an_unreadable_cache_costs_only_a_measurement() -> None:
    calibrate.cache_file().parent.mkdir(parents=True)
    calibrate.cache_file().write_text("{not json")
    got = calibrate.speeds(ModelConfig(vocab_size=50), 4, 16, CPU, "fp32", world=1, budget=60)
    assert got.source == "measured"
    assert cached_readings()  # rewritten whole


@pytest.mark.usefixtures("calibrating")
def test_an_older_cache_files_unkeyed_readings_are_ignored() -> None:
    """Format 1 kept one reading per shape whatever the batch: it is not trusted, and the first
    write replaces it with the keyed format."""
    model = ModelConfig(vocab_size=50)
    old = {calibrate.machine_key(CPU, "fp32", "lstm", 50, 1): {"2x512": 700.0}}
    calibrate.cache_file().parent.mkdir(parents=True)
    calibrate.cache_file().write_text(json.dumps(old))
    got = calibrate.speeds(model, 4, 16, CPU, "fp32", world=1, budget=60)
    assert got.source == "measured" and got.shapes["2x512"] != 700.0
    assert list(cached_readings()) == [key(model)]


def test_the_environment_variable_plans_at_the_reference_speed() -> None:
    got = calibrate.speeds(ModelConfig(vocab_size=50), 4, 16, CPU, "fp32", world=1, budget=60)
    assert got.source == "reference" and got.shapes == REFERENCE == reference().shapes
    assert not calibrate.cache_file().exists()


@pytest.mark.slow
@pytest.mark.usefixtures("calibrating")
def test_dry_run_measures_once_and_says_so() -> None:
    Path("c.txt").write_text(corpus_text(200_000))
    first = run_cli("train", "c.txt", "--time-budget", "3m", "--dry-run")
    assert first.returncode == 0, first.stderr
    assert "(measured chars/s: 1x256 " in first.stderr and "measured in " in first.stderr
    second = run_cli("train", "c.txt", "--time-budget", "3m", "--dry-run")
    assert "(cached chars/s: 1x256 " in second.stderr and "measured earlier" in second.stderr
    assert not Path("runs").exists()  # a dry run makes no run directory
    plain = run_cli("train", "c.txt", "--time-budget", "3m", "--dry-run", "--no-calibrate")
    assert "(reference chars/s: 2x256 38,000, 2x512 13,000" in plain.stderr


def planning_rank(corpus: str, cache_root: str) -> dict:
    """Plan a 3-minute run on this rank as `charrnn train` does, each rank with its own empty
    speed cache: only rank 0 may measure, and every rank must plan from its figures."""
    import os

    import torch.distributed as dist

    from charrnn.api.options import TrainOptions
    from charrnn.api.prepare import check, prepare
    from charrnn.training import distributed

    world = distributed.from_env()
    os.environ["CHARRNN_CACHE"] = str(Path(cache_root) / str(world.rank))
    os.environ.pop(calibrate.NO_CALIBRATE_ENV, None)
    torch.set_num_threads(1)
    distributed.init(world, CPU)
    try:
        setup = check(corpus, None, TrainOptions(time_budget="3m", batch_size=4, seq_len=16))
        ready = prepare(setup, lambda event: None)
        run, spent = ready.plan, ready.spent
        plan = {"record": run.record, "model": run.model.to_dict(), "train": run.train.to_dict()}
        return plan | {"seconds_counted": spent}
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_two_ranks_plan_alike_from_rank_zeros_measurement() -> None:
    Path("c.txt").write_text(corpus_text(100_000))
    ranks = on_two_ranks("plan", planning_rank, "c.txt", "caches")
    assert ranks[0] == ranks[1]
    assert ranks[0]["record"]["inputs"]["speed"]["source"] == "measured"
    assert Path("caches/0/speed.json").exists()
    assert not Path("caches/1/speed.json").exists()  # rank 1 measured nothing


@pytest.mark.usefixtures("calibrating")
def test_only_a_run_of_some_length_refreshes_the_cache(cli) -> None:
    from .conftest import TINY

    Path("t.txt").write_text(corpus_text(40_000))
    args = ["train", "t.txt", "--layers", "1", *TINY, "--precision", "fp32", "--quiet"]
    assert cli(*args, "--max-steps", "5", "--out", "short").code == 0
    assert not calibrate.cache_file().exists()  # 5 records of mostly start-up: not a speed
    assert cli(*args, "--max-steps", "14", "--out", "long").code == 0
    ((where, readings),) = cached_readings().items()
    assert list(readings) == ["1x32"] and readings["1x32"] > 0
    assert "batch=4 | seq=16 | embed=8 | " in where  # the run's own conditions


@pytest.mark.usefixtures("calibrating")
def test_an_all_text_run_refreshes_the_reading_its_plan_measured(cli) -> None:
    """A text too small for a validation split trains without weight-drop (the all-text rule):
    the plan measures it so, and the finished run's speed lands under the same key, so the next
    plan of that text reads it."""
    Path("t.txt").write_text(corpus_text(3_000))
    args = ["train", "t.txt", "--time-budget", "1m", "--batch-size", "4", "--seq-len", "16"]
    args += ["--embed", "8", "--log-every", "1", "--precision", "fp32", "--quiet"]
    assert cli(*args, "--max-steps", "14", "--out", "run").code == 0
    ((where, readings),) = cached_readings().items()
    assert "batch=4 | seq=16 | embed=8 | weight_drop=0 | " in where
    assert set(calibrate.CPU_SHAPES) <= set(readings)
