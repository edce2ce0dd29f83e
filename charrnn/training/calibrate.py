"""Measuring this machine's training speed for the planner: a few timed steps of one or two
reference shapes (every candidate on a GPU, where arithmetic does not predict time), cached per
machine and per run conditions (batch, seq-len, embed, regularisers), and refreshed from each
finished run's real speed under that run's own conditions.

It returns `speed.Speeds` (data); choosing from them is `plan`'s job. It writes only its cache
(`speed_cache`, which owns the file, its lock and what counts as a usable reading).
"""

from __future__ import annotations

import math
import os
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from charrnn.model import CharRNN, ModelConfig, configure_adamw
from charrnn.training import speed_cache
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
    return speed_cache.cache_file()


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


def reading_key(
    device: torch.device, precision: str, model: ModelConfig, world: int, batch: int, seq: int
) -> str:
    """The machine's key and the run's conditions that change chars/s beside its shape: the
    per-process batch and seq-len (a small batch runs several times slower per character, and
    not in proportion, so readings are never rescaled from one batch to another), the embedding
    and the regularisers that change the training step's kernels (weight-drop, locked dropout).
    The dropout rate is left out: any rate above zero costs the same, and the plan chooses it
    only after measuring."""
    conditions = (
        f"batch={batch}",
        f"seq={seq}",
        f"embed={model.embed}",
        f"weight_drop={model.weight_drop:g}",
        f"locked_dropout={model.locked_dropout}",
    )
    if model.voices:  # a voiced model's layer 0 reads a wider input: its own reading
        conditions += (f"voice_dim={model.voice_dim}",)
    key = machine_key(device, precision, model.cell, model.vocab_size, world)
    return " | ".join((key, *conditions))


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
    key = reading_key(device, precision, model, world, batch, seq)
    cached = speed_cache.read(key)
    wanted = [s for s in shapes_to_measure(device) if s not in cached]
    if not wanted:
        return _total(cached, model, world, "cached", 0.0)
    t0 = time.perf_counter()
    measured = {}
    for name in wanted:  # what is missing or unusable; good readings are kept
        layers, hidden = parse_shape(name)
        shape = ModelConfig(**(model.to_dict() | {"layers": layers, "hidden": hidden}))
        share = CALIBRATION_SHARE * budget / len(wanted)
        measured[name] = round(measure(shape, batch, seq, device, precision, share), 1)
    seconds = time.perf_counter() - t0
    speed_cache.merge(key, measured)
    return _total(cached | measured, model, world, "measured", seconds)


def _total(
    per_process: dict[str, float], model: ModelConfig, world: int, source: str, seconds: float
) -> Speeds:
    """Readings are one process's chars/s; every process trains its own streams at that rate."""
    one = from_shapes(per_process, model.cell, model.embed, model.vocab_size, source, seconds)
    return one.scaled(world)


def remember(
    model: ModelConfig,
    device: torch.device,
    precision: str,
    world: int,
    batch: int,
    seq: int,
    chars_per_sec: float,
) -> None:
    """Record a finished run's real training speed (all processes) for its shape under its own
    conditions (`batch` and `seq` per process, as it trained), replacing the reading the next plan
    of the same conditions on this machine would use: one slow measurement does not stick, and a
    run at another batch leaves other batches' readings alone."""
    if not speed_cache.usable(chars_per_sec) or os.environ.get(NO_CALIBRATE_ENV):
        return
    key = reading_key(device, precision, model, world, batch, seq)
    speed_cache.merge(
        key, {shape_name(model.layers, model.hidden): round(chars_per_sec / world, 1)}
    )
