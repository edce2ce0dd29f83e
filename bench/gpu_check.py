"""One short run that checks charrnn's CUDA path end to end and prints its figures as one JSON line.

On a CUDA machine (estimated at two minutes, budgeted at five): trains lstm and gru in bf16 and
fp16 with the default regularisers, checks an interrupted-and-resumed run against one run in one
go, compares the torch engine with the numpy one, runs `sample`, `score` and `serve` as
subprocesses, and times a plain `nn.LSTM` program beside charrnn. `--quick --device cpu` is the
same script, tiny, on a CPU.

It appends nothing to bench/results.jsonl and asserts no speed: the JSON line is the record (progress
goes to stderr). Usage: `PYTHONPATH=. python3 bench/gpu_check.py` (exit 1 if a check failed).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
import traceback
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
JSON = {"Content-Type": "application/json"}
RESUME_TOL = 1e-3  # fp32 on a GPU: cuDNN need not sum in the same order twice
ENGINE_TOL = 1e-2  # logits; cuDNN may use TF32 for fp32 RNNs (torch.backends.cudnn.allow_tf32)
FULL = {
    "layers": 2,
    "hidden": 512,
    "embed": 64,
    "batch": 64,
    "seq": 100,
    "steps": 40,
    "eval_chars": 20_000,
}
QUICK = {
    "layers": 2,
    "hidden": 128,
    "embed": 16,
    "batch": 16,
    "seq": 50,
    "steps": 30,
    "eval_chars": 5_000,
}


def log(msg: str) -> None:
    print(f"gpu_check: {msg}", file=sys.stderr, flush=True)


def section(name: str, fn: Callable[..., dict], *args: object) -> dict:
    """Run one part; a failure is recorded in the JSON, so the parts after it still run."""
    log(f"{name} ...")
    t = time.perf_counter()
    try:
        out = fn(*args)
    except Exception as e:  # a device check records every failure and goes on
        traceback.print_exc()
        out = {"ok": False, "error": f"{type(e).__name__}: {e}"}
    out["seconds"] = round(time.perf_counter() - t, 2)
    log(f"{name}: {'ok' if out.get('ok', True) else 'FAILED'} in {out['seconds']} s")
    return out


# --- the corpus ----------------------------------------------------------------------------------
def build_dataset(tmp: Path):
    """Python's own json, email and http packages (sorted *.py files), prepared by the library."""
    from charrnn.data.dataset import load_dataset
    from charrnn.data.prep import prep

    stdlib = Path(sysconfig.get_path("stdlib"))
    dirs = [str(stdlib / name) for name in ("json", "email", "http")]
    result = prep(dirs, tmp / "data", glob="*.py", errors="replace")
    return load_dataset(result.out_dir)


# --- training ------------------------------------------------------------------------------------
def train(
    ds, sz: dict, out: Path, cell: str, prec: str, steps: int = 0, stop: int = 0, resume: str = ""
) -> dict:
    """One library run with the default regularisers; chars/s is the median of the Logged records
    after the first (which holds cuDNN's start-up). A precision the library refuses on this device
    (fp16 on a CPU) is skipped with its reason."""
    from charrnn.checkpoint import read_header
    from charrnn.errors import InputError
    from charrnn.model_config import ModelConfig
    from charrnn.training.config import TrainConfig
    from charrnn.training.events import Logged, Started
    from charrnn.training.loop import Trainer

    events: list = []
    mcfg = ModelConfig(ds.vocab.size, cell, sz["layers"], sz["hidden"], sz["embed"])
    cfg = TrainConfig(
        batch_size=sz["batch"],
        seq_len=sz["seq"],
        max_steps=steps or sz["steps"],
        eval_every=steps or sz["steps"],
        eval_chars=sz["eval_chars"],
        log_every=10,
        precision=prec,
    )
    header = read_header(resume) if resume else None
    trainer = None

    def interrupt() -> str | None:  # as Ctrl-C does: save last.ckpt at this step, not finished
        return "interrupted" if stop and trainer and trainer.progress.step >= stop else None

    try:
        hooks = {"on_event": events.append, "should_stop": interrupt}
        trainer = Trainer(ds, mcfg, cfg, out, device=sz["device"], resume=header, **hooks)
    except InputError as e:
        if prec == "fp16" and sz["device"] == "cpu":
            return {"ok": True, "skipped": str(e)}
        raise
    done = trainer.run()
    logged = [e for e in events if isinstance(e, Logged)]
    started = next(e for e in events if isinstance(e, Started))
    rates = [e.chars_per_sec for e in logged[1:]] or [e.chars_per_sec for e in logged]
    loss = logged[-1].train_loss
    return {
        "ok": loss < started.unigram_entropy,
        "precision": started.precision,
        "steps": done.step,
        "chars_per_sec": round(statistics.median(rates), 1),
        "train_loss": round(loss, 4),
        "val_loss": None if done.best_val_loss is None else round(done.best_val_loss, 4),
        "unigram_entropy": round(started.unigram_entropy, 4),
        "below_unigram": loss < started.unigram_entropy,
        "ckpt": done.last_path,
    }


def resume_check(ds, sz: dict, tmp: Path) -> dict:
    """2k steps in one go against k steps, interrupted, then resumed from last.ckpt to 2k (fp32)."""
    import torch

    from charrnn.checkpoint import AVERAGE, load_tensors, read_header

    k = sz["steps"] // 2
    whole = train(ds, sz, tmp / "whole", "lstm", "fp32", steps=2 * k)
    first = train(ds, sz, tmp / "split", "lstm", "fp32", steps=2 * k, stop=k)
    last = str(tmp / "split" / "last.ckpt")
    second = train(ds, sz, tmp / "split", "lstm", "fp32", steps=2 * k, resume=last)
    a, b = (load_tensors(read_header(p)) for p in (whole["ckpt"], second["ckpt"]))
    names = [n for n in a if n.startswith(("model.", AVERAGE))]
    diff = max(float((a[n].float() - b[n].float()).abs().max()) for n in names)
    bitwise = all(torch.equal(a[n], b[n]) for n in names)
    steps = [first["steps"], second["steps"]]
    out = {"ok": diff <= RESUME_TOL and steps == [k, 2 * k], "k": k, "steps": steps}
    return out | {"max_abs_param_diff": diff, "bitwise_equal": bitwise, "tolerance": RESUME_TOL}


# --- the engines ---------------------------------------------------------------------------------
def engine_check(ckpt: str, ids: list[int], device: str) -> dict:
    """Max abs logit difference, torch engine vs numpy engine: a 200-char forward, then 50 steps."""
    import numpy as np

    from charrnn.infer.numpy_engine import Engine
    from charrnn.infer.torch_engine import TorchEngine

    te, ne = TorchEngine.load(ckpt, device), Engine.load(ckpt)
    ft, fn = te.forward(ids[:200]), ne.forward(ids[:200])
    forward = float(np.abs(ft.logits - fn.logits).max())
    st, sn, step = ft.state, fn.state, 0.0
    for i in ids[200:250]:
        step = max(step, float(np.abs(te.step([i], st) - ne.step([i], sn)).max()))
    ne.close()
    out = {"ok": max(forward, step) <= ENGINE_TOL, "forward_200": forward, "steps_50": step}
    return out | {"max_abs_logit": round(float(np.abs(fn.logits).max()), 3)}


# --- the command line ----------------------------------------------------------------------------
def command(*args: str) -> tuple[list[str], dict]:
    """`python -m charrnn ARGS` with this interpreter and this checkout, and its environment."""
    env = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": str(ROOT)}
    return [sys.executable, "-m", "charrnn", *args], env


def cli(*args: str) -> subprocess.CompletedProcess:
    argv, env = command(*args)
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=180)


def sample_check(ckpt: str, device: str) -> dict:
    r = cli("sample", ckpt, "--device", device, "--length", "200", "--rng-seed", "1")
    ok = r.returncode == 0 and len(r.stdout) >= 200
    out = {"ok": ok, "rc": r.returncode, "chars": len(r.stdout)}
    return out if ok else out | {"stderr": r.stderr[-300:]}


def score_check(ckpt: str, text: Path) -> dict:
    """`charrnn score` has no --device option: it scores with the numpy engine on the CPU."""
    r = cli("score", ckpt, str(text), "--json")
    row = json.loads(r.stdout.splitlines()[0]) if r.returncode == 0 and r.stdout else {}
    nats = row.get("nats_per_char")
    ok = isinstance(nats, float) and math.isfinite(nats)
    out = {"ok": ok, "rc": r.returncode, "nats_per_char": nats, "chars": row.get("chars")}
    out["device"] = "cpu (score has no --device)"
    return out if ok else out | {"stderr": r.stderr[-300:]}


def post(url: str, body: dict) -> tuple[dict, float]:
    req = urllib.request.Request(url, json.dumps(body).encode(), JSON)
    t = time.perf_counter()
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read()), round(1000 * (time.perf_counter() - t), 1)


def serve_check(ckpt: str, device: str, tmp: Path) -> dict:
    """`charrnn serve` on a free port (--port 0: the server binds it and prints the URL), one
    completion and one /v1/score, then SIGTERM (a server stopped by a signal exits 0)."""
    missing = [m for m in ("starlette", "uvicorn") if importlib.util.find_spec(m) is None]
    if missing:
        return {"ok": True, "skipped": f"not installed: {', '.join(missing)}"}
    errlog, sessions = tmp / "serve.log", str(tmp / "sessions.sqlite")
    argv, env = command("serve", ckpt, "--device", device, "--port", "0", "--sessions", sessions)
    t = time.perf_counter()
    with errlog.open("w") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, env=env)
    try:
        url = wait_for_url(proc, errlog, 120)
        started = round(time.perf_counter() - t, 2)
        req = {"prompt": "def ", "max_tokens": 50, "seed": 1}
        done, done_ms = post(f"{url}/v1/completions", req)
        scored, score_ms = post(f"{url}/v1/score", {"text": "import json\n" * 20})
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
    text = done["choices"][0]["text"]
    ok = len(text) > 0 and math.isfinite(scored["nats_per_char"]) and rc == 0
    return {
        "ok": ok,
        "start_s": started,
        "completion_ms": done_ms,
        "completion_chars": len(text),
        "score_ms": score_ms,
        "score_nats_per_char": scored["nats_per_char"],
        "exit": rc,
    }


def wait_for_url(proc: subprocess.Popen, errlog: Path, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = re.search(r"serving on (http://\S+)", errlog.read_text())
        if m:
            return m.group(1)
        if proc.poll() is not None:
            raise RuntimeError(f"serve exited {proc.returncode}: {errlog.read_text()[-300:]}")
        time.sleep(0.2)
    raise RuntimeError("serve did not start in time")


# --- the plain program ---------------------------------------------------------------------------
def plain_lstm(ds, sz: dict) -> dict:
    """Embedding → nn.LSTM → Linear, AdamW, bf16 autocast, TBPTT, no regularisers: chars/s as the
    median of 10-step blocks after the first, as charrnn's figure is taken."""
    import numpy as np
    import torch
    from torch import nn

    torch.manual_seed(0)
    dev, B, T, V = torch.device(sz["device"]), sz["batch"], sz["seq"], ds.vocab.size
    emb = nn.Embedding(V, sz["embed"])
    rnn = nn.LSTM(sz["embed"], sz["hidden"], sz["layers"], batch_first=True)
    head = nn.Linear(sz["hidden"], V)
    net = nn.ModuleList([emb, rnn, head]).to(dev)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3)
    ids = np.asarray(ds.split("train"), dtype=np.int64)
    cols = (len(ids) - 1) // B
    xs = torch.from_numpy(ids[: B * cols].reshape(B, cols)).to(dev)
    ys = torch.from_numpy(ids[1 : B * cols + 1].reshape(B, cols)).to(dev)
    state, rates, t = None, [], time.perf_counter()
    for i in range(sz["steps"]):
        j = (i * T) % (cols - T)
        x, y = xs[:, j : j + T], ys[:, j : j + T]
        with torch.autocast(dev.type, dtype=torch.bfloat16):
            out, state = rnn(emb(x), state)
            loss = nn.functional.cross_entropy(head(out).flatten(0, 1).float(), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        state = tuple(s.detach() for s in state)
        if (i + 1) % 10 == 0:
            loss.item()  # waits for the device, as charrnn's log step does
            rates.append(10 * B * T / (time.perf_counter() - t))
            t = time.perf_counter()
    rate = round(statistics.median(rates[1:] or rates), 1)
    return {"ok": True, "chars_per_sec": rate, "loss": round(loss.item(), 4)}


# --- the whole check -----------------------------------------------------------------------------
def machine(device: str) -> dict:
    import torch

    mods = ("threadpoolctl", "pydivsufsort", "starlette", "uvicorn")  # a failure may name one
    info = {"torch": torch.__version__, "python": platform.python_version()}
    info["missing_modules"] = [m for m in mods if importlib.util.find_spec(m) is None]
    if device.startswith("cuda"):
        info |= {
            "device": torch.cuda.get_device_name(0),
            "cuda_version": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
            "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        }
    else:
        info["device"] = platform.processor() or platform.machine()
    return info


def run_all(sz: dict, tmp: Path) -> dict:
    ds = build_dataset(tmp)
    val = [int(i) for i in ds.split("val")[:5000]]
    text = tmp / "score.txt"
    text.write_text(ds.vocab.decode(val), encoding="utf-8")
    res: dict = {"corpus_chars": int(ds.meta["chars"]), "vocab": ds.vocab.size, "sizes": sz}
    device = sz["device"]
    runs, precisions = {}, ("fp32", "bf16", "fp16") if device == "cpu" else ("bf16", "fp16")
    for cell, p in [(c, p) for c in ("lstm", "gru") for p in precisions] + [("rnn", "fp32")]:
        runs[f"{cell}_{p}"] = section(f"train {cell} {p}", train, ds, sz, tmp / cell / p, cell, p)
    res["train"] = runs
    res["resume"] = section("resume", resume_check, ds, sz, tmp)
    pick = {"lstm": "lstm_bf16", "gru": "gru_bf16", "rnn": "rnn_fp32"}
    ckpts = {c: runs[k].get("ckpt") for c, k in pick.items()}
    res["engines"] = {
        c: section(f"engines {c}", engine_check, ck, val, device) for c, ck in ckpts.items() if ck
    }
    lstm = ckpts["lstm"]
    if lstm:
        res["sample"] = section("sample", sample_check, lstm, device)
        res["score"] = section("score", score_check, lstm, text)
        res["serve"] = section("serve", serve_check, lstm, device, tmp)
    res["plain_lstm_bf16"] = section("plain nn.LSTM", plain_lstm, ds, sz)
    ours = runs.get("lstm_bf16", {}).get("chars_per_sec")
    plain = res["plain_lstm_bf16"].get("chars_per_sec")
    res["ratio_lstm_bf16_vs_plain"] = round(ours / plain, 3) if ours and plain else None
    return res


def failures(res: dict) -> list[str]:
    """The names of every part whose check failed (or that is missing)."""
    parts = {
        **{f"train.{k}": v for k, v in res.get("train", {}).items()},
        **{f"engines.{k}": v for k, v in res.get("engines", {}).items()},
        **{k: res.get(k, {"ok": False}) for k in ("resume", "sample", "score", "serve")},
        "plain_lstm_bf16": res.get("plain_lstm_bf16", {"ok": False}),
    }
    return [name for name, part in parts.items() if not part.get("ok")]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    ap.add_argument("--quick", action="store_true", help="a tiny model, a few steps: a smoke run")
    args = ap.parse_args()
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(json.dumps({"cuda": False, "skipped": "no CUDA device"}))
        return 0
    if importlib.util.find_spec("safetensors") is None:
        print(json.dumps({"cuda": args.device != "cpu", "error": "safetensors is not installed"}))
        return 1
    sz = dict(QUICK if args.quick else FULL, device=args.device)
    t = time.perf_counter()
    res = {"cuda": args.device != "cpu", "quick": args.quick, **machine(args.device)}
    try:
        with tempfile.TemporaryDirectory(prefix="gpu_check-") as d:
            os.environ["CHARRNN_CACHE"] = str(Path(d) / "cache")  # nothing lands in ~/.cache
            res |= run_all(sz, Path(d))
    except Exception as e:  # the corpus or the library did not load: still one JSON line
        traceback.print_exc()
        res["error"] = f"{type(e).__name__}: {e}"
    for run in res.get("train", {}).values():
        run.pop("ckpt", None)
    res["failed"] = failures(res)
    res["ok"] = not res["failed"]
    res["seconds"] = round(time.perf_counter() - t, 1)
    print(json.dumps(res))
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
