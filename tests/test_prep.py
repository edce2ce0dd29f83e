"""prep and data: splits, dtypes, Unicode, invalid UTF-8, directories, stdin, caching, batching."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from charrnn.data.dataset import RELEASE_EVERY, load_dataset, resolve_dataset
from charrnn.data.prep import decode_chunks, id_dtype, prep
from charrnn.errors import InputError
from charrnn.training.batches import StreamBatcher, fit_batch

from .conftest import corpus_text


def decoded(ds_dir: Path) -> str:
    ds = load_dataset(ds_dir)
    return "".join(ds.vocab.decode(ds.split(s).tolist()) for s in ("train", "val", "test"))


def test_corpus_splits_and_meta() -> None:
    text = corpus_text()
    Path("c.txt").write_text(text, encoding="utf-8")
    r = prep(["c.txt"], Path("ds"))
    meta = json.loads(Path("ds/meta.json").read_text())
    n, vocab = len(text), sorted(set(text))
    assert meta["chars"] == n and meta["dtype"] == "uint8" and meta["vocab"] == vocab
    n_val = int(n * 0.1)  # the default split: the last tenth, nothing for test
    assert meta["splits"] == {"train": n - n_val, "val": n_val, "test": 0}
    assert meta["sources"][0]["sha256"] == meta["sha256"]
    ds = load_dataset(Path("ds"))
    assert ds.vocab.decode(ds.split("val")[:50].tolist()) == text[n - n_val : n - n_val + 50]
    assert ds.vocab.decode(ds.split("train")[-50:].tolist()) == text[n - n_val - 50 : n - n_val]
    assert r.skipped == ()


def test_unicode_round_trip_and_dtype_choice(tmp_path: Path) -> None:
    text = "中文字符测试，你好世界。\n" * 50 + "emoji 🙂🚀 👩🏽‍💻 e\u0301\r\n"
    Path("u.txt").write_text(text, encoding="utf-8")
    prep(["u.txt"], Path("u"), val_frac=0.2, test_frac=0.1)
    assert decoded(Path("u")) == text
    assert id_dtype(255) == np.uint8 and id_dtype(256) == np.uint8 and id_dtype(257) == np.uint16
    assert id_dtype(70_000) == np.uint32
    big = "".join(chr(c) for c in range(0x4E00, 0x4E00 + 300)) * 3
    Path("big.txt").write_text(big)
    prep(["big.txt"], Path("big"))
    assert load_dataset(Path("big")).meta["dtype"] == "uint16"
    assert decoded(Path("big")) == big


def test_chunk_boundaries_split_multibyte_characters() -> None:
    import io

    text = "ab€😀" * 1000
    raw = text.encode()
    pieces = [t for _, t in decode_chunks(io.BytesIO(raw), "x", "strict", chunk_bytes=7)]
    assert "".join(pieces) == text


def test_invalid_utf8_names_file_and_byte_offset() -> None:
    Path("bad.txt").write_bytes("héllo wörld ".encode() * 3 + b"\xff\xfe tail")
    with pytest.raises(InputError, match=r"bad.txt: not valid UTF-8 at byte 42 .*--errors replace"):
        prep(["bad.txt"], Path("out"))
    assert not Path("out").exists()
    prep(["bad.txt"], Path("out"), errors="replace")
    assert "\ufffd" in decoded(Path("out"))


def test_invalid_utf8_offset_across_chunks() -> None:
    import io

    raw = b"a" * 10 + "é".encode() + b"b" * 5 + b"\xc3"  # truncated sequence at the very end
    with pytest.raises(InputError, match="at byte 17 "):
        list(decode_chunks(io.BytesIO(raw), "x", "strict", chunk_bytes=4))
    # a lead byte at the end of one chunk, a bad continuation at the start of the next
    with pytest.raises(InputError, match="at byte 3 "):
        list(decode_chunks(io.BytesIO(b"aaa\xc3(bbbb"), "x", "strict", chunk_bytes=4))


def test_directories_glob_order_and_binary_skip() -> None:
    for name, body in [
        ("b/two.py", "print(2)\n"),
        ("a/one.py", "print(1)\n"),
        ("a/notes.md", "md\n"),
        (".hidden/x.py", "no\n"),
    ]:
        Path("src", name).parent.mkdir(parents=True, exist_ok=True)
        Path("src", name).write_text(body)
    Path("src/a/blob.py").write_bytes(b"\x00\x01binary")
    r = prep(["src"], Path("ds"), glob="*.py", val_frac=0)
    assert decoded(Path("ds")) == "print(1)\nprint(2)\n"
    assert r.skipped == (str(Path("src/a/blob.py")),)
    with pytest.raises(InputError, match="no files matching"):
        prep(["src"], Path("ds2"), glob="*.rs")


def test_stdin_and_bad_inputs() -> None:
    import io

    prep(["-"], Path("s"), stdin=io.BytesIO(b"from stdin\n"), val_frac=0)
    assert decoded(Path("s")) == "from stdin\n"
    with pytest.raises(InputError, match="no such file"):
        prep(["missing.txt"], Path("x"))
    Path("empty.txt").write_text("")
    with pytest.raises(InputError, match=r"^empty\.txt: no text to train on \(0 characters\)$"):
        prep(["empty.txt"], Path("x"))
    Path("notds").mkdir()
    Path("notds/keep.txt").write_text("mine")
    Path("c.txt").write_text("some text")
    with pytest.raises(InputError, match="not a charrnn dataset"):
        prep(["c.txt"], Path("notds"))
    assert Path("notds/keep.txt").read_text() == "mine"


def test_train_input_is_prepared_once_per_content() -> None:
    Path("c.txt").write_text("hello world\n" * 100)
    ds1, fresh1 = resolve_dataset("c.txt")
    ds2, fresh2 = resolve_dataset("c.txt")
    assert (fresh1, fresh2) == (True, False) and ds1.path == ds2.path
    Path("c.txt").write_text("hello there\n" * 100)
    ds3, fresh3 = resolve_dataset("c.txt")
    assert fresh3 and ds3.path != ds1.path
    _, fresh4 = resolve_dataset("c.txt", val_frac=0.2)
    assert fresh4


def test_stream_batcher_is_contiguous_tbptt() -> None:
    ids = np.arange(1001, dtype=np.uint16)
    b = StreamBatcher(ids, streams=4, seq_len=10)
    assert b.stream_len == 250 and b.steps_per_epoch == 25
    x0, y0 = b.batch(0)
    x1, _ = b.batch(1)
    assert x0[:, 0].tolist() == [0, 250, 500, 750]
    assert (y0 == x0 + 1).all() and (x1[:, 0] == x0[:, -1] + 1).all()
    r1 = StreamBatcher(ids, streams=4, seq_len=10, rank=1, world=2)
    assert r1.batch(3)[0].tolist() == b.batch(3)[0][2:].tolist()


def test_shifted_windows_move_between_epochs_and_stay_in_their_streams() -> None:
    """--shift-windows: epoch 0 is the plain layout; later epochs start every stream at one drawn
    offset within the left-over characters, stay contiguous within the epoch, never read past the
    stream's end, and the same seed draws the same offsets (ranks and resumed runs agree)."""
    shifted = StreamBatcher(np.arange(1081, dtype=np.uint16), 4, 10, shift_seed=7)
    assert shifted.stream_len == 270 and shifted.steps_per_epoch == 27 and shifted.max_shift == 0
    ids = np.arange(1037, dtype=np.uint16)  # streams of 259: 25 windows of 10 and 9 to spare
    plain, shifted = StreamBatcher(ids, 4, 10), StreamBatcher(ids, 4, 10, shift_seed=7)
    assert shifted.max_shift == 9 and shifted.steps_per_epoch == plain.steps_per_epoch == 25
    assert all(np.array_equal(plain.batch(t)[0], shifted.batch(t, 0)[0]) for t in range(25))
    offsets = [shifted.shift(e) for e in range(1, 40)]
    assert len(set(offsets)) > 4 and all(0 <= o <= 9 for o in offsets)
    assert offsets == [StreamBatcher(ids, 4, 10, shift_seed=7).shift(e) for e in range(1, 40)]
    assert offsets != [StreamBatcher(ids, 4, 10, shift_seed=8).shift(e) for e in range(1, 40)]
    assert [plain.shift(e) for e in range(40)] == [0] * 40
    for epoch in (1, 2, 3):
        o = shifted.shift(epoch)
        xs = [shifted.batch(t, epoch) for t in range(25)]
        assert xs[0][0][:, 0].tolist() == [o, 259 + o, 518 + o, 777 + o]
        assert all((b[0][:, 0] == a[0][:, -1] + 1).all() for a, b in itertools.pairwise(xs))
        assert (xs[-1][1][:, -1] < np.array([259, 518, 777, 1036]) + 1).all()


def test_memory_mapped_batches_survive_releasing_their_pages() -> None:
    """Batches read from the memory map stay exact across the periodic unmapping of its pages."""
    (np.arange(400_001) % 251).astype(np.uint8).tofile("ids.bin")
    mapped = np.memmap("ids.bin", dtype=np.uint8, mode="r")
    plain = np.fromfile("ids.bin", dtype=np.uint8)
    a, b = StreamBatcher(mapped, 64, 100), StreamBatcher(plain, 64, 100)
    for t in range(3 * RELEASE_EVERY):
        assert np.array_equal(a.batch(t)[0], b.batch(t)[0])


def test_fit_batch_shrinks_for_tiny_corpora() -> None:
    assert fit_batch(1_000_000, 64, 100) == (64, 100)
    assert fit_batch(25, 64, 100) == (1, 24)
    assert fit_batch(3_000, 64, 100) == (16, 100)
