"""The exported web engine's contract in Node, on small random models written as real checkpoints:
several streams of one model at once, the first draw with no newline in the vocabulary against
Python's, the range of rngSeed, and a model of any name a file can have (the page's placeholders,
its registry, its attribute and its scripts). Skipped with the reason where Node is missing."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from charrnn import checkpoint
from charrnn.infer.export import export, web, weights
from charrnn.infer.export.meta import export_meta
from charrnn.infer.export.web import asset
from charrnn.infer.logits import Filters, adjust_rows, probabilities_rows
from charrnn.infer.numpy_engine import Engine, read_model_tensors
from charrnn.infer.sampler import Sampler
from charrnn.model import CharRNN, ModelConfig
from charrnn.training.config import TrainConfig
from charrnn.training.state import metadata
from charrnn.vocab import Vocab
from tests.test_export_web import node

ROOT = Path(__file__).resolve().parents[1]
CHECKS = ROOT / "tests" / "js" / "engine_checks.js"
# No newline: an unprimed stream starts from these counts. Ties, so top-k/top-p meet equal weights.
CHARS = " abcdefghijklmnopqrstuvwxyz"
COUNTS = [90, 40, 7, 20, 20, 60, 9, 9, 30, 50, 1, 3, 25, 12, 45, 50, 8, 1, 35, 40, 55, 16, 6, 9]
COUNTS += [2, 8, 1]
TRICKY = [
    "{{scripts}}",
    "{{model}}",
    "__proto__",
    "constructor",
    "toString",
    "hasOwnProperty",
    "say \"hi\" & 'bye'",
    "</script><script>alert(1)</script>",
    "<!--<script>",
    "<!--",
    "line\u2028sep\u2029",
    "cr\rlf\n tab\t",
    "€" * 85,  # 255 bytes, the most a file name holds
]


def tiny_checkpoint(path: Path, chars: str = CHARS, counts: list[int] = COUNTS) -> Path:
    """A small random-initialised 2×24 LSTM saved as a real checkpoint at path."""
    torch.manual_seed(1)
    vocab = Vocab(tuple(chars), tuple(counts))
    cfg = ModelConfig(vocab_size=vocab.size, layers=2, hidden=24, embed=8)
    model = CharRNN(cfg)
    with torch.no_grad():  # larger weights than the default init: text that moves
        for p in model.parameters():
            p.mul_(2.0)
    meta = metadata(cfg, TrainConfig(), vocab, {}, {}, {})
    meta |= {"history": {"train": [], "val": []}, "parameters": 0}
    path.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.save(path, {f"model.{k}": v for k, v in model.state_dict().items()}, meta)
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "tiny" / "best.ckpt")


def check(site: Path, job: dict) -> object:
    r = subprocess.run(
        [node(), str(CHECKS), str(site)],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_streams_at_once_each_write_their_own_text(tiny: Path) -> None:
    export(tiny, "web", "site", evaluate=False)
    runs = [
        {"seed": "the ", "length": 150, "temperature": 0.9, "rngSeed": 1},
        {"seed": "a", "length": 120, "temperature": 1.2, "topK": 5, "rngSeed": 2},
        {"length": 90, "temperature": 0.8, "rngSeed": 3, "stop": "zz"},
        {"seed": "the ", "length": 150, "temperature": 0.9, "rngSeed": 1},
    ]
    got = check(Path("site"), {"check": "concurrent", "runs": runs, "fed": "quick fox"})
    assert got["alone"][0] == got["alone"][3] and got["alone"][0] != got["alone"][1]
    assert got["together"] == got["alone"]
    assert got["interleaved"] == got["alone"]
    assert got["fedKept"] is True  # what feed() built is the model's own state throughout


def python_first(filters: Filters) -> np.ndarray:
    """Python's distribution for the first unprimed draw: the counts' logits at temperature 1,
    the other filters kept (charrnn.infer.stream.draw)."""
    logits = np.log(np.maximum(np.array(COUNTS, dtype=np.float64), 1e-300))[None]
    return probabilities_rows(adjust_rows(logits, filters))[0]


def test_first_draw_without_a_newline_keeps_the_filters_as_python_does(tiny: Path) -> None:
    export(tiny, "web", "site", evaluate=False)
    cases = [
        ({"temperature": 0.7, "topK": 3}, {"temperature": 0.7, "top_k": 3}),
        ({"topP": 0.3}, {"top_p": 0.3}),
        ({"temperature": 2.0, "minP": 0.5}, {"temperature": 2.0, "min_p": 0.5}),
        ({"topK": 8, "topP": 0.6, "minP": 0.3}, {"top_k": 8, "top_p": 0.6, "min_p": 0.3}),
        ({"temperature": 0}, {"temperature": 0}),
    ]
    seeds = list(range(40))
    got = check(Path("site"), {"check": "first", "options": [c[0] for c in cases], "seeds": seeds})
    python = Sampler(Engine.load(tiny, threads=1))
    for (_, kw), js in zip(cases, got, strict=True):
        temperature = 1.0 if kw.get("temperature", 1.0) else 0.0
        want = python_first(Filters(temperature, kw.get("top_k"), kw.get("top_p"), kw.get("min_p")))
        have = np.array([js["dist"].get(c, 0.0) for c in CHARS])
        np.testing.assert_allclose(have, want, rtol=0, atol=1e-6, err_msg=str(kw))  # float32 logits
        predicted = np.array([js["predicted"].get(c, 0.0) for c in CHARS])
        np.testing.assert_allclose(predicted, want, rtol=0, atol=1e-6, err_msg=f"predict {kw}")
        support = {c for c, p in zip(CHARS, want, strict=True) if p > 0}
        drawn = {python.generate("", 1, rng_seed=s, **kw) for s in seeds}
        assert set(js["drawn"]) <= support and drawn <= support, kw
        if len(support) > 1:
            assert len(set(js["drawn"])) > 1, kw


def test_rng_seeds_outside_the_generator_are_refused(tiny: Path) -> None:
    export(tiny, "web", "site", evaluate=False)
    values = [5, 5 + 2**32, 2**32 - 1, 2**32, -1, 1.5, "7", None]
    options = {"seed": "the ", "length": 60, "temperature": 1.0}
    got = check(Path("site"), {"check": "seeds", "values": values, "options": options})
    ok = {v: g for v, g in zip(map(str, values), got, strict=True) if g["error"] is None}
    assert set(ok) == {"5", str(2**32 - 1), "None"}  # None: no rngSeed, a random one
    assert ok["5"]["text"] != ok[str(2**32 - 1)]["text"]
    for v, g in zip(values, got, strict=True):
        if str(v) not in ok:
            want = f"RangeError: rngSeed must be an integer from 0 to {2**32 - 1} (2^32 - 1), got "
            assert g["error"].startswith(want), g
            assert g["sync"] == g["error"]  # stream() refuses at the call, before any work


class _Page(HTMLParser):
    """The <html> element's data-model and every <script>: its src, or its text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.model: str | None = None
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "html":
            self.model = dict(attrs)["data-model"]
        if tag == "script":
            src = dict(attrs).get("src")
            self.scripts.append(f"src={src}" if src else "")
            self._in_script = not src

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts[-1] += data


def read_page(path: Path) -> _Page:
    parsed = _Page()
    parsed.feed(path.read_text("utf-8"))
    parsed.close()
    return parsed


def page_script() -> str:
    """The page's own script, as page.html holds it."""
    text = asset("page.html")
    return text[text.index("<script>") + len("<script>") : text.index("</script>")]


def write_pages(base: Path, name: str) -> None:
    """The folder and single-file pages of the checkpoint at base/tiny.ckpt under a name no file
    can have (web.files, as export calls it)."""
    header = checkpoint.read_header(base / "tiny.ckpt")
    tensors = {k.removeprefix("model."): v for k, v in read_model_tensors(header).items()}
    meta = export_meta(header, base / "tiny.ckpt", "f32") | {"name": name}
    packed = weights.pack(tensors, "f32")
    manifest = web.manifest_for(meta, packed)
    for rel, data in web.files(name, manifest, packed, single_file=False).items():
        (base / "site").mkdir(exist_ok=True)
        (base / "site" / rel).write_bytes(data)
    (base / "one.html").write_bytes(web.files(name, manifest, packed, single_file=True)[""])


def write_named(base: Path, name: str) -> None:
    """base/site and base/one.html: the checkpoint at base/tiny.ckpt exported from a run folder
    called `name` (folder and single file)."""
    if "/" in name:  # no file has this name: the page's own writer takes it
        write_pages(base, name)
    else:
        run = base / name
        run.mkdir()
        shutil.copy(base / "tiny.ckpt", run / "best.ckpt")
        export(run / "best.ckpt", "web", base / "site", "f32", evaluate=False)
        export(run / "best.ckpt", "web", base / "one.html", "f32", True, evaluate=False)


def check_name(base: Path, name: str) -> None:
    """Export a model called `name` and load it in Node by that name; the page carries the name
    and its scripts unchanged."""
    write_named(base, name)
    folder = read_page(base / "site" / "index.html")
    assert folder.model == name
    assert folder.scripts == ["src=charrnn.js", page_script()]
    single = read_page(base / "one.html")
    assert single.model == name and len(single.scripts) == 3
    assert single.scripts[2] == page_script()
    got = check(base / "site", {"check": "names", "name": name, "scripts": single.scripts[:2]})
    assert got == {
        "unloaded": [False, "no network here", [name]],
        "keys": [name],
        "proto": None,
        "byName": name,
        "only": name,
        "isRegistered": True,
        "text": 5,
        "single": [name, [name], True],
    }


@pytest.mark.parametrize("name", TRICKY, ids=range(len(TRICKY)))
def test_a_model_of_any_name_loads(tiny: Path, tmp_path: Path, name: str) -> None:
    assert len("€" * 85) == 85 and len(("€" * 85).encode()) == 255
    shutil.copy(tiny, tmp_path / "tiny.ckpt")
    check_name(tmp_path, name)


FILE_NAME_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="/\0")


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    name=st.text(FILE_NAME_CHARS, min_size=1, max_size=40).filter(
        lambda s: s not in (".", "..") and len(s.encode()) <= 255
    )
)
def test_any_file_name_is_a_model_name(tiny: Path, name: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(tiny, Path(tmp) / "tiny.ckpt")
        check_name(Path(tmp), name)


def test_a_255_byte_name_exports_to_the_default_path(tiny: Path) -> None:
    name = "€" * 85
    run = Path("runs") / name
    run.mkdir(parents=True)
    shutil.copy(tiny, run / "best.ckpt")
    for single in (False, True):
        done = export(run / "best.ckpt", "web", single_file=single, evaluate=False)
        assert done.path.parent == Path("exports") and len(done.path.name.encode()) <= 240
        page = done.path if single else done.path / "index.html"
        assert read_page(page).model == name
