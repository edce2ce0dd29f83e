"""The exported page of a voiced model in Chromium (skipped with the reason where Chromium or
Playwright is missing): one weight per voice, shown normalised, and a strength; the page's greedy
text under a voice, a mix and a guided strength equals `Sampler`'s; `export --tag` sets the
sliders; all weights at 0 is no voice."""

from __future__ import annotations

from pathlib import Path

import pytest

from charrnn.infer.numpy_engine import Engine
from charrnn.infer.sampler import Sampler
from tests.test_export_browser import chromium, generate_on, watch  # noqa: F401 (fixture)
from tests.voiced import trained_voiced

pytestmark = pytest.mark.slow


def set_voices(page, weights: dict[str, float], strength: float = 1.0) -> None:
    """Move the sliders as a user does (an input event each) and type the strength."""
    page.evaluate(
        """(w) => { for (const i of document.querySelectorAll('#voicelist input')) {
            i.value = w[i.dataset.voice] ?? 0;
            i.dispatchEvent(new Event('input', { bubbles: true })); } }""",
        weights,
    )
    if strength != 1.0 or not page.is_disabled("#strength"):
        page.fill("#strength", str(strength))


def shares(page) -> list[str]:
    return page.eval_on_selector_all("#voicelist output", "os => os.map(o => o.value)")


def test_voice_controls_write_what_python_writes(cli, tmp_path: Path, chromium) -> None:  # noqa: F811
    (tmp_path / "voiced").mkdir()
    ckpt = trained_voiced(tmp_path / "voiced" / "best.ckpt", newline=True, steps=200)
    r = cli("export", ckpt, "-o", "site", "--dtype", "f32", "--no-eval", "--tag", "b")
    assert r.code == 0, r.err
    sampler = Sampler(Engine.load(ckpt, threads=1))
    context = chromium.new_context(viewport={"width": 1100, "height": 700}, offline=True)
    page = context.new_page()
    errors, _ = watch(page)
    page.goto((Path("site") / "index.html").resolve().as_uri())
    page.wait_for_function("() => !document.getElementById('go').disabled", timeout=30_000)
    assert page.is_visible("#voices") and "2 voices" in page.inner_text("#facts")
    assert shares(page) == ["0%", "100%"]  # export --tag b
    assert generate_on(page, "ab ", 80) == sampler.generate("ab ", 80, temperature=0, tag="b")
    set_voices(page, {"a": 0.25, "b": 0.75})
    assert shares(page) == ["25%", "75%"]
    mix = {"a": 0.25, "b": 0.75}
    assert generate_on(page, "ab ", 80) == sampler.generate("ab ", 80, temperature=0, tag=mix)
    set_voices(page, {"a": 1.0}, strength=2.0)
    want = sampler.generate("tu ", 80, temperature=0, tag="a", tag_strength=2.0)
    assert generate_on(page, "tu ", 80) == want
    set_voices(page, {})
    assert page.is_disabled("#strength") and "no voice" in page.inner_text("#voices")
    assert generate_on(page, "ab ", 80) == sampler.generate("ab ", 80, temperature=0)
    assert errors == []
    context.close()
