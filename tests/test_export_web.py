"""The exported web engine, run by a real JavaScript engine (Node; V8 as in Chromium): both backends
(WebAssembly SIMD and plain JavaScript) against the numpy engine, for every cell, f32 and int8; and
the kernel's bytes re-encoded from its WebAssembly text. Skipped with the reason where Node is
missing (.ci/run installs Debian's nodejs)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from charrnn import checkpoint
from charrnn.infer.export import weights
from charrnn.infer.numpy_engine import Engine
from charrnn.infer.sampler import Sampler
from charrnn.model_config import model_config
from charrnn.vocab import Vocab

ROOT = Path(__file__).resolve().parents[1]
RUNNER = ROOT / "tests" / "js" / "run_export.js"
PRIME = "def parse(self, text):\n    return "


def node() -> str:
    exe = shutil.which("node") or shutil.which("nodejs")
    if not exe:
        pytest.skip("Node.js is not installed (apt-get install nodejs; .ci/run does)")
    return exe


def drive(site: Path, backend: str, job: dict) -> dict:
    r = subprocess.run(
        [node(), str(RUNNER), str(site), backend, json.dumps(job)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def engine_on(site: Path, ckpt: Path) -> Engine:
    """The numpy engine on exactly the arrays the page decodes from model.bin."""
    manifest = json.loads((site / "model.json").read_text())
    arrays = weights.unpack(manifest["tensors"], (site / "model.bin").read_bytes())
    header = checkpoint.read_header(ckpt)
    vocab = Vocab.from_json(header.meta["vocab"], header.meta["vocab_counts"])
    return Engine(model_config(header), vocab, {"model." + k: v for k, v in arrays.items()}, 1)


def test_the_inlined_kernel_is_matvec_wat_encoded() -> None:
    sys.path.insert(0, str(ROOT / "tools"))
    import wat

    encoded = wat.encode(wat.WAT.read_text())
    assert encoded[:4] == b"\0asm" and len(encoded) < 1024
    assert wat.inlined() == wat.kernel_base64()
    with pytest.raises(wat.WatError, match="unsupported instruction"):
        wat.encode('(module (func $f (export "f") i64.popcnt))')


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("dtype", ["f32", "int8"])
def test_both_backends_match_the_numpy_engine(
    cli, cell_models: dict[str, Path], cell: str, dtype: str
) -> None:
    ckpt = cell_models[cell]
    assert cli("export", ckpt, "-o", "site", "--dtype", dtype, "--no-eval").code == 0
    ref = engine_on(Path("site"), ckpt)
    ids = ref.vocab.encode(PRIME)
    state = ref.initial_state(1)
    expected = np.stack([ref.step([i], state)[0] for i in ids])
    greedy = Sampler(ref).generate("def ", 200, temperature=0)
    for backend in ("simd", "js"):
        got = drive(Path("site"), backend, {"ids": ids, "greedy": {"seed": "def ", "length": 200}})
        assert got["backend"] == backend
        assert np.abs(np.array(got["logits"]) - expected).max() < 1e-5, backend
        assert got["greedy"] == greedy, backend


def test_greedy_text_equals_charrnn_sample(cli, trained: Path) -> None:
    assert cli("export", trained, "-o", "site", "--dtype", "f32", "--no-eval").code == 0
    r = cli("sample", trained, "--seed", "class ", "--temp", "0", "--length", "200", "--no-echo")
    got = drive(Path("site"), "simd", {"greedy": {"seed": "class ", "length": 200}})
    assert got["greedy"] == r.out and len(r.out) == 200


def test_score_and_api_in_node(cli, trained: Path) -> None:
    assert cli("export", trained, "-o", "site", "--dtype", "f32", "--no-eval").code == 0
    text = "import os\nimport sys\n\ndef main():\n"
    got = drive(Path("site"), "simd", {"score": text})
    ref = Sampler(Engine.load(trained, threads=1)).score(text)
    assert got["score"]["chars"] == ref.chars
    assert abs(got["score"]["natsPerChar"] - ref.nats_per_char) < 1e-5
    assert abs(got["score"]["bitsPerChar"] - ref.bpc) < 1e-5
    script = r"""
const { CharRNN } = require(process.argv[1] + "/charrnn.js");
require(process.argv[1] + "/model.js");
(async () => {
  const m = await CharRNN.load();
  const out = {};
  const a = await m.generate({ seed: "def ", length: 60, temperature: 0.9, rngSeed: 7 });
  const b = await m.generate({ seed: "def ", length: 60, temperature: 0.9, rngSeed: 7 });
  out.same = a.text === b.text; out.len = [...a.text].length;
  const s = await m.generate({ seed: "def ", length: 200, temperature: 0, stop: process.argv[2] });
  out.stop = [s.finishReason, s.text];
  m.feed("import o");
  const saved = m.getState();
  const p1 = m.predict(0).sample;
  m.feed("zzz", { unknown: "skip" }); m.feed("q");
  m.setState(saved);
  out.undo = m.predict(0).sample === p1;
  const pr = m.predict(1).probabilities;
  out.sum = pr.reduce((x, y) => x + y.probability, 0);
  try { m.feed("\u2603"); out.refused = null; } catch (e) { out.refused = e.message; }
  const chars = [];
  for await (const c of m.stream({ seed: "x", length: 5, topK: 3, topP: 0.9, minP: 0.05, rngSeed: 1 })) chars.push(c);
  out.stream = chars.map((c) => [c.char.length, c.top.length <= 5, c.probability > 0]);
  process.stdout.write(JSON.stringify(out));
})();
"""
    greedy = Sampler(Engine.load(trained, threads=1)).generate("def ", 200, temperature=0)
    stop = greedy[40:43]
    r = subprocess.run(
        [node(), "-e", script, str(Path("site").resolve()), stop], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["same"] and out["len"] == 60
    assert out["stop"] == ["stop", greedy[: greedy.index(stop)]]
    assert out["undo"] is True
    assert abs(out["sum"] - 1) < 1e-9
    assert (
        "1 character(s) not in the model's vocabulary" in out["refused"] and "☃" in out["refused"]
    )
    assert out["stream"] == [[1, True, True]] * 5


def test_es_module_loads_in_node(cli, trained: Path) -> None:
    assert cli("export", trained, "-o", "site", "--no-eval").code == 0
    script = (
        f"import {{ CharRNN }} from {json.dumps(str(Path('site/charrnn.mjs').resolve()))};"
        "process.stdout.write(typeof CharRNN.load);"
    )
    r = subprocess.run(
        [node(), "--input-type=module", "-e", script], capture_output=True, text=True
    )
    assert r.returncode == 0 and r.stdout == "function", r.stderr
