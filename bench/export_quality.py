"""What reduced precision costs each export, on trained models: nats/char of the stored weights
against float32 on the first 20,000 characters of each checkpoint's own validation text, as
`charrnn export` measures it (the web page's int8 and f16 arrays in the numpy engine; the ONNX int8
model in onnxruntime). Target (issue 30): int8 ≤ 0.005 nats/char.

    python bench/export_quality.py CKPT [CKPT ...]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from common import report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="+")
    args = ap.parse_args()
    from charrnn import checkpoint
    from charrnn.infer.export import export
    from charrnn.model_config import model_config

    for ckpt in args.checkpoints:
        header = checkpoint.read_header(ckpt)
        cfg = model_config(header)
        costs = {}
        with tempfile.TemporaryDirectory(prefix="charrnn-quality-") as tmp:
            for fmt, dtype in (("web", "int8"), ("web", "f16"), ("onnx", "int8")):
                done = export(ckpt, fmt, Path(tmp) / f"{fmt}-{dtype}", dtype)
                q = done.quality or {}
                costs[f"{fmt}_{dtype}"] = {
                    k: q.get(k) for k in ("f32", "nats_per_char", "cost", "chars")
                }
        report(
            "export_quality",
            {
                "checkpoint": str(ckpt),
                "fingerprint": checkpoint.fingerprint(ckpt),
                "model": f"{cfg.cell} {cfg.layers}x{cfg.hidden}",
                "best_val_loss": header.meta["state"].get("best_val_loss"),
                "costs": costs,
                "int8_le_0.005": all(
                    c["cost"] is not None and c["cost"] <= 0.005
                    for k, c in costs.items()
                    if k.endswith("int8")
                ),
            },
        )


if __name__ == "__main__":
    main()
