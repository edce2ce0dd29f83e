"""Novelty against the real corpus: brute-force references for copies and windows, whole lines, the
on-disk cache (reuse, corruption, read-only datasets) and finding a checkpoint's training text."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from charrnn.data.corpus_index import CorpusIndex, Novelty
from charrnn.errors import InputError
from tests.conftest import corpus_text

# Brute force runs `in` over the corpus once per window, so it gets a slice, not the whole 1.1 MB.
SMALL = corpus_text(40_000)
WIDE = (
    "床前明月光，疑是地上霜。\n举头望明月，低头思故乡。\n"
    "春眠不觉晓，处处闻啼鸟。\n夜来风雨声，花落知多少。\n"
    "🙂 smile 😀 grin 🚀 rocket\n"
    "naïve café — déjà vu ¿qué? 𝔘𝔫𝔦𝔠𝔬𝔡𝔢\n"
) * 3
WIDE_EXTRA = "月光霜🙂🚀éa 龍𝔘\n"  # in and out of the corpus, one to four UTF-8 bytes each

_indexes: dict[str, CorpusIndex] = {}


def index_of(text: str) -> CorpusIndex:
    if text not in _indexes:
        _indexes[text] = CorpusIndex.build(text.encode("utf-8"))
    return _indexes[text]


def reference(corpus: str, text: str, window: int) -> tuple[int, float]:
    """Longest copy by binary search on its length (found lengths are downward closed) and the
    new-window share by testing every window, both with plain `in`."""

    def any_found(length: int) -> bool:
        return any(text[i : i + length] in corpus for i in range(len(text) - length + 1))

    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if any_found(mid) else (lo, mid - 1)
    if not text:
        return lo, 0.0
    w = min(window, len(text))
    windows = [text[i : i + w] for i in range(len(text) - w + 1)]
    return lo, sum(x not in corpus for x in windows) / len(windows)


def check(corpus: str, text: str, window: int = 20) -> None:
    nov = index_of(corpus).novelty(text, window)
    length, share = reference(corpus, text, window)
    assert (nov.longest_copy, nov.new_share) == (length, pytest.approx(share))
    assert len(nov.longest_copy_text) == length and nov.longest_copy_text in corpus
    assert nov.longest_copy_text in text
    assert index_of(corpus).longest_copy(text) == (length, nov.longest_copy_text)


def mutated(corpus: str, alphabet: str):
    """A slice of the corpus with characters replaced, inserted or deleted, like a model's output."""
    edit = st.tuples(st.integers(0, 10_000), st.sampled_from("rid"), st.sampled_from(alphabet))

    @st.composite
    def build(draw) -> str:
        start = draw(st.integers(0, len(corpus) - 1))
        chars = list(corpus[start : start + draw(st.integers(0, 300))])
        for pos, kind, ch in draw(st.lists(edit, max_size=12)):
            k = pos % (len(chars) + 1)
            if kind == "r" and k < len(chars):
                chars[k] = ch
            elif kind == "i":
                chars.insert(k, ch)
            elif k < len(chars):
                del chars[k]
        return "".join(chars)

    return build()


@settings(deadline=None)
@given(mutated(SMALL, "etaoin ,.:\nqzXZ|~"), st.sampled_from([1, 5, 20]))
def test_novelty_matches_brute_force_on_the_corpus(text: str, window: int) -> None:
    check(SMALL, text, window)


@settings(deadline=None)
@given(mutated(WIDE, WIDE + WIDE_EXTRA), st.sampled_from([1, 3, 20]))
def test_novelty_matches_brute_force_on_multibyte_text(text: str, window: int) -> None:
    check(WIDE, text, window)


def test_whole_corpus_copy_and_edges() -> None:
    full = corpus_text()
    index = index_of(full)
    start = len(full) // 2
    sample = "§" + full[start : start + 1500] + "§"  # § is not in the corpus (it is ASCII)
    assert index.longest_copy(sample) == (1500, full[start : start + 1500])
    assert index.novelty(sample).new_share == pytest.approx(2 / (len(sample) - 19))
    assert index.novelty("") == Novelty(0, "", 0.0)
    assert index.novelty("§§") == Novelty(0, "", 1.0)  # shorter than a window: one window, new
    assert index.novelty("import").new_share == 0.0  # every module of the corpus imports
    assert index.occurs("") and index.occurs("import ") and not index.occurs("import §")
    assert index.novelty("import", window=3).to_json() == {
        "longest_copy": 6,
        "longest_copy_text": "import",
        "new_share": 0.0,
    }
    with pytest.raises(InputError, match="at least 1"):
        index.novelty("abc", window=0)


def test_has_line_against_the_corpus_lines() -> None:
    full = corpus_text()
    listed = full.split("\n")
    lines = set(listed)
    index = index_of(full)
    assert index.has_line(listed[0])  # the first line
    assert index.has_line(full.rstrip("\n").rsplit("\n", 1)[-1])  # and the last
    part = next(x[:24] for x in listed if len(x) > 40 and x[:24] not in lines)
    assert part in full and part not in lines and not index.has_line(part)  # a longer line's start
    rng = np.random.default_rng(0)
    picks = [listed[i] for i in rng.integers(0, len(listed), 200)]
    for line in picks + [p[:-1] for p in picks] + [p[1:] for p in picks]:
        assert index.has_line(line) == (line in lines), line
    assert not index.has_line(listed[0] + "\n" + listed[1])


def test_has_line_at_corpus_start_end_and_crlf() -> None:
    index = CorpusIndex.build("첫 줄 🙂\nmiddle line\nlast line".encode())
    assert (
        index.has_line("첫 줄 🙂") and index.has_line("middle line") and index.has_line("last line")
    )
    assert not any(index.has_line(x) for x in ("첫 줄", "line", "last", "middle", ""))
    crlf = CorpusIndex.build(b"one\r\ntwo\r\n\r\nthree")
    assert crlf.has_line("one") and crlf.has_line("one\r") and crlf.has_line("")
    assert crlf.has_line("three") and not crlf.has_line("on") and not crlf.has_line("ne")


def test_build_rejects_bytes_that_are_not_utf8() -> None:
    with pytest.raises(InputError, match="not valid UTF-8"):
        CorpusIndex.build(b"abc\xff\xfe")
    assert CorpusIndex.build(b"").longest_copy("abc") == (0, "")


def prepared(name: str, text: str) -> Path:
    from charrnn.data.prep import prep

    src = Path(f"{name}.txt")
    src.write_text(text, encoding="utf-8")
    prep([str(src)], Path(name))
    return Path(name).resolve()


def test_dataset_index_is_cached_and_decodes_every_split() -> None:
    for name, text in (("ascii", SMALL), ("wide", WIDE)):
        ds = prepared(name, text)
        first = CorpusIndex.for_dataset(ds)
        assert first.data == text.encode() and not first.from_cache
        assert first.cache_path is not None and first.cache_path.parent == ds
        again = CorpusIndex.for_dataset(ds)
        assert again.from_cache and again.cache_path == first.cache_path
        assert np.array_equal(again.suffix_array, first.suffix_array)
        assert again.novelty(text[-60:]) == Novelty(60, text[-60:], 0.0)  # the test split counts


@pytest.mark.parametrize("damage", ["garbage", "truncated", "wrong_shape", "shuffled", "pickle"])
def test_a_damaged_cache_is_rebuilt(damage: str) -> None:
    ds = prepared("ds", SMALL)
    cache = CorpusIndex.for_dataset(ds).cache_path
    assert cache is not None
    good = np.load(cache)
    if damage == "garbage":
        cache.write_bytes(os.urandom(1000))
    elif damage == "truncated":
        cache.write_bytes(cache.read_bytes()[:5000])
    elif damage == "wrong_shape":
        np.save(cache, good[:-1])
    elif damage == "shuffled":  # a permutation in range, but not sorted
        np.save(cache, np.random.default_rng(0).permutation(good))
    else:
        np.save(cache, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    rebuilt = CorpusIndex.for_dataset(ds)
    assert not rebuilt.from_cache and np.array_equal(rebuilt.suffix_array, good)
    assert CorpusIndex.for_dataset(ds).from_cache  # and the file was repaired


def test_another_texts_array_is_not_trusted() -> None:
    a, b = prepared("a", SMALL), prepared("b", SMALL[::-1])
    cache_a, cache_b = (CorpusIndex.for_dataset(d).cache_path for d in (a, b))
    assert cache_a is not None and cache_b is not None and cache_a.name != cache_b.name
    shutil.copy(cache_a, b / cache_b.name)  # same length, other text
    assert not CorpusIndex.for_dataset(b).from_cache


def test_read_only_dataset_falls_back_to_the_user_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    from charrnn.data.dataset import cache_dir

    ds = prepared("ds", SMALL)
    from charrnn import atomic

    temp_path, refused = atomic.temp_path, {ds}
    ds.chmod(0o555)  # root ignores the mode, so refuse writes there as the OS would for a user

    def guarded(target: Path) -> Path:
        if target.parent.resolve() in refused:
            raise PermissionError(13, "Permission denied", str(target.parent))
        return temp_path(target)

    monkeypatch.setattr(atomic, "temp_path", guarded)
    try:
        first = CorpusIndex.for_dataset(ds)
        assert first.cache_path is not None and first.cache_path.parent == cache_dir() / "novelty"
        assert not any(p.suffix == ".npy" for p in ds.iterdir())
        assert CorpusIndex.for_dataset(ds).from_cache
        first.cache_path.unlink()
        refused.add(first.cache_path.parent.resolve())
        memory_only = CorpusIndex.for_dataset(ds)
        assert memory_only.cache_path is None and memory_only.occurs(SMALL[1000:1020])
    finally:
        ds.chmod(0o755)


def test_for_checkpoint_finds_the_recorded_dataset(trained: Path, corpus_file: Path) -> None:
    from charrnn.checkpoint import read_header

    header = read_header(trained)
    index = CorpusIndex.for_checkpoint(header)
    assert str(index.source) == header.meta["corpus"]["path"] and index.matches_checkpoint
    assert index.data == corpus_file.read_bytes()


def test_for_checkpoint_with_corpus_given(trained: Path, corpus_file: Path) -> None:
    from charrnn.checkpoint import read_header

    header = read_header(trained)
    same = CorpusIndex.for_checkpoint(header, str(corpus_file))  # raw text: prepared into the cache
    assert same.matches_checkpoint and same.data == corpus_file.read_bytes()
    Path("other.txt").write_text(WIDE, encoding="utf-8")
    other = CorpusIndex.for_checkpoint(header, "other.txt")
    assert not other.matches_checkpoint and other.occurs("明月")
    with pytest.raises(InputError, match="no such file"):
        CorpusIndex.for_checkpoint(header, "missing.txt")


def test_for_checkpoint_without_its_text_says_how_to_supply_it() -> None:
    from charrnn.checkpoint import read_header
    from charrnn.data.dataset import load_dataset
    from charrnn.data.prep import prep
    from charrnn.model import ModelConfig
    from charrnn.training.config import TrainConfig
    from charrnn.training.loop import Trainer

    ds = prepared("ds", SMALL)
    data = load_dataset(ds)
    model = ModelConfig(vocab_size=data.vocab.size, hidden=8, embed=4)
    cfg = TrainConfig(batch_size=2, seq_len=8, max_steps=2, eval_every=2, eval_chars=64)
    Trainer(data, model, cfg, Path("run")).run()
    header = read_header(Path("run") / "last.ckpt")
    shutil.rmtree(ds)
    with pytest.raises(InputError) as err:
        CorpusIndex.for_checkpoint(header)
    message = str(err.value)
    assert "\n" not in message and str(ds) in message and "--corpus PATH" in message
    Path("ds.txt").write_text(WIDE, encoding="utf-8")
    prep(["ds.txt"], ds)  # the recorded path, now holding other text
    with pytest.raises(InputError, match="other text"):
        CorpusIndex.for_checkpoint(header)
    assert CorpusIndex.for_checkpoint(header, ds).matches_checkpoint is False


def test_importing_novelty_does_not_import_torch() -> None:
    code = "import sys, charrnn.data.corpus_index; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
