"""The speed cache's file: whatever it holds, a plan reads only usable readings and measures the
rest (never a traceback), and processes updating it at once lose nothing."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from charrnn.model_config import ModelConfig
from charrnn.training import calibrate, speed_cache
from charrnn.training.speed import from_shapes

CPU = torch.device("cpu")
MODEL = ModelConfig(vocab_size=50)
# The key names torch's thread count, which tests before these (in-process CLI runs with
# --threads) may leave changed: each test runs at the count the key was made with.
THREADS = torch.get_num_threads()
KEY = calibrate.reading_key(CPU, "fp32", MODEL, 1, 4, 16)
GOOD = {"1x256": 60_000.0, "2x256": 30_000.0, "2x512": 12_000.0}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and ±inf included: Python's json writes and reads them
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
shape_like = st.sampled_from(["1x256", "2x512", "0x256", "2x0", "2x", "x512", "2x512x3", "2X512"])
entries = st.dictionaries(shape_like | st.text(max_size=6), json_values, max_size=6)


@pytest.fixture(autouse=True)
def _threads_of_the_key():
    before = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    yield
    torch.set_num_threads(before)


def write(text: str | bytes) -> None:
    path = speed_cache.cache_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)


def check_usable(readings: dict[str, float]) -> None:
    """What a plan may use: shape names and finite positive speeds, which the planner can read."""
    for name, value in readings.items():
        assert speed_cache.is_shape(name)
        assert isinstance(value, float) and math.isfinite(value) and value > 0
    if readings:
        from_shapes(readings, "lstm", 64, 50, "cached").chars_per_sec(1e6)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    file=st.one_of(
        st.binary(max_size=40),
        json_values.map(json.dumps),
        entries.map(lambda e: json.dumps({"format": speed_cache.FORMAT, "readings": {KEY: e}})),
        json_values.map(lambda v: json.dumps({"format": speed_cache.FORMAT, "readings": v})),
        json_values.map(lambda v: json.dumps({"format": speed_cache.FORMAT, "readings": {KEY: v}})),
    )
)
def test_any_file_reads_as_usable_readings_or_none(file: str | bytes) -> None:
    write(file)
    check_usable(speed_cache.read(KEY))
    speed_cache.merge(KEY, {"3x512": 7_000.0})  # and an update keeps only what is usable
    after = speed_cache.read(KEY)
    check_usable(after)
    assert after["3x512"] == 7_000.0


@pytest.fixture
def calibrating(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(calibrate.NO_CALIBRATE_ENV, raising=False)


def current(entry: object) -> str:
    return json.dumps({"format": speed_cache.FORMAT, "readings": {KEY: entry}})


@pytest.mark.usefixtures("calibrating")
@pytest.mark.parametrize(
    ("file", "kept"),
    [
        ("", set()),  # empty
        ("[1, 2]", set()),  # not an object
        (current([1, 2]), set()),  # an entry that is not an object
        (current(GOOD | {"2x512": "12000"}), {"1x256", "2x256"}),  # a string
        (current(GOOD | {"2x512": 0}), {"1x256", "2x256"}),
        (current(GOOD | {"2x512": -5.0}), {"1x256", "2x256"}),
        (current(GOOD | {"2x512": True}), {"1x256", "2x256"}),  # a bool is no speed
        (current(GOOD | {"2x512": None}), {"1x256", "2x256"}),
        (current(GOOD | {"1x256": math.nan}), {"2x256", "2x512"}),  # json writes NaN
        (current(GOOD | {"1x256": math.inf}), {"2x256", "2x512"}),
        (current(GOOD | {"fast": 1e9}), set(GOOD)),  # a key that is not a shape: dropped
        (current(GOOD | {"2x512x3": 1.0, "x": 2.0, "0x256": 3.0}), set(GOOD)),
    ],
)
def test_unusable_readings_are_measured_again(file: str, kept: set[str]) -> None:
    """Each of these files used to end a plan in a ValueError (a key that is not a shape) or
    planned from a missing reading; now the plan measures what is missing or unusable, keeps the
    good readings, and the file is repaired."""
    write(file)
    got = calibrate.speeds(MODEL, 4, 16, CPU, "fp32", world=1, budget=6)
    assert set(got.shapes) >= set(calibrate.CPU_SHAPES)
    check_usable(got.shapes)
    assert {k for k in GOOD if got.shapes[k] == GOOD[k]} == kept  # good readings kept as they were
    assert got.source == ("cached" if kept == set(GOOD) else "measured")
    assert set(speed_cache.read(KEY)) >= set(calibrate.CPU_SHAPES)


WRITER = """
import sys
from charrnn.training import speed_cache
who, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    speed_cache.merge(f"key {i % 3}", {f"{who}x{i + 1}": 1000.0 + i})
"""


def test_processes_updating_at_once_lose_nothing() -> None:
    """Four processes each add 60 readings, interleaved over three keys: every one is there.
    (Without the lock, read-merge-write lost some in every try here.)"""
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(who), "60"], cwd=Path.cwd())
        for who in range(1, 5)
    ]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    readings = {k: v for i in range(3) for k, v in speed_cache.read(f"key {i}").items()}
    assert len(readings) == 4 * 60
