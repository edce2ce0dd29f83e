"""Numbers read from text accept ASCII digits only, and never reach int()'s 4,300-digit limit: a
logit_bias key, `--device cuda:N`, a checkpoint's format field, a Content-Length header, a half-built
dataset's process id. Each refusal is the caller's own clear message, not a traceback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from charrnn import checkpoint
from charrnn.digits import decimal
from charrnn.errors import InputError
from charrnn.serve.protocol import ApiError, Limits, parse_completion
from tests.test_checkpoint import craft, real_header

ODD = ["²", "①", "٣", "３", "1²", "", "-1", "+1", " 1", "1 ", "1_000", "9" * 5000]


@pytest.mark.parametrize("text", ODD)
def test_decimal_takes_ascii_digits_only(text: str) -> None:
    assert decimal(text) is None


def test_decimal_reads_what_it_takes() -> None:
    assert decimal("0") == 0 and decimal("0042") == 42 and decimal("9" * 18) == 10**18 - 1
    assert decimal("9" * 19) is None and decimal("9" * 19, 19) == 10**19 - 1


@pytest.mark.parametrize("key", ["9" * 4301, "1" * 10, "²", "٣", "３"])
def test_a_logit_bias_key_that_is_no_id_is_a_400(key: str) -> None:
    with pytest.raises(ApiError) as e:
        parse_completion({"prompt": "A", "logit_bias": {key: 1}}, Limits())
    assert e.value.status == 400 and e.value.param == "logit_bias"
    assert len(e.value.message) < 200  # a 4,301-digit key is not repeated back whole


@pytest.mark.parametrize("name", ["cuda:²", "cuda:٣", "cuda:" + "9" * 5000, "cuda:-1"])
def test_an_odd_cuda_index_is_an_unknown_device(name: str) -> None:
    from charrnn.device import resolve_device

    with pytest.raises(InputError, match="unknown device"):
        resolve_device(name)


@pytest.mark.parametrize("version", ["²", "٣", "9" * 5000])
def test_a_crafted_checkpoint_format_field_is_refused(trained: Path, version: str) -> None:
    header, data = real_header(trained)
    meta = {**header["__metadata__"], "charrnn.format": version}
    Path("odd.ckpt").write_bytes(craft({**header, "__metadata__": meta}, data))
    with pytest.raises(InputError, match=r"odd\.ckpt.*no charrnn\.format"):
        checkpoint.read_header("odd.ckpt")


def test_leftovers_sweep_only_ascii_process_ids(tmp_path: Path) -> None:
    from charrnn.atomic import leftovers

    odd = tmp_path / ".ds.².tmp"
    huge = tmp_path / (".ds." + "9" * 200 + ".tmp")
    gone = tmp_path / ".ds.999999999.tmp"  # past any pid_max: that process is gone
    mine = tmp_path / f".ds.{os.getpid()}.tmp"
    for d in (odd, huge, gone, mine):
        d.mkdir()
    leftovers(tmp_path / "ds")
    assert odd.exists() and huge.exists() and mine.exists() and not gone.exists()
