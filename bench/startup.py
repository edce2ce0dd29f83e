"""Start-up: wall time of `charrnn inspect` (must never import torch) and `charrnn sample --length 10`
on a 2×512 LSTM checkpoint, each a fresh process, against `python -c pass` and `python -c 'import torch'`."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import SHAKESPEARE, report


def wall(cmd: list[str], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def main() -> None:
    from charrnn.data.dataset import resolve_dataset
    from charrnn.model import ModelConfig
    from charrnn.training.config import TrainConfig
    from charrnn.training.loop import Trainer

    ds, _ = resolve_dataset(str(SHAKESPEARE))
    with tempfile.TemporaryDirectory() as out:
        cfg = TrainConfig(max_steps=2, eval_every=2, eval_chars=1000)
        Trainer(ds, ModelConfig(vocab_size=ds.vocab.size), cfg, Path(out)).run()
        ckpt = str(Path(out) / "best.ckpt")
        py = sys.executable
        imports = subprocess.run(
            [py, "-X", "importtime", "-m", "charrnn", "inspect", ckpt],
            capture_output=True,
            text=True,
            check=True,
        ).stderr
        figures = {
            "python_pass_s": wall([py, "-c", "pass"]),
            "import_torch_s": wall([py, "-c", "import torch"]),
            "inspect_s": wall([py, "-m", "charrnn", "inspect", ckpt]),
            "inspect_json_s": wall([py, "-m", "charrnn", "inspect", ckpt, "--json"]),
            "sample_length_10_s": wall([py, "-m", "charrnn", "sample", ckpt, "--length", "10"]),
            "inspect_imports_torch": any(
                line.rstrip().endswith(" torch") for line in imports.splitlines()
            ),
            "checkpoint_bytes": Path(ckpt).stat().st_size,
        }
    figures = {k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()}
    figures["sample_over_import_torch"] = round(
        figures["sample_length_10_s"] / figures["import_torch_s"], 2
    )
    report("startup", figures)


if __name__ == "__main__":
    main()
