"""`charrnn export` in Python: the stored weights decode to the engine's arrays, the files are what
the docs say, ONNX in onnxruntime agrees with the numpy engine, `sample --engine onnx`, and every
refusal is one line with exit 2. (The JavaScript engine: test_export_web.py.)"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from charrnn import checkpoint
from charrnn.infer.export import weights
from charrnn.infer.numpy_engine import Engine, read_model_tensors

ROOT = Path(__file__).resolve().parents[1]


def model_tensors(ckpt: Path) -> dict[str, np.ndarray]:
    header = checkpoint.read_header(ckpt)
    return {k.removeprefix("model."): v for k, v in read_model_tensors(header).items()}


def test_f32_blob_decodes_exactly_and_int8_within_half_a_step(trained: Path) -> None:
    t = model_tensors(trained)
    f32 = weights.pack(t, "f32")
    for name, arr in weights.unpack(f32.tensors, f32.data).items():
        assert np.array_equal(arr, t[name]), name
    half = weights.pack(t, "f16")
    f16 = weights.unpack(half.tensors, half.data)
    i8 = weights.pack(t, "int8")
    q = weights.unpack(i8.tensors, i8.data)
    for name, arr in t.items():
        if arr.ndim == 1:  # vectors stay float32 in every dtype
            assert np.array_equal(q[name], arr) and np.array_equal(f16[name], arr)
            continue
        assert np.array_equal(f16[name], arr.astype(np.float16).astype(np.float32))
        step = np.abs(arr).max(axis=1, keepdims=True) / 127
        assert (np.abs(q[name] - arr) <= step / 2 + 1e-7).all(), name
    entry = next(e for e in i8.tensors if e["name"] == "head.weight")
    assert entry["dtype"] == "int8" and entry["scales"] % 4 == 0


def test_web_folder_holds_the_engine_page_and_the_same_weights_twice(cli, trained: Path) -> None:
    r = cli("export", trained, "-o", "site", "--dtype", "f32", "--no-eval")
    assert r.code == 0, r.err
    assert r.out == ""  # what was written goes to stderr
    site = Path("site")
    names = sorted(p.name for p in site.iterdir())
    assert names == sorted(
        [
            "index.html",
            "charrnn.js",
            "charrnn.mjs",
            "model.js",
            "model.bin",
            "model.json",
            "export.json",
        ]
    )
    manifest = json.loads((site / "model.json").read_text())
    assert manifest["format"] == "charrnn-web" and manifest["dtype"] == "f32"
    assert manifest["model"] == {
        "cell": "lstm",
        "layers": 2,
        "hidden": 96,
        "embed": 32,
        "vocab_size": len(manifest["vocab"]),
    }
    blob = (site / "model.bin").read_bytes()
    registered = re.search(r'data: "([A-Za-z0-9+/=]+)"', (site / "model.js").read_text())
    assert registered and base64.b64decode(registered.group(1)) == blob
    decoded = weights.unpack(manifest["tensors"], blob)
    expected = model_tensors(trained)
    assert decoded.keys() == expected.keys()
    assert all(np.array_equal(decoded[k], expected[k]) for k in expected)
    marker = json.loads((site / "export.json").read_text())
    assert marker["kind"] == "charrnn-export" and marker["format"] == "web"
    assert marker["source"]["fingerprint"] == checkpoint.fingerprint(trained)
    assert f'data-model="{trained.parent.name}"' in (site / "index.html").read_text()
    assert "wrote site/model.bin" in r.err and "open site/index.html" in r.err


def test_single_file_inlines_everything(cli, trained: Path) -> None:
    r = cli("export", trained, "--single-file", "-o", "one.html", "--no-eval", "--json")
    assert r.code == 0, r.err
    info = json.loads(r.out)
    page = Path("one.html").read_text()
    assert info["files"] == {"one.html": len(page.encode())}
    assert "<script src=" not in page and "charrnnModels" in page and "KERNEL" in page
    assert page.count("</script>") == 3  # engine, weights, page script


def test_quality_is_measured_on_the_validation_text_and_recorded(cli, trained: Path) -> None:
    r = cli("export", trained, "-o", "q", "--json")
    assert r.code == 0, r.err
    q = json.loads(r.out)["quality"]
    assert q["dtype"] == "int8" and q["chars"] == 20_000 and "validation split" in q["method"]
    assert abs(q["cost"] - (q["nats_per_char"] - q["f32"])) < 1e-5
    assert abs(q["cost"]) < 0.01
    assert json.loads(Path("q/model.json").read_text())["quality"] == q
    Path("eval.txt").write_text("def main():\n    return 0\n" * 20)
    r = cli("export", trained, "-o", "q", "--overwrite", "--eval", "eval.txt", "--dtype", "f16")
    assert r.code == 0 and "quality: f16" in r.err and "on 500 characters" in r.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "tflite"], "unknown format 'tflite'; choose one of web, onnx, ml5"),
        (["--format", "onnx", "--dtype", "f16"], "--format onnx cannot hold --dtype f16"),
        (["--dtype", "int4"], "--format web cannot hold --dtype int4"),
        (["--format", "onnx", "--single-file"], "--single-file is for --format web only"),
        (["-o", "notes.txt"], "notes.txt: holds a file that is not a charrnn export"),
        (["-o", "notes.txt/sub"], "notes.txt/sub: cannot write"),
        (["-o", "page", "--single-file"], "a single-file export is an .html file"),
    ],
)
def test_bad_requests_are_one_line_exit_2(
    cli, trained: Path, args: list[str], message: str
) -> None:
    Path("notes.txt").write_text("mine")
    r = cli("export", trained, "--no-eval", *args)
    assert r.code == 2, r.err
    assert message in r.err and len(r.err.strip().splitlines()) == 1
    assert Path("notes.txt").read_text() == "mine"


def test_an_earlier_export_is_replaced_only_when_asked(cli, trained: Path) -> None:
    assert cli("export", trained, "-o", "w", "--no-eval").code == 0
    stale = Path("w/model.bin").read_bytes()
    r = cli("export", trained, "-o", "w", "--no-eval", "--dtype", "f32")
    assert r.code == 2 and "holds an earlier export; pass --overwrite" in r.err
    assert Path("w/model.bin").read_bytes() == stale
    assert cli("export", trained, "-o", "w", "--no-eval", "--dtype", "f32", "--overwrite").code == 0
    assert Path("w/model.bin").read_bytes() != stale
    assert not list(Path().glob(".w.*"))  # nothing left beside it
    Path("full").mkdir()
    Path("full/thesis.tex").write_text("x")
    r = cli("export", trained, "-o", "full", "--no-eval", "--overwrite")
    assert r.code == 2 and "not a charrnn export" in r.err and Path("full/thesis.tex").exists()


def test_default_path_is_exports_model_format(cli, trained: Path) -> None:
    r = cli("export", trained, "--no-eval", "--format", "onnx")
    assert r.code == 0, r.err
    assert Path(f"exports/{trained.parent.name}-onnx/model.onnx").is_file()


def test_export_never_imports_torch(trained: Path, tmp_path: Path) -> None:
    code = (
        "import sys; from charrnn.infer.export import export; "
        f"export({str(trained)!r}, 'web', {str(tmp_path / 'w')!r}); "
        f"export({str(trained)!r}, 'onnx', {str(tmp_path / 'o')!r}, dtype='int8'); "
        "print('torch' in sys.modules)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


def test_onnx_without_its_extra_says_how_to_get_it(
    cli, trained: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed: import fails
    r = cli("export", trained, "--format", "onnx", "--no-eval")
    assert r.code == 2
    assert (
        r.err.strip().endswith("pip install -e '.[onnx]' in the charrnn checkout")
        and len(r.err.splitlines()) == 1
    )
    assert not Path("exports").exists()
    r = cli("sample", trained, "--engine", "onnx", "--length", "5")
    assert r.code == 2 and "pip install -e '.[onnx]'" in r.err


def tf_basic_lstm(variables: dict, ids: list[int]) -> np.ndarray:
    """TensorFlow's basic LSTM cell as ml5 runs it (kernel over [x, h], gates i, j, f, o, forget
    bias +1 at run time), two layers, in numpy: the last step's logits."""
    h = [np.zeros((1, variables["softmax_w"].shape[0]), np.float32) for _ in range(2)]
    c = [z.copy() for z in h]
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    for t in ids:
        x = variables["embedding"][t][None]
        for i in range(2):
            name = f"rnn/multi_rnn_cell/cell_{i}/basic_lstm_cell/"
            z = (
                np.concatenate([x, h[i]], axis=1) @ variables[name + "kernel"]
                + variables[name + "bias"]
            )
            gi, gj, gf, go = np.split(z, 4, axis=1)
            c[i] = sig(gi) * np.tanh(gj) + c[i] * sig(gf + 1.0)
            h[i] = np.tanh(c[i]) * sig(go)
            x = h[i]
    return (h[1] @ variables["softmax_w"] + variables["softmax_b"])[0]


def test_ml5_files_hold_the_same_model(cli, trained: Path) -> None:
    r = cli("export", trained, "--format", "ml5", "-o", "ml5model", "--no-eval")
    assert r.code == 0, r.err
    manifest = json.loads(Path("ml5model/manifest.json").read_text())
    variables = {
        name: np.fromfile(Path("ml5model") / v["filename"], "<f4").reshape(v["shape"])
        for name, v in manifest.items()
    }
    vocab = json.loads(Path("ml5model/vocab.json").read_text())
    engine = Engine.load(trained, threads=1)
    assert vocab == {c: i for i, c in enumerate(engine.vocab.chars)}
    ids = engine.vocab.encode("def main(argv):\n    ")
    expected = engine.forward(ids, last_only=True).logits[-1]
    assert np.abs(tf_basic_lstm(variables, ids) - expected).max() < 1e-4


def test_ml5_refuses_what_it_cannot_run(cli, cell_models: dict[str, Path]) -> None:
    r = cli("export", cell_models["gru"], "--format", "ml5", "--no-eval")
    assert r.code == 2 and "only a 2-layer LSTM" in r.err and "3-layer GRU" in r.err
    r = cli("export", cell_models["lstm"], "--format", "ml5", "--dtype", "int8", "--no-eval")
    assert r.code == 2 and "--format ml5 cannot hold --dtype int8" in r.err
