"""Training throughput: charrnn's chars/s (as written to metrics.jsonl) at fp32 and bf16 against the
plain PyTorch program a user would write (nn.Embedding → nn.LSTM/GRU → nn.Linear, Adam, TBPTT),
for a 2×512 model, embed 64, batch 64, seq-len 100, dropout 0, on tiny-shakespeare. `--weight-drop`,
`--locked-dropout` and `--dropout` give charrnn's model those regularisers (the baseline stays plain):
what they cost in throughput.

Rounds alternate baseline / fp32 / bf16 so drift on a shared machine hits all three alike.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import SHAKESPEARE, matmul_peaks, report
from torch import nn

B, S, H, E = 64, 100, 512, 64


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def baseline_cps(
    cell: str, ids: np.ndarray, vocab: int, steps: int, window: int, layers: int, device: str
) -> list[float]:
    """The plain program, timed over windows of `window` steps after one warm-up window."""
    torch.manual_seed(0)
    emb, rnn, head = (
        nn.Embedding(vocab, E).to(device),
        getattr(nn, cell.upper())(E, H, layers, batch_first=True).to(device),
        nn.Linear(H, vocab).to(device),
    )
    params = [*emb.parameters(), *rnn.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=2e-3)
    L = (len(ids) - 1) // B
    starts = np.arange(B)[:, None] * L
    h = None
    rates, t0 = [], time.perf_counter()
    for step in range(steps + window):
        w = torch.from_numpy(ids[starts + step * S + np.arange(S + 1)].astype(np.int64)).to(device)
        out, h = rnn(emb(w[:, :-1]), h)
        loss = nn.functional.cross_entropy(head(out).flatten(0, 1), w[:, 1:].flatten())
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        h = tuple(x.detach() for x in h) if isinstance(h, tuple) else h.detach()
        if (step + 1) % window == 0:
            sync(device)
            now = time.perf_counter()
            if step + 1 > window:
                rates.append(window * B * S / (now - t0))
            t0 = now
    return rates


def charrnn_cps(
    cell: str,
    ds,
    precision: str,
    steps: int,
    window: int,
    layers: int,
    device: str,
    regularisers: dict | None = None,
) -> list[float]:
    from charrnn.model import ModelConfig
    from charrnn.training.config import TrainConfig
    from charrnn.training.loop import Trainer

    cfg = TrainConfig(
        batch_size=B,
        seq_len=S,
        max_steps=steps + window,
        log_every=window,
        eval_every=10**9,
        eval_chars=1000,
        precision=precision,
    )
    with tempfile.TemporaryDirectory() as out:
        model = ModelConfig(
            vocab_size=ds.vocab.size,
            cell=cell,
            layers=layers,
            hidden=H,
            embed=E,
            **({"dropout": 0.0} | (regularisers or {})),
        )
        Trainer(ds, model, cfg, Path(out), device=device).run()
        recs = [json.loads(x) for x in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    return [r["chars_per_sec"] for r in recs if "chars_per_sec" in r][1:]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", default="lstm,gru")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--window", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu or cuda (both programs run there)")
    ap.add_argument("--precisions", default="fp32,bf16", help="charrnn's; the baseline is fp32")
    ap.add_argument("--dropout", type=float, default=0.0, help="charrnn's model only")
    ap.add_argument("--weight-drop", type=float, default=0.0, help="charrnn's model only")
    ap.add_argument("--locked-dropout", action="store_true", help="charrnn's model only")
    args = ap.parse_args()
    reg = {"dropout": args.dropout, "weight_drop": args.weight_drop}
    reg["locked_dropout"] = args.locked_dropout
    from charrnn.data.dataset import resolve_dataset

    ds, _ = resolve_dataset(str(SHAKESPEARE))
    ids = np.asarray(ds.split("train"))
    precisions = args.precisions.split(",")
    peaks = matmul_peaks() if args.device == "cpu" else {}
    for cell in args.cells.split(","):
        runs: dict[str, list[float]] = {"baseline_fp32": []} | {p: [] for p in precisions}
        for _ in range(args.rounds):
            runs["baseline_fp32"] += baseline_cps(
                cell, ids, ds.vocab.size, args.steps, args.window, args.layers, args.device
            )
            for p in precisions:
                runs[p] += charrnn_cps(
                    cell, ds, p, args.steps, args.window, args.layers, args.device, reg
                )
        med = {k: statistics.median(v) for k, v in runs.items()}
        figures = {
            "model": f"{cell} {args.layers}x{H} embed {E} batch {B} seq {S}",
            "charrnn_regularisers": reg,
            "device": args.device if args.device == "cpu" else torch.cuda.get_device_name(),
            "baseline_fp32_chars_per_sec": round(med["baseline_fp32"]),
        }
        for p in precisions:
            figures[f"charrnn_{p}_chars_per_sec"] = round(med[p])
            figures[f"{p}_ratio"] = round(med[p] / med["baseline_fp32"], 3)
        if peaks:
            # training FLOPs per character: 3 × (2 × weights touched per character), no embedding
            gates = {"lstm": 4, "gru": 3, "rnn": 1}[cell]
            per_char = gates * H * (E + H) + (args.layers - 1) * gates * H * 2 * H
            flops = 6 * (per_char + H * ds.vocab.size)
            figures["baseline_fraction_of_fp32_peak"] = round(
                med["baseline_fp32"] * flops / 1e9 / peaks["matmul_fp32_gflops"], 2
            )
        report(f"train_throughput_{cell}", figures | peaks)


if __name__ == "__main__":
    main()
