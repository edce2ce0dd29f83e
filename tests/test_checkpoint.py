"""The checkpoint file: round trip, atomic writes, header-only reads, and hostile files refused."""

from __future__ import annotations

import json
import os
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from charrnn import checkpoint
from charrnn.errors import CharRNNError, InputError
from charrnn.model import load_model


def craft(header: dict, data: bytes = b"") -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def real_header(path: Path) -> tuple[dict, bytes]:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


def test_header_read_matches_and_needs_no_torch(trained: Path, corpus_file: Path) -> None:
    h = checkpoint.read_header(trained)
    assert h.format_version == checkpoint.UNVOICED_FORMAT  # an earlier charrnn reads it
    chars = sorted(set(corpus_file.read_text(encoding="utf-8")))  # the text it was trained on
    assert h.meta["model"]["hidden"] == 96 and h.meta["vocab"] == chars
    model = load_model(h)
    assert model.head.weight.shape == (len(chars), 96)
    code = (
        "import sys, charrnn.checkpoint as c; h = c.read_header(sys.argv[1]); "
        "c.summarize(h); assert 'torch' not in sys.modules and 'numpy' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code, str(trained)], check=True)


def test_save_is_atomic_when_the_disk_fills(trained: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = Path("last.ckpt")
    target.write_bytes(trained.read_bytes())
    before = target.read_bytes()
    import safetensors.torch

    def full_disk(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", full_disk)
    with pytest.raises(CharRNNError, match="No space left on device; the previous file is intact"):
        checkpoint.save(target, {"x": torch.zeros(3)}, {"k": 1})
    assert target.read_bytes() == before
    assert sorted(os.listdir(".")) == ["last.ckpt"]


def test_hostile_and_broken_files_are_refused(trained: Path) -> None:
    good_header, data = real_header(trained)
    meta = good_header["__metadata__"]

    class Boom:
        def __reduce__(self):
            return (os.system, ("touch pwned",))

    cases = {
        "pickle.ckpt": pickle.dumps(Boom()),
        "torchsave.ckpt": None,
        "empty.ckpt": b"",
        "truncated.ckpt": trained.read_bytes()[: trained.stat().st_size // 2],
        "notjson.ckpt": struct.pack("<Q", 5) + b"{nope" + b"\0" * 10,
        "huge_len.ckpt": struct.pack("<Q", 2**62) + b"{}",
        "past_end.ckpt": craft(
            {
                "__metadata__": meta,
                "w": {"dtype": "F32", "shape": [10**9], "data_offsets": [0, 4 * 10**9]},
            }
        ),
        "bad_shape.ckpt": craft(
            {"__metadata__": meta, "w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 4]}},
            b"\0" * 4,
        ),
        "newer.ckpt": craft(
            {**good_header, "__metadata__": {**meta, "charrnn.format": "99"}}, data
        ),
        "no_format.ckpt": craft({"__metadata__": {}}),
        "missing_field.ckpt": craft(
            {**good_header, "__metadata__": {k: v for k, v in meta.items() if k != "vocab"}}, data
        ),
        "wrong_type.ckpt": craft(
            {**good_header, "__metadata__": {**meta, "state": "[1, 2]"}}, data
        ),
    }
    torch.save({"w": torch.zeros(2)}, "torchsave.ckpt")
    for name, raw in cases.items():
        if raw is not None:
            Path(name).write_bytes(raw)
        with pytest.raises(InputError) as e:
            checkpoint.read_header(name)
        assert name in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(InputError, match="newer than this charrnn"):
        checkpoint.read_header("newer.ckpt")
    assert not Path("pwned").exists()


def test_tensors_that_disagree_with_config_are_refused(trained: Path) -> None:
    header, data = real_header(trained)
    model = json.loads(header["__metadata__"]["model"])
    for change in ({"hidden": 97}, {"hidden": 10**7, "layers": 10**3}, {"cell": "gru"}):
        meta = {**header["__metadata__"], "model": json.dumps({**model, **change})}
        Path("lie.ckpt").write_bytes(craft({**header, "__metadata__": meta}, data))
        h = checkpoint.read_header("lie.ckpt")
        with pytest.raises(InputError, match="disagree"):
            load_model(h)
    meta = {**header["__metadata__"], "model": json.dumps({**model, "surprise": 1})}
    Path("extra.ckpt").write_bytes(craft({**header, "__metadata__": meta}, data))
    with pytest.raises(InputError, match="unknown fields"):
        load_model(checkpoint.read_header("extra.ckpt"))


def test_expected_shapes_match_the_module() -> None:
    from charrnn.model import CharRNN, ModelConfig, expected_shapes

    for cell in ("lstm", "gru", "rnn"):
        cfg = ModelConfig(vocab_size=11, cell=cell, layers=3, hidden=7, embed=5)
        actual = {k: tuple(v.shape) for k, v in CharRNN(cfg).state_dict().items()}
        assert expected_shapes(cfg) == actual
