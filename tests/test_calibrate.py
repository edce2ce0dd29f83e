"""Calibration measures this machine for real: timed training steps of the reference shapes, a cache
keyed by what changes speed, refreshed from finished runs, and rank 0 measuring for every rank."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from charrnn.model_config import ModelConfig
from charrnn.training import calibrate
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


@pytest.mark.usefixtures("calibrating")
def test_the_first_plan_measures_and_the_next_reads_the_cache() -> None:
    model = ModelConfig(vocab_size=50)
    first = calibrate.speeds(model, 4, 16, CPU, "fp32", world=1, budget=60)
    assert first.source == "measured" and first.seconds > 0
    assert sorted(first.shapes) == sorted(calibrate.CPU_SHAPES)  # arithmetic scales the rest
    cache = json.loads(calibrate.cache_file().read_text())
    (key,) = cache
    assert key == calibrate.machine_key(CPU, "fp32", "lstm", 50, 1)
    assert set(cache[key]) == set(calibrate.CPU_SHAPES)

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
    assert len(json.loads(calibrate.cache_file().read_text())) == 3


@pytest.mark.usefixtures("calibrating")
def test_a_finished_runs_speed_replaces_a_slow_reading() -> None:
    model = ModelConfig(vocab_size=50, layers=2, hidden=512)
    key = calibrate.machine_key(CPU, "fp32", "lstm", 50, 2)
    calibrate.cache_file().parent.mkdir(parents=True)
    calibrate.cache_file().write_text(
        json.dumps({key: {"1x256": 60_000.0, "2x256": 30_000.0, "2x512": 700.0}})
    )
    # a reading taken while the host was busy would choose tiny models from now on ...
    calibrate.remember(model, CPU, "fp32", world=2, chars_per_sec=22_000.0)
    # ... until a real run of that shape says how fast it is (per process: two shared 22k)
    assert json.loads(calibrate.cache_file().read_text())[key] == {
        "1x256": 60_000.0,
        "2x256": 30_000.0,
        "2x512": 11_000.0,
    }
    cached = calibrate.speeds(model, 4, 16, CPU, "fp32", world=2, budget=60)
    assert cached.source == "cached"
    assert cached.shapes["2x512"] == 22_000.0  # both processes' characters


@pytest.mark.usefixtures("calibrating")
def test_an_unreadable_cache_costs_only_a_measurement() -> None:
    calibrate.cache_file().parent.mkdir(parents=True)
    calibrate.cache_file().write_text("{not json")
    got = calibrate.speeds(ModelConfig(vocab_size=50), 4, 16, CPU, "fp32", world=1, budget=60)
    assert got.source == "measured"
    assert json.loads(calibrate.cache_file().read_text())  # rewritten whole


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
    (readings,) = json.loads(calibrate.cache_file().read_text()).values()
    assert list(readings) == ["1x32"] and readings["1x32"] > 0
