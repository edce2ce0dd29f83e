"""The playground page `charrnn serve` shows at /: a real server of the trained test model and Debian's
chromium driven by Playwright, nothing mocked. What the page shows is checked against the API
answering the same question directly (httpx). Skipped with the reason where the browser is missing."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import corpus_text
from tests.serving import Server, served, wait_for  # noqa: F401
from tests.test_viz import _browser

pytestmark = pytest.mark.slow  # a real server and a real browser

WIDE = {"width": 1200, "height": 900}
PHONE = {"width": 390, "height": 800}
PROB = 0.5e-4 + 1e-9  # the page shows probabilities to 4 decimals
CONTINUED = "document.getElementById('write-status').textContent.includes('Continued')"
CURSOR_AT_END = "t => { t.selectionStart = t.selectionEnd = t.value.length; }"


@pytest.fixture(scope="module")
def server(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the module's tests (each test opens its own browser context)."""
    srv = Server(trained, "--sessions", tmp_path_factory.mktemp("pg") / "sessions.sqlite")
    yield srv
    assert srv.stop() == 0, "".join(srv.log)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    sync_playwright, exe = _browser()
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=exe)
        yield chromium
        chromium.close()


class Page:
    """A fresh browser context (its own localStorage) on the page, with its console errors."""

    def __init__(self, browser, url: str, viewport: dict = WIDE) -> None:
        self.context = browser.new_context(viewport=viewport)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.set_default_timeout(15_000)
        self.page.goto(url)

    def __enter__(self):
        return self.page, self.errors

    def __exit__(self, *exc: object) -> None:
        self.context.close()


def write(page, text: str) -> None:
    """Put the text in the Write box with the cursor at its end, as if typed."""
    page.fill("#text", text)
    page.focus("#text")
    page.eval_on_selector("#text", CURSOR_AT_END)


def model_loaded(page) -> None:
    page.wait_for_function("document.getElementById('facts').textContent.includes('bpc')")


def test_page_shows_the_model_without_errors(server: Server, browser) -> None:
    card = httpx.get(f"{server.url}/v1/models").json()["data"][0]
    with Page(browser, server.url) as (page, errors):
        model_loaded(page)
        assert page.inner_text("#model-name") == card["id"]
        assert page.locator("#model").is_hidden()  # one model: a name, no picker
        facts = page.inner_text("#facts")
        assert "LSTM 2×96" in facts
        assert card["charrnn"]["corpus"] in facts
        assert f"{card['charrnn']['best_val_bpc']:.3f} bpc" in facts
        assert card["id"] in page.title()
        assert page.locator("#error").is_hidden()
        # A phone's width: everything wraps, nothing scrolls sideways.
        page.set_viewport_size(PHONE)
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        page.click("#tab-inside")
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert errors == []


def test_tab_suggests_and_enter_takes_one(server: Server, browser) -> None:
    with Page(browser, server.url) as (page, errors):
        model_loaded(page)
        write(page, corpus_text(400))
        page.keyboard.type("The king is ")
        before = page.input_value("#text")
        page.keyboard.press("Tab")
        items = page.locator("#suggestions li")
        items.first.wait_for()
        shown = items.all_inner_texts()
        assert 1 <= len(shown) <= 5 and all(s.strip() for s in shown)
        assert page.evaluate("document.activeElement.id") == "text"  # Tab did not move the focus
        assert page.get_attribute("#suggestions li:nth-child(1)", "aria-selected") == "true"
        if len(shown) > 1:  # Tab and Shift+Tab walk the list
            page.keyboard.press("Tab")
            assert page.get_attribute("#suggestions li:nth-child(2)", "aria-selected") == "true"
            page.keyboard.press("Shift+Tab")
        page.keyboard.press("Enter")
        assert page.locator("#suggestions").is_hidden()
        after = page.input_value("#text")
        assert after.startswith(before) and len(after) > len(before)
        assert after[len(before) :].replace("\n", " ↵ ") == shown[0]
        assert page.evaluate("document.activeElement.id") == "text"
        assert page.evaluate("document.getElementById('text').selectionStart") == len(after)
        # Esc drops them and leaves the text alone; then Tab leaves the box (no keyboard trap).
        page.keyboard.press("Tab")
        items.first.wait_for()
        page.keyboard.press("Escape")
        assert page.locator("#suggestions").is_hidden()
        assert page.input_value("#text") == after
        page.keyboard.press("Escape")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") != "text"
    assert errors == []


def test_continue_streams_what_the_api_writes(server: Server, browser) -> None:
    prompt = corpus_text(300)
    with Page(browser, server.url) as (page, errors):
        model_loaded(page)
        write(page, prompt)
        page.fill("#length", "300")
        page.fill("#seed", "4242")
        page.evaluate(
            "() => { window.lengths = []; const t = document.getElementById('text');"
            " t.addEventListener('input', () => window.lengths.push(t.value.length)); }"
        )
        page.click("#continue")
        page.wait_for_function(CONTINUED)
        text = page.input_value("#text")
        lengths = page.evaluate("window.lengths")
        assert page.is_enabled("#continue") and page.is_disabled("#stop")
        assert page.locator("#error").is_hidden()
    assert errors == []
    assert text.startswith(prompt) and len(text) > len(prompt)
    # It arrived in pieces, each one written into the box as it came.
    assert len(lengths) >= 2 and lengths == sorted(set(lengths)) and lengths[-1] == len(text)
    # A seeded request alone on the server writes the same text whole or streamed.
    body = {"prompt": prompt, "max_tokens": 300, "temperature": 0.8, "seed": 4242}
    whole = httpx.post(f"{server.url}/v1/completions", json=body | {"unknown": "skip"}).json()
    assert text[len(prompt) :] == whole["choices"][0]["text"]


def test_stop_ends_a_continuation(server: Server, browser) -> None:
    with Page(browser, server.url) as (page, errors):
        model_loaded(page)
        write(page, corpus_text(200))
        start = len(page.input_value("#text"))
        page.fill("#length", "4000")
        page.click("#continue")
        page.wait_for_function(f"document.getElementById('text').value.length > {start}")
        page.click("#stop")
        page.wait_for_function("!document.getElementById('continue').disabled")
        stopped = len(page.input_value("#text"))
        time.sleep(0.5)
        assert len(page.input_value("#text")) == stopped  # nothing arrives after Stop
        status = page.inner_text("#write-status")
        if "Stopped" in status:  # (a fast machine may have written all 4000 first)
            assert stopped - start < 4000
        assert page.locator("#error").is_hidden()
        # The server let go of the stream when the page went away from it.
        assert wait_for(lambda: httpx.get(f"{server.url}/health").json()["streams"] == 0)
    assert errors == []


def test_look_inside_shows_the_scores(server: Server, browser) -> None:
    text = corpus_text(240) + "\nThe price: 5 € <b>«only»</b>.\n"  # €, « and » are not ASCII
    score = httpx.post(
        f"{server.url}/v1/score", json={"text": text, "per_char": True, "top_k": 5}, timeout=60
    ).json()
    records = {r["i"]: r for r in score["per_char"]}
    with Page(browser, server.url) as (page, errors):
        model_loaded(page)
        page.click("#tab-inside")
        page.fill("#inside-text", text)
        page.click("#look")
        page.wait_for_selector("#chars .c")
        assert page.locator("#chars .c").count() == len(text)
        assert f"{score['bpc']:.3f} bits per character" in page.inner_text("#inside-status")
        for pos in (0, 1, 57, 200, text.index("only")):
            page.hover(f"#chars .c[data-i='{pos}']")
            rows = page.locator("#panel tr.guess")
            assert rows.count() == 5
            guesses = rows.evaluate_all("rs => rs.map(r => r.dataset.ch)")
            probs = [float(x) for x in page.locator("#panel .g-p").all_inner_texts()]
            top = records[pos]["top"]
            assert guesses == [c for c, _ in top], pos
            assert all(abs(s - p) <= PROB for s, (_, p) in zip(probs, top, strict=True)), pos
            seen = float(page.inner_text("#panel .seen-p"))
            assert abs(seen - math.exp(-records[pos]["nats"])) <= PROB
        for ch in "€«":
            pos = text.index(ch)
            assert pos not in records
            page.hover(f"#chars .c[data-i='{pos}']")
            assert "not in the model's vocabulary" in page.inner_text("#panel")
            assert "skip" in page.get_attribute(f"#chars .c[data-i='{pos}']", "class")
        assert page.locator("#chars .c.skip").count() == score["unknown"]
        # The keys step through the characters too.
        page.focus("#chars")
        page.keyboard.press("Home")
        page.keyboard.press("ArrowRight")
        assert page.inner_text("#panel h2") == f"character 2 of {len(text)}"
    assert errors == []


def test_the_page_asks_for_the_api_key(served, browser) -> None:  # noqa: F811
    srv = served("--api-key", "sekrit")
    with Page(browser, srv.url) as (page, errors):
        page.wait_for_selector("#key-form", state="visible")  # the model list was refused
        assert page.evaluate("document.activeElement.id") == "key"
        page.fill("#key", "wrong")
        page.keyboard.press("Enter")
        page.wait_for_function(
            "document.getElementById('key-note').textContent.includes('refused')"
        )
        assert page.is_visible("#key-form") and page.locator("#error").is_hidden()
        page.fill("#key", "sekrit")
        page.keyboard.press("Enter")
        model_loaded(page)
        assert page.locator("#key-form").is_hidden()
        assert page.evaluate("localStorage.getItem('charrnn.apiKey')") == "sekrit"
        write(page, corpus_text(200))
        page.keyboard.press("Tab")
        page.locator("#suggestions li").first.wait_for()
        assert page.locator("#error").is_hidden()
    # The one error the browser reports is the refused request itself.
    assert errors and all("401" in e for e in errors), errors


def test_a_refused_request_shows_the_server_message(served, browser) -> None:  # noqa: F811
    srv = served("--max-chars", "100")
    with Page(browser, srv.url) as (page, errors):
        model_loaded(page)
        write(page, "To be")
        page.fill("#length", "400")
        page.click("#continue")
        page.wait_for_selector("#error", state="visible")
        assert "max_tokens: must be between 0 and 100, got 400" in page.inner_text("#error")
        assert page.input_value("#text") == "To be"
        assert page.is_enabled("#continue")
        page.fill("#length", "40")
        page.click("#continue")  # a good request clears the error line
        page.wait_for_function(CONTINUED)
        assert page.locator("#error").is_hidden()
    assert len(errors) == 1 and "400" in errors[0], errors  # the refused request itself
