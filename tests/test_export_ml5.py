"""`--format ml5` loaded by the real ml5.js 0.12.2 (the last release with charRNN) in Chromium:
after the same seed its next-character probabilities are the numpy engine's. ml5 is fetched once
from the npm registry into a cache outside the repository (never committed); the test is skipped
with the reason where the registry, Chromium or Playwright is unavailable."""

from __future__ import annotations

import functools
import http.server
import io
import shutil
import subprocess
import tarfile
import threading
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from charrnn.infer.numpy_engine import Engine
from tests.test_viz import _browser

VERSION = "0.12.2"
TARBALL = f"https://registry.npmjs.org/ml5/-/ml5-{VERSION}.tgz"
CACHE = Path.home() / ".cache" / "charrnn-tests" / f"ml5-{VERSION}"
MEMBER = "package/dist/ml5.min.js"


def ml5_script() -> Path:
    """dist/ml5.min.js of ml5 0.12.2 (it bundles TensorFlow.js 1.x): `npm pack` where npm is
    installed, else the same tarball from the registry."""
    script = CACHE / MEMBER
    if script.is_file():
        return script
    CACHE.mkdir(parents=True, exist_ok=True)
    try:
        if shutil.which("npm"):
            subprocess.run(
                ["npm", "pack", f"ml5@{VERSION}", "--silent"], cwd=CACHE, check=True, timeout=300
            )
            data = (CACHE / f"ml5-{VERSION}.tgz").read_bytes()
        else:
            with urllib.request.urlopen(TARBALL, timeout=120) as r:
                data = r.read()
        extract_script(data, CACHE)
    except (OSError, subprocess.SubprocessError, tarfile.TarError, KeyError) as e:
        pytest.skip(f"ml5 {VERSION} could not be fetched from the npm registry ({e})")
    return script


def extract_script(tarball: bytes, folder: Path) -> Path:
    """Write the tarball's package/dist/ml5.min.js under `folder`. The member's bytes are read and
    written here rather than through `extractall(filter=...)`, which Python 3.11.2 (Debian 12's own)
    does not have, and which would only guard paths this function never takes from the archive."""
    with tarfile.open(fileobj=io.BytesIO(tarball)) as tar:
        source = tar.extractfile(MEMBER)
        if source is None:
            raise KeyError(f"{MEMBER} is not a regular file in the ml5 tarball")
        data = source.read()
    script = folder / MEMBER
    script.parent.mkdir(parents=True, exist_ok=True)
    partial = script.with_name(script.name + ".part")
    partial.write_bytes(data)
    partial.replace(script)
    return script


def test_the_script_is_extracted_on_every_supported_python(tmp_path: Path) -> None:
    """Runs on 3.11.2 as on later Pythons, into a fresh folder: the download cache of a machine
    that once extracted it would skip extraction and hide a failure there."""
    body = b"/* ml5 */"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in (("package/package.json", b"{}"), (MEMBER, body)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    script = extract_script(buffer.getvalue(), tmp_path / "fresh")
    assert script == tmp_path / "fresh" / MEMBER
    assert script.read_bytes() == body
    assert sorted(p.name for p in (tmp_path / "fresh").rglob("*") if p.is_file()) == ["ml5.min.js"]


PAGE = """<!doctype html><meta charset="utf-8"><script src="ml5.min.js"></script>
<script>
window.result = (async () => {
  const rnn = ml5.charRNN("model/");
  await rnn.ready;
  await rnn.feed(SEED);
  const p = await rnn.predict(1);
  return p.probabilities;
})();
</script>"""


@pytest.mark.slow
def test_ml5_runs_the_export(cli, trained: Path, tmp_path: Path) -> None:
    sync_playwright, exe = _browser()
    script = ml5_script()
    site = tmp_path / "site"
    assert cli("export", trained, "--format", "ml5", "-o", site / "model", "--no-eval").code == 0
    shutil.copy(script, site / "ml5.min.js")
    seed = "def main(argv):\n    return "
    (site / "index.html").write_text(PAGE.replace("SEED", repr(seed)))
    engine = Engine.load(trained, threads=1)
    ids = engine.vocab.encode(seed)
    # ml5 0.12's feed() reads the seed's first character twice and never its last one.
    fed = [ids[0], *ids[:-1]]
    logits = engine.forward(fed, last_only=True).logits[-1].astype(np.float64)
    expected = np.exp(logits - logits.max())
    expected /= expected.sum()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(site))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=exe)
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"http://127.0.0.1:{server.server_address[1]}/index.html")
            probs = page.evaluate("() => window.result")
            browser.close()
    finally:
        server.shutdown()
        server.server_close()
    assert errors == []
    got = np.array([d["probability"] for d in probs])
    order = [engine.vocab.index(d["char"]) for d in probs]
    assert np.abs(got - expected[order]).max() < 1e-4
