"""Serving under load: 1, 8 and 32 concurrent streaming clients (asyncio + httpx, in a separate
process) against `charrnn serve` with a 2×512 LSTM, in the fast (default) and --deterministic modes:
aggregate generated chars/s and time to first character (p50, p99), beside the naive single-stream
torch loop with oneDNN off (sample_speed's baseline) run in the same invocation.

Every client starts at once (a burst: the worst case for the first character) and asks for a
continuation of a short prompt with its own seed; two bursts per setting. Targets (the issue, this
machine, default mode): aggregate at 32 clients >= 5x the baseline; p99 first character <= 250 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHARS = {1: 1500, 8: 600, 32: 400}  # per client: each burst runs for a few seconds
PROMPTS = ["ROMEO:\n", "First Citizen:\n", "KING RICHARD III:\n", "To be, or not", "O, "]


# --- the client process ------------------------------------------------------------------------
async def _one(client, url: str, i: int, chars: int, t0: float) -> tuple[float, int, float]:
    """(seconds to the first character, characters received, seconds to the end)."""
    body = {"prompt": PROMPTS[i % len(PROMPTS)], "max_tokens": chars, "seed": i,
            "temperature": 0.8, "stream": True}  # fmt: skip
    first, got = None, 0
    async with client.stream("POST", url + "/v1/completions", json=body) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if not line.startswith("data: {"):
                continue
            text = "".join(c["text"] for c in json.loads(line[6:])["choices"])
            if text and first is None:
                first = time.perf_counter() - t0
            got += len(text)
    return first or float("nan"), got, time.perf_counter() - t0


async def _burst(url: str, clients: int, chars: int) -> dict:
    import httpx

    limits = httpx.Limits(max_connections=clients + 4)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        await client.get(url + "/health")  # warm the connection pool's first connection
        t0 = time.perf_counter()
        done = await asyncio.gather(*(_one(client, url, i, chars, t0) for i in range(clients)))
    wall = max(d[2] for d in done)
    return {"ttfc": [d[0] for d in done], "chars": sum(d[1] for d in done), "wall": wall}


def client_main(url: str, clients: int, chars: int, rounds: int) -> None:
    out = [asyncio.run(_burst(url, clients, chars)) for _ in range(rounds)]
    print(json.dumps(out))


# --- the orchestrating process -----------------------------------------------------------------
def _percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    k = max(0, min(len(xs) - 1, round(q / 100 * (len(xs) - 1))))
    return xs[k]


def _checkpoint(tmp: Path) -> Path:
    """A 2x512 LSTM trained for a few steps on tiny-shakespeare (the weights' values do not change
    the speed; a trained model writes text of realistic shape)."""
    from common import SHAKESPEARE

    out = tmp / "run"
    subprocess.run(
        [sys.executable, "-m", "charrnn", "train", str(SHAKESPEARE), "--hidden", "512",
         "--layers", "2", "--max-steps", "30", "--eval-every", "30", "--out", str(out)],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return out / "best.ckpt"


def _serve(
    ckpt: Path, tmp: Path, deterministic: bool, extra: list[str] | None = None
) -> tuple[subprocess.Popen, str]:
    args = [sys.executable, "-m", "charrnn", "serve", str(ckpt), "--port", "0",
            "--sessions", str(tmp / "sessions.sqlite"), *(extra or [])]  # fmt: skip
    if deterministic:
        args.append("--deterministic")
    env = {**os.environ, "NO_COLOR": "1"}
    proc = subprocess.Popen(
        args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        m = re.search(r"serving on (http://\S+)", line)
        if m:
            break
    else:
        raise RuntimeError("server did not start")
    # drain the access log so the server never blocks on a full pipe
    import threading

    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
    return proc, m.group(1)


def _load(url: str, clients: int, chars: int, rounds: int) -> dict:
    r = subprocess.run(
        [sys.executable, __file__, "--client", url, "--clients", str(clients),
         "--chars", str(chars), "--rounds", str(rounds)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    bursts = json.loads(r.stdout)
    ttfc = [t for b in bursts for t in b["ttfc"]]
    return {
        "chars_per_sec": round(sum(b["chars"] for b in bursts) / sum(b["wall"] for b in bursts), 1),
        "ttfc_p50_ms": round(1000 * statistics.median(ttfc), 1),
        "ttfc_p99_ms": round(1000 * _percentile(ttfc, 99), 1),
    }


def _baseline(ckpt: Path) -> float:
    import torch
    from common import timeit
    from sample_speed import naive_loop

    from charrnn.checkpoint import read_header
    from charrnn.model import load_model

    header = read_header(ckpt)
    model = load_model(header).eval()
    torch.backends.mkldnn.enabled = False
    n = 600
    return n / timeit(lambda: naive_loop(model, n, 0.8), repeat=3)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--checkpoint", type=Path, help="a 2x512 checkpoint [default: train one briefly]"
    )
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--client")
    ap.add_argument("--clients", type=int)
    ap.add_argument("--chars", type=int)
    args = ap.parse_args()
    if args.client:
        client_main(args.client, args.clients, args.chars, args.rounds)
        return
    from common import report

    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        ckpt = args.checkpoint or _checkpoint(tmp)
        base = _baseline(ckpt)
        figures: dict = {"model": "lstm 2x512", "naive_chars_per_sec": round(base, 1)}
        for mode in ("fast", "deterministic"):
            proc, url = _serve(ckpt, tmp, mode == "deterministic")
            try:
                _load(url, 4, 50, 1)  # warm up: imports, thread pools, the BLAS tuner
                for clients, chars in CHARS.items():
                    got = _load(url, clients, chars, args.rounds)
                    got["x_naive"] = round(got["chars_per_sec"] / base, 2)
                    figures[f"{mode}_{clients}"] = got
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(60)
        figures["targets"] = {"fast_32_x_naive": 5.0, "fast_32_ttfc_p99_ms": 250}
        report("serve_load", figures)


if __name__ == "__main__":
    main()
