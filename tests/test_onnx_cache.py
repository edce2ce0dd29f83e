"""The ONNX engine's graph cache: keyed by every version that shapes a graph, a damaged graph
rebuilt (and said), the least recently used graphs pruned past the size cap."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from charrnn import checkpoint

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
pytest.importorskip("onnx", reason="the onnx extra is not installed")

from charrnn.infer import onnx_cache
from charrnn.infer.export import onnx_graph

SAMPLE = ["--engine", "onnx", "--seed", "def ", "--length", "60", "--rng-seed", "3"]

# onnx_graph.py as it was at each GRAPH_VERSION (sha256 of its lines, line endings aside).
BUILDER_AT = {
    1: "c7d48e54eac3bf3314208e22bdf13f4cd3b4a28cfa16fc223ebbc3f0b06a8fd6",
    2: "6f71587226b219d000cedc0099ce4291d27806dc61033ed8f99015417b1c816d",  # the voice input
}


def graphs() -> list[Path]:
    return sorted(onnx_cache.folder().glob("*.onnx"))


def test_the_builders_code_is_the_version_it_says() -> None:
    """A graph built before a change to the builder must not be reused after it: the change must
    bump GRAPH_VERSION (part of the cache key), and this test fails until it does."""
    lines = Path(onnx_graph.__file__).read_text(encoding="utf-8").splitlines()
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()
    assert BUILDER_AT.get(onnx_graph.GRAPH_VERSION) == digest, (
        "charrnn/infer/export/onnx_graph.py changed: bump GRAPH_VERSION and record "
        f"{onnx_graph.GRAPH_VERSION + 1}: {digest!r} in BUILDER_AT"
    )


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("charrnn.infer.export.onnx_graph", "GRAPH_VERSION"),
        ("onnx", "__version__"),
        ("onnxruntime", "__version__"),
        ("charrnn.infer.onnx_cache", "__version__"),
    ],
)
def test_every_version_that_shapes_a_graph_is_in_its_key(
    monkeypatch: pytest.MonkeyPatch, module: str, name: str
) -> None:
    import importlib

    before = onnx_cache.path("f" * 64, "int8")
    monkeypatch.setattr(importlib.import_module(module), name, "99.0")
    assert onnx_cache.path("f" * 64, "int8") != before


def test_a_graph_from_another_builder_is_not_reused(
    cli, trained: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = cli("sample", trained, *SAMPLE)
    assert first.code == 0, first.err
    (old,) = graphs()
    monkeypatch.setattr(onnx_graph, "GRAPH_VERSION", onnx_graph.GRAPH_VERSION + 1)
    again = cli("sample", trained, *SAMPLE)
    assert again.code == 0 and again.out == first.out
    assert len(graphs()) == 2 and old in graphs()  # built afresh; the old one ages out


def test_a_damaged_graph_is_rebuilt_and_said(cli, trained: Path) -> None:
    first = cli("sample", trained, *SAMPLE)
    assert first.code == 0, first.err
    (cached,) = graphs()
    size = cached.stat().st_size
    cached.write_bytes(cached.read_bytes()[: size // 2])  # a disk that filled, a copy cut short
    again = cli("sample", trained, *SAMPLE)
    assert again.code == 0, again.err
    assert again.out == first.out
    (said,) = [line for line in again.err.splitlines() if "warning" in line]
    assert said.startswith(f"charrnn: warning: the cached ONNX graph {cached} did not load (")
    assert said.endswith("); rebuilt it")
    assert cached.stat().st_size == size  # repaired
    quiet = cli("sample", trained, *SAMPLE)
    assert quiet.code == 0 and "warning" not in quiet.err


def test_python_callers_get_the_rebuild_as_a_warning(trained: Path) -> None:
    import charrnn
    from charrnn.errors import CharRNNWarning

    charrnn.load(str(trained), engine="onnx")
    (cached,) = graphs()
    cached.write_bytes(b"not a graph")
    with pytest.warns(CharRNNWarning, match="did not load"):
        s = charrnn.load(str(trained), engine="onnx")
    assert s.generate("def ", 20, temperature=0)


def test_loading_marks_a_graph_as_used(trained: Path) -> None:
    import charrnn

    charrnn.load(str(trained), engine="onnx", dtype="f32")
    (cached,) = graphs()
    os.utime(cached, (1e9, 1e9))
    charrnn.load(str(trained), engine="onnx", dtype="f32")
    assert cached.stat().st_mtime > time.time() - 600


def fake_graph(name: str, size: int, used: float) -> Path:
    p = onnx_cache.folder() / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"\0" * size)
    os.utime(p, (used, used))
    return p


def test_the_least_recently_used_graphs_go_past_the_cap() -> None:
    now = time.time()
    a = fake_graph("a.onnx", 400, now - 300)  # used longest ago
    b = fake_graph("b.onnx", 400, now - 100)
    c = fake_graph("c.onnx", 400, now - 200)
    new = fake_graph(
        "new.onnx", 400, now - 10_000
    )  # just built (its time as the file system has it)
    stale = fake_graph(".d.onnx.123.tmp", 50, now - 2 * onnx_cache.STALE_TEMP_SECONDS)
    fresh = fake_graph(".e.onnx.456.tmp", 50, now)  # a build under way beside this one
    removed = onnx_cache.prune(onnx_cache.folder(), keep=new, limit=1_000)
    assert sorted(removed) == sorted([a, c, stale])
    assert {p.name for p in onnx_cache.folder().iterdir()} == {b.name, new.name, fresh.name}
    assert onnx_cache.prune(onnx_cache.folder(), keep=new, limit=1_000) == []


def test_a_new_graph_prunes_the_cache(trained: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import charrnn

    old = fake_graph(f"{'0' * 64}-int8-old.onnx", 4_000_000, time.time() - 3600)
    monkeypatch.setattr(onnx_cache, "CACHE_BYTES", 3_000_000)
    charrnn.load(str(trained), engine="onnx")
    assert not old.exists()
    assert [p.name.split("-")[0] for p in graphs()] == [checkpoint.fingerprint(trained)]
