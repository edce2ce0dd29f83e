"""Bad input: every case exits 2 with one short line naming the problem, never a traceback; huge
primes and huge lengths work in bounded memory."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from charrnn import checkpoint

CASES = {
    # corpus problems
    "missing corpus": (["train", "missing.txt"], "missing.txt: no such file"),
    "empty corpus": (["train", "empty.txt"], "empty.txt: no text to train on (0 characters)"),
    "directory without text": (["train", "emptydir"], "no text files"),
    "invalid utf-8": (["prep", "bad.txt"], "not valid UTF-8 at byte 6"),
    "binary file": (["train", "blob.bin"], "not valid UTF-8 at byte 0"),
    # training options out of range
    "layers 0": (["train", "c.txt", "--layers", "0"], "--layers"),
    "negative hidden": (["train", "c.txt", "--hidden", "-5"], "--hidden"),
    "dropout 1": (["train", "c.txt", "--dropout", "1"], "dropout"),
    "batch 0": (["train", "c.txt", "--batch-size", "0"], "--batch-size"),
    "seq-len 0": (["train", "c.txt", "--seq-len", "0"], "--seq-len"),
    "lr 0": (["train", "c.txt", "--lr", "0"], "--lr"),
    "negative lr": (["train", "c.txt", "--lr", "-0.1"], "--lr"),
    "unknown cell": (["train", "c.txt", "--cell", "transformer"], "--cell"),
    "time budget": (["train", "c.txt", "--time-budget", "soon"], "time budget"),
    "out is a file": (["train", "c.txt", "--out", "c.txt"], "is a file"),
    "resume missing": (["train", "c.txt", "--resume", "gone.ckpt"], "no such checkpoint"),
    "resume not a checkpoint": (
        ["train", "c.txt", "--resume", "c.txt"],
        "not a charrnn checkpoint",
    ),
    # sampling options out of range
    "negative temp": (["sample", "CKPT", "--temp", "-1"], "--temp"),
    "top-p 0": (["sample", "CKPT", "--top-p", "0"], "--top-p"),
    "top-p 1.5": (["sample", "CKPT", "--top-p", "1.5"], "--top-p"),
    "negative top-k": (["sample", "CKPT", "--top-k", "-1"], "--top-k"),
    "negative length": (["sample", "CKPT", "--length", "-1"], "--length"),
    "no samples": (["sample", "CKPT", "--num-samples", "0"], "--num-samples"),
    # checkpoint files that are not whole, ours, or honest
    "sample a directory": (["sample", "emptydir"], "is a directory"),
    "sample missing": (["sample", "gone.ckpt"], "no such checkpoint"),
    "sample truncated": (["sample", "truncated.ckpt"], "truncated"),
    "sample newer format": (["sample", "newer.ckpt"], "newer than this charrnn"),
    "sample lying tensors": (["sample", "lying.ckpt"], "disagree"),
    "inspect a directory": (["inspect", "emptydir"], "is a directory"),
    "inspect missing": (["inspect", "gone.ckpt"], "no such checkpoint"),
    "inspect truncated": (["inspect", "truncated.ckpt"], "truncated"),
    "inspect newer format": (["inspect", "newer.ckpt"], "newer than this charrnn"),
    "inspect a text file": (["inspect", "c.txt"], "not a charrnn checkpoint"),
}


@pytest.fixture
def files(trained: Path) -> None:
    Path("c.txt").write_text("a small corpus of text\n" * 20)
    Path("empty.txt").write_text("")
    Path("emptydir").mkdir()
    Path("bad.txt").write_bytes(b"hello \xc3\x28 world")
    Path("blob.bin").write_bytes(bytes(range(128, 256)) * 4)
    raw = trained.read_bytes()
    Path("truncated.ckpt").write_bytes(raw[: len(raw) * 2 // 3])
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])

    def rewrite(name: str, meta: dict) -> None:
        body = json.dumps({**header, "__metadata__": {**header["__metadata__"], **meta}}).encode()
        Path(name).write_bytes(struct.pack("<Q", len(body)) + body + raw[8 + n :])

    rewrite("newer.ckpt", {"charrnn.format": str(checkpoint.FORMAT_VERSION + 1)})
    model = json.loads(header["__metadata__"]["model"])
    rewrite("lying.ckpt", {"model": json.dumps({**model, "hidden": 4096})})


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_exit_2_with_one_line(cli, files, trained: Path, case: str) -> None:
    args, needle = CASES[case]
    r = cli(*[str(trained) if a == "CKPT" else a for a in args])
    assert r.code == 2, (case, r.err)
    assert needle in r.err, (case, r.err)
    assert r.out == "" and "Traceback" not in r.err
    assert len(r.err.strip().splitlines()) == 1, r.err


def test_replace_lets_invalid_utf8_through(cli, files) -> None:
    r = cli("prep", "bad.txt", "--errors", "replace", "-o", "ds")
    assert r.code == 0 and "\ufffd" in json.loads(Path("ds/meta.json").read_text())["vocab"]


@pytest.mark.slow
def test_huge_prime_is_fine(cli, trained: Path) -> None:
    prime = ("the king is dead, long live the king\n" * 3000)[:100_000]
    Path("prime.txt").write_text(prime)
    r = cli("sample", trained, "-s", "-", "-n", "20", "--no-echo", stdin=prime)
    assert r.code == 0 and len(r.out) == 20


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_huge_length_streams_in_constant_memory(trained: Path) -> None:
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "charrnn",
            "sample",
            str(trained),
            "--length",
            "100000000",
            "--rng-seed",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        p.stdout.read(20_000)
        early = _rss_kb(p.pid)
        t = time.monotonic()
        got = len(p.stdout.read(60_000))
        late = _rss_kb(p.pid)
    finally:
        p.kill()
        p.wait()
    assert got == 60_000 and time.monotonic() - t < 60
    assert late - early < 8_000, (early, late)  # kB: no growth with output length
