"""Measuring this machine's training speed for the planner: a few timed steps of one or two
reference shapes (every candidate on a GPU, where arithmetic does not predict time), cached per
machine and refreshed from each finished run's real speed.

It returns `speed.Speeds` (data); choosing from them is `plan`'s job. It writes only its cache.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from charrnn import atomic
from charrnn.data.dataset import cache_dir
from charrnn.model import CharRNN, ModelConfig, configure_adamw
from charrnn.training.averaging import Averaged
from charrnn.training.precision import autocast
from charrnn.training.sizing import CANDIDATES
from charrnn.training.speed import Speeds, from_shapes, parse_shape, reference, shape_name

# CPU: time per character is close to linear in arithmetic, so these shapes bracket the candidates
# (the smallest measured too: its per-step overhead makes it slower than arithmetic alone says, and
# short budgets choose it).
CPU_SHAPES = ("1x256", "2x256", "2x512")
TIMED_STEPS = 5
# Measuring stops taking more steps after about this share of the budget (one step at least).
CALIBRATION_SHARE = 0.02
NO_CALIBRATE_ENV = "CHARRNN_NO_CALIBRATE"


def cache_file() -> Path:
    return cache_dir() / "speed.json"


def machine_key(device: torch.device, precision: str, cell: str, vocab: int, world: int) -> str:
    """What changes training speed: the processor, threads, torch, precision, cell, vocabulary
    and processes. Readings under another key are not used."""
    chip = torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name()
    parts = (
        chip,
        device.type,
        f"threads={torch.get_num_threads()}",
        f"cpus={os.cpu_count()}",
        f"torch={torch.__version__}",
        precision,
        cell,
        f"vocab={vocab}",
        f"world={world}",
    )
    return " | ".join(parts)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def shapes_to_measure(device: torch.device) -> tuple[str, ...]:
    if device.type == "cuda":
        return tuple(shape_name(*s) for s in CANDIDATES)
    return CPU_SHAPES


def measure(
    model: ModelConfig,
    batch: int,
    seq: int,
    device: torch.device,
    precision: str,
    seconds: float = math.inf,
) -> float:
    """Training chars/s of this model: one untimed step (allocation, kernel choice), then the
    fastest of up to TIMED_STEPS steps, as many as fit in `seconds` after the first. Each step
    does what the loop's does (clipping, the weight average, the loss read back): the fastest
    bare step overstated a 2×256 run's speed by up to 29%, the median of these steps understated
    it by a quarter, their fastest by about a tenth (docs/defaults.md); a finished run's real
    speed then replaces the reading."""
    torch.manual_seed(0)
    net = CharRNN(model).to(device).train()
    opt = configure_adamw(net, 1e-3, 0.1)
    average = Averaged(net, 0.995)
    x = torch.randint(0, model.vocab_size, (batch, seq), device=device)
    times: list[float] = []
    start = time.perf_counter()
    for i in range(TIMED_STEPS + 1):
        t = time.perf_counter()
        with autocast(device, precision):
            logits, _ = net(x)
            loss = F.cross_entropy(logits.flatten(0, 1).float(), x.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()
        average.update(i)
        loss.item()  # the loop reads the loss back to log it: on a GPU, a sync
        if i:
            times.append(time.perf_counter() - t)
            if time.perf_counter() - start > seconds:
                break
    return batch * seq / min(times)


def speeds(
    model: ModelConfig,
    batch: int,
    seq: int,
    device: torch.device,
    precision: str,
    world: int,
    budget: float,
) -> Speeds:
    """This machine's speed for a run of this cell and vocabulary: the cached readings if there
    are any, else measured now in about CALIBRATION_SHARE of the budget (the seconds it took
    count against it), or the reference speed where $CHARRNN_NO_CALIBRATE is set."""
    if os.environ.get(NO_CALIBRATE_ENV):
        return reference(world)
    key = machine_key(device, precision, model.cell, model.vocab_size, world)
    cached = _read_cache().get(key, {})
    wanted = shapes_to_measure(device)
    if all(s in cached for s in wanted):
        return _total(cached, model, world, "cached", 0.0)
    t0 = time.perf_counter()
    measured = {}
    for name in wanted:
        layers, hidden = parse_shape(name)
        shape = ModelConfig(**(model.to_dict() | {"layers": layers, "hidden": hidden}))
        share = CALIBRATION_SHARE * budget / len(wanted)
        measured[name] = round(measure(shape, batch, seq, device, precision, share), 1)
    seconds = time.perf_counter() - t0
    _write_cache(key, measured)
    return _total(measured, model, world, "measured", seconds)


def _total(
    per_process: dict, model: ModelConfig, world: int, source: str, seconds: float
) -> Speeds:
    """Readings are one process's chars/s; every process trains its own streams at that rate."""
    readings = {k: float(v) for k, v in per_process.items() if isinstance(v, int | float)}
    one = from_shapes(readings, model.cell, model.embed, model.vocab_size, source, seconds)
    return one.scaled(world)


def remember(
    model: ModelConfig, device: torch.device, precision: str, world: int, chars_per_sec: float
) -> None:
    """Record a finished run's real training speed (all processes) for its shape, replacing the
    reading the next plan on this machine would use: one slow measurement does not stick."""
    if chars_per_sec <= 0 or os.environ.get(NO_CALIBRATE_ENV):
        return
    key = machine_key(device, precision, model.cell, model.vocab_size, world)
    _write_cache(key, {shape_name(model.layers, model.hidden): round(chars_per_sec / world, 1)})


def _read_cache() -> dict:
    try:
        data = json.loads(cache_file().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(key: str, readings: dict[str, float]) -> None:
    """Merge readings into the cache; a cache that cannot be written only costs a measurement."""
    data = _read_cache()
    entry = data.get(key) if isinstance(data.get(key), dict) else {}
    data[key] = {**entry, **readings}
    try:
        cache_file().parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(cache_file(), json.dumps(data, indent=1, sort_keys=True))
    except OSError:
        pass
