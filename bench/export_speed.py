"""Export speed and size: chars/s of one stream for a 2×512 LSTM in every runtime an export reaches,
against the numpy engine (one thread) and the naive torch loop (oneDNN off) in the same run.

- the web engine's own generation (no page rendering): in Chromium (SIMD and plain JS) and in Node;
- the demo page's visible rate (rendering each character with its shading), reported apart;
- onnxruntime (one thread) with float32 and int8 weights, through charrnn's sampler;
- sizes of the int8 web export (weights script, binary, single file) and the export's own time.

Targets (issue 30): Chromium's JS engine ≥ 0.5× numpy; onnxruntime int8 ≥ 2.5× the naive loop;
model.js ≤ 5 MB, model.bin ≤ 3.5 MB, the single page ≤ 5 MB; export ≤ 2 s without the quality.

    python bench/export_speed.py [--checkpoint CKPT] [--chars 2000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, report, timeit

JS_TIMER = """
async (n) => {
  const m = window.model;
  const t0 = performance.now();
  let k = 0;
  for await (const c of m.stream({ seed: "A", length: n, temperature: 0.8, rngSeed: 1 })) k++;
  return k / ((performance.now() - t0) / 1000);
}
"""

NODE_TIMER = """
const { CharRNN } = require(process.argv[1] + "/charrnn.js");
require(process.argv[1] + "/model.js");
(async () => {
  const out = {};
  for (const backend of ["simd", "js"]) {
    const m = await CharRNN.load(undefined, { backend });
    const n = +process.argv[2];
    await m.generate({ seed: "A", length: 200, temperature: 0.8, rngSeed: 1 });
    const t0 = performance.now();
    await m.generate({ seed: "A", length: n, temperature: 0.8, rngSeed: 1 });
    out[backend] = n / ((performance.now() - t0) / 1000);
  }
  process.stdout.write(JSON.stringify(out));
})();
"""


def checkpoint_2x512(work: Path) -> Path:
    """A 2×512 LSTM (the default shape at 10 minutes) after a few steps on the built-in corpus:
    speed does not depend on what the weights learned."""
    import sysconfig

    src = Path(sysconfig.get_path("stdlib")) / "json"
    text = "".join(p.read_text() for p in sorted(src.glob("*.py")))
    (work / "corpus.txt").write_text(text * 4)
    cmd = [
        sys.executable,
        "-m",
        "charrnn",
        "train",
        str(work / "corpus.txt"),
        "--layers",
        "2",
        "--hidden",
        "512",
        "--max-steps",
        "3",
        "--out",
        str(work / "run"),
        "--quiet",
    ]
    subprocess.run(cmd, check=True, cwd=ROOT)
    return work / "run" / "last.ckpt"


def chromium(site: Path, page_file: Path, n: int) -> dict:
    from playwright.sync_api import sync_playwright

    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    out = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe)
        page = browser.new_page()
        page.goto((site / "index.html").resolve().as_uri())
        page.wait_for_function("() => window.model")
        page.evaluate(JS_TIMER, 200)
        out["chromium_simd"] = page.evaluate(JS_TIMER, n)
        out["backend"] = page.evaluate("() => window.model.backend")
        page.fill("#temp", "0.8")
        page.fill("#length", str(n))
        page.click("#go")
        page.wait_for_function(
            "() => !document.getElementById('go').disabled && "
            "document.getElementById('status').textContent",
            timeout=120_000,
        )
        status = page.inner_text("#status")
        out["chromium_page_visible"] = float(status.split("(")[1].split()[0])
        page.goto(page_file.resolve().as_uri())
        page.wait_for_function("() => window.model")
        out["single_file_backend"] = page.evaluate("() => window.model.backend")
        browser.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--checkpoint", help="a 2×512 LSTM checkpoint [a short run on the built-in corpus]"
    )
    ap.add_argument("--chars", type=int, default=2000)
    args = ap.parse_args()
    n = args.chars
    import torch

    from charrnn.infer.export import export
    from charrnn.infer.numpy_engine import Engine
    from charrnn.infer.onnx_engine import OnnxEngine
    from charrnn.infer.sampler import Sampler
    from charrnn.model import CharRNN

    with tempfile.TemporaryDirectory(prefix="charrnn-export-bench-") as tmp:
        work = Path(tmp)
        ckpt = Path(args.checkpoint) if args.checkpoint else checkpoint_2x512(work)
        t0 = time.perf_counter()
        web = export(ckpt, "web", work / "site", evaluate=False)
        export_s = time.perf_counter() - t0
        single = export(ckpt, "web", work / "one.html", single_file=True, evaluate=False)
        sizes = {
            "model_js_mb": (work / "site" / "model.js").stat().st_size / 1e6,
            "model_bin_mb": (work / "site" / "model.bin").stat().st_size / 1e6,
            "single_file_mb": single.path.stat().st_size / 1e6,
        }
        numpy_1t = Sampler(Engine.load(ckpt, threads=1))
        rate = {"numpy_1thread": n / timeit(lambda: numpy_1t.generate("A", n, 0.8, rng_seed=1), 3)}
        for dtype in ("f32", "int8"):
            s = Sampler(OnnxEngine.load(ckpt, dtype))
            rate[f"onnx_{dtype}"] = n / timeit(lambda s=s: s.generate("A", n, 0.8, rng_seed=1), 3)
        torch.set_num_threads(1)
        torch.backends.mkldnn.enabled = False
        model = _torch_model(ckpt, CharRNN)
        rate["naive_torch_loop"] = n / timeit(lambda: _naive(model, n, torch), 3)
        node = subprocess.run(
            ["node", "-e", NODE_TIMER, str(web.path), str(n)],
            capture_output=True,
            text=True,
            check=True,
        )
        rate.update({f"node_{k}": v for k, v in json.loads(node.stdout).items()})
        browser = chromium(web.path, single.path, n)
        rate.update({k: v for k, v in browser.items() if isinstance(v, float)})
    ratios = {
        "chromium_simd_vs_numpy": rate["chromium_simd"] / rate["numpy_1thread"],
        "onnx_int8_vs_naive": rate["onnx_int8"] / rate["naive_torch_loop"],
        "onnx_int8_vs_numpy": rate["onnx_int8"] / rate["numpy_1thread"],
    }
    figures = {
        "chars": n,
        "chars_per_sec": {k: round(v) for k, v in rate.items()},
        "ratios": {k: round(v, 2) for k, v in ratios.items()},
        "sizes_mb": {k: round(v, 2) for k, v in sizes.items()},
        "export_seconds": round(export_s, 2),
        "backend_in_chromium": browser["backend"],
        "targets_met": {
            "chromium_ge_0.5x_numpy": ratios["chromium_simd_vs_numpy"] >= 0.5,
            "onnx_int8_ge_2.5x_naive": ratios["onnx_int8_vs_naive"] >= 2.5,
            "model_js_le_5mb": sizes["model_js_mb"] <= 5,
            "model_bin_le_3.5mb": sizes["model_bin_mb"] <= 3.5,
            "single_file_le_5mb": sizes["single_file_mb"] <= 5,
            "export_le_2s": export_s <= 2,
        },
    }
    report("export_speed", figures)


def _torch_model(ckpt: Path, cls):
    """The checkpoint's sampling weights in charrnn's nn.Module (for the naive baseline)."""
    import torch

    from charrnn import checkpoint
    from charrnn.infer.numpy_engine import read_model_tensors
    from charrnn.model_config import model_config

    header = checkpoint.read_header(ckpt)
    model = cls(model_config(header)).eval()
    state = {
        k.removeprefix("model."): torch.from_numpy(v) for k, v in read_model_tensors(header).items()
    }
    model.load_state_dict(state)
    return model


def _naive(model, n: int, torch) -> None:
    x, state = torch.zeros(1, 1, dtype=torch.long), None
    with torch.no_grad():
        for _ in range(n):
            logits, state = model(x, state)
            probs = torch.softmax(logits[0, -1] / 0.8, dim=-1)
            x = torch.multinomial(probs, 1).view(1, 1)
            x.item()


if __name__ == "__main__":
    main()
