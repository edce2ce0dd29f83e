"""`charrnn viz`: the unit pick on constructed data, the page's data against `Scorer`, the CLI's
input errors, the LSTMVis files as h5py and a YAML parser read them, and the page in a real browser
(Debian's chromium driven by Playwright; skipped with the reason where either is missing)."""

from __future__ import annotations

import base64
import json
import math
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from charrnn.errors import InputError
from charrnn.infer.numpy_engine import Engine
from charrnn.infer.score import Scorer
from charrnn.viz.units import Layout, correlations, select_units, text_properties
from tests.conftest import corpus_text

# Quotes, brackets, indentation, a closing script tag that must not end the page's data element,
# and characters the vocabulary lacks (the test corpus is ASCII: é, ☃ and « » are not in it).
EXTRA = '\n  He said "come (and see) </script><b>café ☃</b>" and «left».\n    Then [nothing].\n'


def page_blob(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="data">(.*?)</script>', html, re.S)
    assert m, "the page carries its data in one JSON script element"
    return json.loads(m.group(1))


def decode(b64: str, dtype: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(b64), dtype=dtype)


def expected_top5(ckpt: Path, text: str) -> dict[int, tuple[list[int], list[float], float]]:
    """Position → (the 5 best vocab ids, their probabilities, the seen one's), from Scorer."""
    out = {}
    for chunk in Scorer(Engine.load(ckpt)).chunks(text):
        probs = np.exp(chunk.logprobs)
        for row, pos in enumerate(chunk.positions):
            best = np.argsort(-probs[row], kind="stable")[:5]
            out[int(pos)] = (best.tolist(), probs[row, best].tolist(), probs[row, chunk.ids[row]])
    return out


# --- units: properties, correlation, the pick ---------------------------------------------------


def test_text_properties_are_read_as_the_model_stands_after_each_character() -> None:
    text = 'ab "c(d)"\n  e'
    p = text_properties(text)
    assert p["inside quotes"].tolist() == [0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0]
    assert p["inside brackets"].tolist() == [0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0]
    assert p["position in line"].tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3]
    assert p["indentation"].tolist() == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 2]
    assert p["word start"].tolist() == [1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1]


def test_correlations_guard_constant_units_and_properties() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 3)).astype(np.float32)
    x[:, 1] = 5.0  # a dead unit
    props = np.stack([x[:, 0] * 2 + 1, np.ones(200)], axis=1)  # tracks unit 0; a constant property
    r = correlations(x, props)
    assert r[0, 0] == pytest.approx(1.0, abs=1e-6)
    assert r[1, 0] == 0.0
    assert np.isnan(r[:, 1]).all()


def test_select_units_finds_planted_units_and_shares_the_pick_out() -> None:
    rng = np.random.default_rng(1)
    # Prose the test writes, some words quoted or bracketed, in lines of many lengths without
    # indentation: in source code the indentation and the position in the line go together.
    words = ["we", "write", "(small)", "words", "and", '"quoted"', "ones", "to", "fill", "lines"]
    lines = (" ".join(rng.choice(words, size=rng.integers(1, 10))) for _ in range(200))
    text = "\n".join(lines) + EXTRA * 20
    props = text_properties(text)
    names = list(props)
    matrix = np.stack([props[k] for k in names], axis=1)
    states = rng.standard_normal((len(text), 300)).astype(np.float32) * 0.5
    states[:, 123] = matrix[:, names.index("inside quotes")] + 0.05 * rng.standard_normal(len(text))
    states[:, 7] = -np.tanh(matrix[:, names.index("position in line")] / 40)  # anti-correlated
    r = correlations(states, matrix)
    picks = select_units(r, count=10)
    assert len(picks) == 10 and len({p.unit for p in picks}) == 10
    by_prop = {names[k]: [p.unit for p in picks if p.prop == k] for k in range(len(names))}
    assert all(len(units) == 2 for units in by_prop.values())  # 10 units, 5 properties
    assert by_prop["inside quotes"][0] == 123
    assert by_prop["position in line"][0] == 7
    # A unit the user named is listed apart, not picked again; a constant property gets nothing.
    assert 123 not in {p.unit for p in select_units(r, count=10, exclude=[123])}
    r[:, 0] = np.nan
    assert all(p.prop != 0 for p in select_units(r, count=10))


def test_unit_names_round_trip_and_bad_ones_are_refused() -> None:
    lstm = Layout(layers=2, hidden=512, cells=True)
    assert lstm.size == 2048
    assert [lstm.name(u) for u in lstm.parse("h1:283, c2:17,h1:283")] == ["h1:283", "c2:17"]
    for bad, why in [
        ("x1:3", "not a unit name"),
        ("h0:3", "layer 0 does not exist"),
        ("h3:3", "layers 1..2"),
        ("c1:512", "units 0..511"),
    ]:
        with pytest.raises(InputError, match=re.escape(why)):
            lstm.parse(bad)
    with pytest.raises(InputError, match="only an LSTM"):
        Layout(layers=1, hidden=8, cells=False).parse("c1:0")


# --- the page -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def text_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("viz") / "scene.txt"
    path.write_text(corpus_text(1500) + EXTRA, encoding="utf-8")
    return path


def test_page_data_matches_the_scorer(cli, trained: Path, text_file: Path) -> None:
    r = cli("viz", trained, text_file, "-o", "page.html", "--units", "h1:5,c2:95")
    assert r.code == 0, r.err
    assert r.out == ""
    assert re.fullmatch(
        r"wrote page\.html \(\d+ KB\): 1,\d{3} characters, \d\.\d{3} bpc, 66 units, in [\d.]+ s\n",
        r.err,
    )
    html = Path("page.html").read_text(encoding="utf-8")
    data = page_blob(html)
    # Nothing is fetched from anywhere (the page's text itself may name URLs: json.org).
    page = re.sub(r'<script type="application/json" id="data">.*?</script>', "", html, flags=re.S)
    assert "http://" not in page and "https://" not in page
    text = text_file.read_text(encoding="utf-8")
    assert data["text"] == text and data["meta"]["name"] == "run"
    n, k = len(text), data["k"]
    ids = decode(data["top_ids"], "<u1").reshape(n, k)
    probs = decode(data["top_probs"], "<u2").reshape(n, k) / data["prob_scale"]
    seen = decode(data["seen_logprob"], "<f4")
    expected = expected_top5(trained, text)
    assert sorted(expected) == [i for i in range(n) if not math.isnan(seen[i])]
    for pos, (best, p, p_seen) in expected.items():
        assert ids[pos].tolist() == best
        assert np.abs(probs[pos] - p).max() <= 0.5e-4 + 1e-9
        assert math.exp(seen[pos]) == pytest.approx(p_seen, rel=1e-6)
    score = Scorer(Engine.load(trained)).score(text)
    assert data["meta"]["bpc"] == round(score.bpc, 4)
    assert data["meta"]["unknown"] == sum(score.unknown.values()) == len("é☃«»")
    groups = [u["group"] for u in data["units"]]
    assert len(groups) == 66 and groups[-2:] == ["--units", "--units"]
    assert [u["name"] for u in data["units"][-2:]] == ["h1:5", "c2:95"]
    assert len({u["name"] for u in data["units"]}) == 66
    q = decode(data["units"][0]["q"], "<i1")
    assert len(q) == n and q.min() >= -127 and np.abs(q).max() == 127


def test_default_page_is_the_validation_text_and_stays_small(cli, trained: Path) -> None:
    r = cli("viz", trained)
    assert r.code == 0, r.err
    size = Path("viz.html").stat().st_size
    assert "wrote viz.html" in r.err and "5,000 characters" in r.err
    assert size < 1_000_000  # the bound; 64 units × 5,000 chars is most of it
    data = page_blob(Path("viz.html").read_text(encoding="utf-8"))
    assert data["meta"]["source"] == "pystdlib validation text"  # conftest's corpus_file
    assert data["meta"]["source_chars"] > 5000 and len(data["units"]) == 64


def test_page_to_stdout(cli, trained: Path, text_file: Path) -> None:
    r = cli("viz", trained, "-", "-o", "-", "--max-chars", "300", stdin=corpus_text(2000))
    assert r.code == 0, r.err
    assert r.out.startswith("<!doctype html>") and r.out.rstrip().endswith("</html>")
    assert page_blob(r.out)["meta"]["source_chars"] == 2000
    assert "300 characters" in r.err


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["missing.txt"], None, "missing.txt: no such file"),
        (["latin1.txt"], None, "latin1.txt: not UTF-8 text (byte 3)"),
        (["empty.txt"], None, "empty.txt: the text is empty"),
        (["-"], "", "stdin: the text is empty"),
        (["scene.txt", "--units", "h1:96"], None, "unit 96 does not exist (units 0..95)"),
        (["scene.txt", "--units", "q"], None, "'q' is not a unit name"),
        (["scene.txt", "--lstmvis", "d", "-o", "x.html"], None, "leave out -o and --units"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(cli, trained: Path, args, stdin, message) -> None:
    Path("latin1.txt").write_bytes(b"caf\xe9\n")
    Path("empty.txt").write_text("")
    Path("scene.txt").write_text("To be.\n")
    r = cli("viz", trained, *args, stdin=stdin)
    assert r.code == 2
    assert r.err.count("\n") == 1 and message in r.err, r.err
    assert not Path("viz.html").exists()


# --- LSTMVis ------------------------------------------------------------------------------------


def read_dict_as_lstmvis_does(path: Path) -> dict[int, str]:
    """LSTMVis's reading of a .dict file: split each line on whitespace; "token id", or a line
    that starts with a space is the space token."""
    table = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 2:
                table[int(parts[1])] = parts[0]
            elif line[0] == " ":
                table[int(line.strip())] = " "
    return table


def test_lstmvis_files_have_the_shapes_lstmvis_reads(cli, trained: Path, text_file: Path) -> None:
    h5py = pytest.importorskip("h5py")
    yaml = pytest.importorskip("yaml")
    r = cli("viz", trained, text_file, "--lstmvis", "proj")
    assert r.code == 0, r.err
    assert re.fullmatch(
        r"wrote LSTMVis files to proj \(.+\): 1,\d{3} characters × 384 units .*\n", r.err
    )
    text = text_file.read_text(encoding="utf-8")
    config = yaml.safe_load(Path("proj/lstm.yml").read_text(encoding="utf-8"))
    assert config["files"] == {
        "states": "states.hdf5",
        "train": "train.hdf5",
        "words": "train.dict",
    }
    assert config["word_sequence"] == {"file": "train", "path": "word_ids", "dict_file": "words"}
    types = config["states"]["types"]
    assert [(t["type"], t["layer"], t["path"]) for t in types] == [
        ("output", 1, "output1"),
        ("state", 1, "states1"),
        ("output", 2, "output2"),
        ("state", 2, "states2"),
    ]
    engine = Engine.load(trained)
    chunks = list(Scorer(engine).chunks(text, keep_states=True))
    known = np.concatenate([c.positions for c in chunks])
    with h5py.File("proj/train.hdf5", "r") as f:
        word_ids = f["word_ids"][:]
    assert word_ids.shape == (len(known),) and word_ids.dtype.kind == "i"
    words = read_dict_as_lstmvis_does(Path("proj/train.dict"))
    assert len(words) == engine.vocab.size
    read_back = "".join(words[int(i)] for i in word_ids).replace("↵", "\n")
    assert read_back == "".join(text[i] for i in known)
    with h5py.File("proj/states.hdf5", "r") as f:
        for t in types:
            ds = f[t["path"]]
            assert ds.shape == (len(known), 96) and ds.dtype == np.float32
            layer = t["layer"] - 1
            want = np.concatenate(
                [(c.cells if t["type"] == "state" else c.hidden)[layer] for c in chunks]
            )
            np.testing.assert_array_equal(ds[:], want)


def test_lstmvis_tokens_are_unique_and_survive_lstmvis_reading(tmp_path: Path) -> None:
    from charrnn.viz.lstmvis import dict_lines, state_sets

    chars = tuple(sorted("\t\n\x0b ab\u00a0\u200b↵"))
    path = tmp_path / "train.dict"
    path.write_text("\n".join(dict_lines(chars)) + "\n", encoding="utf-8")
    words = read_dict_as_lstmvis_does(path)
    assert words == {
        1: "␉",
        2: "<U+000A>",  # ↵ itself is in this vocabulary, so the newline takes its code
        3: "␋",
        4: " ",
        5: "a",
        6: "b",
        7: "<U+00A0>",
        8: "<U+200B>",
        9: "↵",
    }
    gru = [(s.path, s.kind, s.layer, s.cells) for s in state_sets("gru", 2)]
    assert gru == [("states1", "state", 1, False), ("states2", "state", 2, False)]


def test_lstmvis_without_h5py_says_how_to_get_it(cli, trained: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "h5py", None)  # import h5py now raises ImportError
    Path("t.txt").write_text("To be.\n")
    r = cli("viz", trained, "t.txt", "--lstmvis", "proj")
    assert r.code == 1
    assert (
        "needs h5py: pip install -e '.[lstmvis]' in the charrnn checkout" in r.err
        and r.err.count("\n") == 1
    )


# --- in a real browser --------------------------------------------------------------------------


def _browser() -> tuple[object, str]:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("no chromium browser installed (apt-get install chromium; .ci/run does)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[dev]')")
    return sync_playwright, exe


@pytest.mark.slow
def test_page_in_a_real_browser(cli, trained: Path, text_file: Path) -> None:
    sync_playwright, exe = _browser()
    assert cli("viz", trained, text_file, "-o", "page.html").code == 0
    text = text_file.read_text(encoding="utf-8")
    expected = expected_top5(trained, text)
    url = Path("page.html").resolve().as_uri()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url)
            assert page.locator("#text .c").count() == len(text)
            assert page.title() == "run · charrnn viz"
            for pos in (0, 1, 200, 777, len(text) - 2):
                page.hover(f"#text .c[data-i='{pos}']")
                rows = page.locator("#panel tr.guess")
                assert rows.count() == 5
                shown_ids = [int(v) for v in rows.evaluate_all("rs => rs.map(r => r.dataset.v)")]
                shown_p = [float(x) for x in page.locator("#panel .g-p").all_inner_texts()]
                best, probs, p_seen = expected[pos]
                assert shown_ids == best, pos
                assert all(abs(s - e) <= 0.5e-4 + 1e-9 for s, e in zip(shown_p, probs, strict=True))
                assert abs(float(page.inner_text("#panel .seen-p")) - p_seen) <= 0.5e-4 + 1e-9
            # A character the model does not know: skipped, and the panel says so.
            page.hover(f"#text .c[data-i='{text.index('☃')}']")
            assert "not in the model's vocabulary" in page.inner_text("#panel")
            colours = "() => Array.from(document.querySelectorAll('#text .c'), s => s.style.backgroundColor)"
            before = page.evaluate(colours)
            page.select_option("#picker", value="0")  # the first picked unit
            after = page.evaluate(colours)
            changed = sum(a != b for a, b in zip(before, after, strict=True))
            assert changed > len(text) // 2
            assert "r = " in page.inner_text(
                "#panel"
            )  # its correlations, for the hovered character
            # The keys step through the text. The page scrolls, and the browser reports the
            # character that scrolled under the resting mouse as hovered: that must not take the
            # panel from the keys (until the mouse moves).
            page.focus("#text")
            page.keyboard.press("Home")
            page.wait_for_timeout(300)
            assert page.inner_text("#panel h2").startswith("character 1 ")
            page.keyboard.press("ArrowRight")
            assert page.inner_text("#panel h2").startswith("character 2 ")
            page.hover("#text .c[data-i='5']")
            assert page.inner_text("#panel h2").startswith("character 6 ")
            assert errors == []
        finally:
            browser.close()
