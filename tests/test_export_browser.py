"""The exported page in a real browser (Debian's chromium driven by Playwright; skipped with the
reason where either is missing): opened from file:// with the network blocked, and served over
HTTP on 127.0.0.1, the page generates Python's greedy text with the SIMD engine and no errors."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from charrnn.infer.numpy_engine import Engine
from charrnn.infer.sampler import Sampler
from tests.test_viz import _browser

pytestmark = pytest.mark.slow


@pytest.fixture
def chromium() -> Iterator[object]:
    sync_playwright, exe = _browser()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe)
        yield browser
        browser.close()


def generate_on(page, seed: str, length: int) -> str:
    """Type a seed, temperature 0 and a length into the page, press Generate, wait for the end."""
    page.wait_for_function("() => !document.getElementById('go').disabled", timeout=30_000)
    page.fill("#seed", seed)
    page.fill("#temp", "0")
    page.fill("#length", str(length))
    page.click("#go")
    page.wait_for_function(
        "() => !document.getElementById('go').disabled && document.getElementById('status').textContent",
        timeout=60_000,
    )
    return page.evaluate(
        "() => Array.from(document.querySelectorAll('#out span[data-p]'), s => s.textContent).join('')"
    )


def watch(page) -> tuple[list[str], list[str]]:
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    return errors, requests


def test_page_from_file_url_offline(cli, trained: Path, chromium) -> None:
    assert cli("export", trained, "-o", "site", "--dtype", "f32", "--no-eval").code == 0
    greedy = Sampler(Engine.load(trained, threads=1)).generate("def ", 200, temperature=0)
    context = chromium.new_context(viewport={"width": 1100, "height": 760}, offline=True)
    blocked: list[str] = []
    context.route("http*://**/*", lambda route: (blocked.append(route.request.url), route.abort()))
    page = context.new_page()
    errors, requests = watch(page)
    page.goto((Path("site") / "index.html").resolve().as_uri())
    assert generate_on(page, "def ", 200) == greedy
    assert page.evaluate("() => window.model.backend") == "simd"
    assert page.title() == f"{trained.parent.name} · charrnn"
    assert "2×96 lstm" in page.inner_text("#facts")
    assert blocked == [] and all(u.startswith("file://") for u in requests), requests
    assert {u.rsplit("/", 1)[-1] for u in requests} == {"index.html", "charrnn.js", "model.js"}
    assert errors == []
    # Each character carries its probability and top guesses for the hover.
    page.hover("#out span[data-p] >> nth=5")
    assert page.is_visible("#tip") and "p=" in page.inner_text("#tip")
    context.close()


def test_single_file_page_offline(cli, trained: Path, chromium) -> None:
    assert (
        cli(
            "export", trained, "--single-file", "-o", "one.html", "--dtype", "f32", "--no-eval"
        ).code
        == 0
    )
    greedy = Sampler(Engine.load(trained, threads=1)).generate("class ", 120, temperature=0)
    context = chromium.new_context(offline=True)
    page = context.new_page()
    errors, requests = watch(page)
    page.goto(Path("one.html").resolve().as_uri())
    assert generate_on(page, "class ", 120) == greedy
    assert [u.rsplit("/", 1)[-1] for u in requests] == ["one.html"] and errors == []
    context.close()


@pytest.fixture
def http_site() -> Iterator[str]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(Path("site").resolve()))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_page_over_http_uses_the_binary_weights(cli, trained: Path, chromium, request) -> None:
    assert cli("export", trained, "-o", "site", "--no-eval").code == 0  # int8, the default
    url = request.getfixturevalue("http_site")
    page = chromium.new_page()
    errors, requests = watch(page)
    page.goto(f"{url}/index.html")
    text = generate_on(page, "import ", 150)
    names = {u.rsplit("/", 1)[-1] for u in requests}
    assert {"model.json", "model.bin"} <= names and "model.js" not in names
    assert len(text) == 150 and errors == []
    # int8: the page's greedy text is the numpy engine's on the same dequantized arrays.
    from tests.test_export_web import engine_on

    assert text == Sampler(engine_on(Path("site"), trained)).generate("import ", 150, temperature=0)
    page.close()


def test_pages_of_tricky_model_names(tmp_path: Path, chromium) -> None:
    """A model named like a placeholder, an Object.prototype key, markup, or with quotes, U+2028,
    a carriage return or 255 bytes: both pages load it from file:// and generate its text."""
    from tests.test_export_js import TRICKY, tiny_checkpoint, write_named

    tiny = tiny_checkpoint(tmp_path / "tiny.ckpt")
    greedy = Sampler(Engine.load(tiny, threads=1)).generate("the ", 40, temperature=0)
    context = chromium.new_context(offline=True)
    for i, name in enumerate(TRICKY):
        base = tmp_path / str(i)
        base.mkdir()
        (base / "tiny.ckpt").write_bytes(tiny.read_bytes())
        write_named(base, name)
        for url in ((base / "site" / "index.html").as_uri(), (base / "one.html").as_uri()):
            page = context.new_page()
            errors, _ = watch(page)
            page.goto(url)
            assert generate_on(page, "the ", 40) == greedy, (name, url)
            assert errors == [], (name, url, errors)
            shown = page.evaluate(
                "() => [document.documentElement.dataset.model, document.title, "
                "document.getElementById('title').textContent]"
            )
            assert shown[0] == shown[2] == name and shown[1].endswith(" · charrnn"), shown
            page.close()
    context.close()
