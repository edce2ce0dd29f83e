"""A user's files are never deleted: export --overwrite and prep -o replace only their own, unedited
files; a replacement killed between its two steps leaves the path whole or restorable (and the next
run restores it, saying so); `-o .`, `..` and `x/..` are resolved first."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from charrnn import atomic
from tests.conftest import CLI


def one_line(err: str) -> bool:
    return len(err.strip().splitlines()) == 1


def test_export_overwrite_keeps_files_the_export_did_not_write(cli, trained: Path) -> None:
    assert cli("export", trained, "-o", "site", "--no-eval").code == 0
    Path("site/notes.txt").write_text("launch on Monday")
    Path("site/images").mkdir()
    Path("site/images/logo.png").write_bytes(b"\x89PNG")
    r = cli("export", trained, "-o", "site", "--no-eval", "--overwrite")
    assert r.code == 2 and one_line(r.err)
    assert "site: images is not the export's own" in r.err
    Path("site/images/logo.png").unlink()
    Path("site/images").rmdir()
    r = cli("export", trained, "-o", "site", "--no-eval", "--overwrite")
    assert r.code == 2 and "site: notes.txt is not the export's own" in r.err and one_line(r.err)
    assert Path("site/notes.txt").read_text() == "launch on Monday"
    Path("site/notes.txt").unlink()
    assert cli("export", trained, "-o", "site", "--no-eval", "--overwrite").code == 0
    assert not [p for p in Path().iterdir() if p.name.startswith(".site")]


def test_export_overwrite_keeps_an_edited_file(cli, trained: Path) -> None:
    assert cli("export", trained, "-o", "site", "--no-eval").code == 0
    record = json.loads(Path("site/export.json").read_text())
    assert set(record["sha256"]) == set(record["files"]) and "index.html" in record["files"]
    page = Path("site/index.html")
    page.write_text(page.read_text().replace("<title>", "<title>My page: "))
    edited = page.read_bytes()
    r = cli("export", trained, "-o", "site", "--no-eval", "--overwrite")
    assert r.code == 2 and one_line(r.err)
    assert "site: index.html changed since the export wrote it" in r.err
    assert page.read_bytes() == edited


def test_single_file_page_is_replaced_only_unedited(cli, trained: Path) -> None:
    args = ("export", trained, "--single-file", "-o", "one.html", "--no-eval")
    assert cli(*args).code == 0
    assert cli(*args, "--overwrite").code == 0
    page = Path("one.html")
    page.write_text(page.read_text().replace("</body>", "<p>my notes</p></body>"))
    r = cli(*args, "--overwrite")
    assert r.code == 2 and "one.html: changed since the export wrote it" in r.err
    assert "my notes" in page.read_text()


@pytest.mark.parametrize("extra", ["notes.txt", "sub/notes.txt"])
def test_prep_keeps_files_the_dataset_did_not_hold(cli, corpus_file: Path, extra: str) -> None:
    assert cli("prep", corpus_file, "-o", "data", "-q").code == 0
    Path("data/suffix_array.v1.0123456789abcdef.npy").write_bytes(b"cache")  # novelty's own
    assert cli("prep", corpus_file, "-o", "data", "-q").code == 0  # its own files: replaced
    mine = Path("data", extra)
    mine.parent.mkdir(exist_ok=True)
    mine.write_text("where this text came from")
    r = cli("prep", corpus_file, "-o", "data", "-q")
    assert r.code == 2 and one_line(r.err)
    assert f"data: {extra.split('/')[0]} is not the dataset's own" in r.err
    assert mine.read_text() == "where this text came from"


def test_prep_keeps_an_edited_split(cli, corpus_file: Path) -> None:
    assert cli("prep", corpus_file, "-o", "data", "-q").code == 0
    meta = json.loads(Path("data/meta.json").read_text())
    assert set(meta["files"]) == {"train.bin", "val.bin", "test.bin"}
    with Path("data/val.bin").open("r+b") as f:
        f.write(b"\0")
    r = cli("prep", corpus_file, "-o", "data", "-q")
    assert r.code == 2 and "data: val.bin changed since the dataset wrote it" in r.err
    assert one_line(r.err)


def test_export_dot_paths_are_resolved_first(
    cli, trained: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Path("here").mkdir()
    monkeypatch.chdir("here")
    for out in (".", ".."):
        r = cli("export", trained, "-o", out, "--no-eval")
        assert r.code == 2 and one_line(r.err), r.err
        assert f"{out}: is the current folder or holds it" in r.err
    assert list(Path().iterdir()) == []
    r = cli("export", trained, "-o", "x/..", "--no-eval")
    assert r.code == 2 and "is the current folder or holds it" in r.err
    r = cli("export", trained, "-o", "out/x/..", "--no-eval", "--json")
    assert r.code == 0, r.err
    out = Path("out").resolve()
    assert json.loads(r.out)["path"] == str(out) and (out / "index.html").is_file()
    assert sorted(p.name for p in Path().iterdir()) == ["out"]  # no temporary name left here
    r = cli("export", trained, "-o", "out/x/..", "--no-eval")
    assert r.code == 2 and f"{out}: holds an earlier export" in r.err


def test_a_name_that_fills_a_file_name_exports_and_is_replaced(cli, trained: Path) -> None:
    """A 255-byte folder name (the most a file name holds) still gets its temporary and aside
    names beside it: once an internal error, "File name too long"."""
    out = "é" * 127 + "x"  # 255 bytes in UTF-8
    assert len(out.encode()) == 255
    r = cli("export", trained, "-o", out, "--no-eval")
    assert r.code == 0, r.err
    r = cli("export", trained, "-o", out, "--no-eval", "--overwrite")
    assert r.code == 0, r.err
    assert sorted(p.name for p in Path().iterdir()) == [out]
    assert (Path(out) / "index.html").is_file()
    assert len(atomic.temp_path(Path(out)).name.encode()) <= atomic.NAME_MAX


def _wait_for(ready: Callable[[], bool], proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while not ready():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the replacement never reached its pause"
        time.sleep(0.05)


def _killed_between_steps(args: list[str], hook: str, ready: Callable[[int], bool]) -> int:
    """Run `charrnn ARGS` with the swap's test hook, SIGKILL it at the pause; its pid."""
    env = {**os.environ, atomic.TEST_HOOK: hook}
    proc = subprocess.Popen([*CLI, *args], env=env, stderr=subprocess.PIPE)
    _wait_for(lambda: ready(proc.pid), proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return proc.pid


def test_killed_fallback_export_is_restored_by_the_next(cli, trained: Path) -> None:
    assert cli("export", trained, "-o", "site", "--no-eval").code == 0
    before = {p.name: p.read_bytes() for p in Path("site").iterdir()}
    args = ["export", str(trained), "-o", "site", "--no-eval", "--overwrite", "--dtype", "f32"]
    pid = _killed_between_steps(args, "fallback-pause", lambda pid: not Path("site").exists())
    aside = Path(f".site.{pid}.old")
    assert {p.name: p.read_bytes() for p in aside.iterdir()} == before  # the window, whole
    r = cli("export", trained, "-o", "site", "--no-eval")  # refused, but restored first
    assert r.code == 2 and "holds an earlier export" in r.err
    assert {p.name: p.read_bytes() for p in Path("site").iterdir()} == before
    assert not aside.exists()


def test_killed_fallback_prep_is_restored_and_said(cli, corpus_file: Path) -> None:
    assert cli("prep", corpus_file, "-o", "data", "-q").code == 0
    args = ["prep", str(corpus_file), "-o", "data", "-q", "--val-frac", "0.2"]
    pid = _killed_between_steps(args, "fallback-pause", lambda pid: not Path("data").exists())
    assert Path(f".data.{pid}.old/meta.json").is_file()
    r = cli("prep", corpus_file, "-o", "data")
    assert r.code == 0, r.err
    assert f"warning: data: restored from .data.{pid}.old" in r.err
    assert json.loads(Path("data/meta.json").read_text())["val_frac"] == 0.1
    assert not [p for p in Path().iterdir() if p.name.startswith(".data")]


def _exchange_works() -> bool:
    for name in ("probe/a", "probe/b"):
        Path(name).mkdir(parents=True)
    return atomic._exchange(Path("probe/a"), Path("probe/b"))


def test_killed_exchange_never_leaves_the_path_missing(cli, trained: Path) -> None:
    if not _exchange_works():
        pytest.skip("renameat2(RENAME_EXCHANGE) is not available on this system or filesystem")
    assert cli("export", trained, "-o", "site", "--no-eval").code == 0
    args = ["export", str(trained), "-o", "site", "--no-eval", "--overwrite", "--dtype", "f32"]

    def swapped(pid: int) -> bool:  # the old export now lies under the temporary name
        try:
            return json.loads(Path(f".site.{pid}.tmp/export.json").read_text())["dtype"] == "int8"
        except (OSError, ValueError):  # not there yet, or still being written
            return False

    pid = _killed_between_steps(args, "pause", swapped)
    assert json.loads(Path("site/export.json").read_text())["dtype"] == "f32"  # whole and new
    r = cli("export", trained, "-o", "site", "--no-eval", "--overwrite", "--dtype", "f32")
    assert r.code == 0, r.err
    assert not Path(f".site.{pid}.tmp").exists()


@pytest.mark.parametrize(
    ("name", "content", "why"),
    [
        ("last.ckpt", b"a Lightning checkpoint", "not a charrnn checkpoint"),
        ("metrics.jsonl", b"my notes\n", "not a charrnn metrics log"),
    ],
)
def test_train_overwrite_replaces_only_a_runs_own_files(
    cli, name: str, content: bytes, why: str
) -> None:
    Path("text.txt").write_text("the quick brown fox jumps over the lazy dog\n" * 200)
    Path("out").mkdir()
    Path("out", name).write_bytes(content)
    tiny = ["--hidden", "8", "--embed", "4", "--batch-size", "2", "--seq-len", "8"]
    r = cli("train", "text.txt", *tiny, "--max-steps", "1", "--out", "out", "--overwrite", "-q")
    assert r.code == 2 and one_line(r.err), r.err
    assert f"out/{name}: {why}" in r.err
    assert Path("out", name).read_bytes() == content


def test_viz_replaces_only_its_own_unedited_page(cli, trained: Path) -> None:
    Path("text.txt").write_text("def f(x):\n    return x\n" * 20)
    Path("notes.html").write_text("<p>mine</p>")
    r = cli("viz", trained, "text.txt", "-o", "notes.html")
    assert r.code == 2 and "notes.html: is not a page the viz wrote" in r.err and one_line(r.err)
    assert Path("notes.html").read_text() == "<p>mine</p>"
    assert cli("viz", trained, "text.txt").code == 0
    assert cli("viz", trained, "text.txt").code == 0  # its own page, unedited: replaced
    page = Path("viz.html")
    page.write_text(page.read_text(encoding="utf-8") + "<!-- mine -->", encoding="utf-8")
    r = cli("viz", trained, "text.txt")
    assert r.code == 2 and "viz.html: changed since the viz wrote it" in r.err
    assert page.read_text(encoding="utf-8").endswith("<!-- mine -->")


def test_lstmvis_replaces_only_its_own_unedited_files(cli, trained: Path) -> None:
    pytest.importorskip("h5py")
    Path("text.txt").write_text("def f(x):\n    return x\n" * 20)
    Path("proj").mkdir()
    Path("proj/lstm.yml").write_text("name: my own project\n")
    r = cli("viz", trained, "text.txt", "--lstmvis", "proj")
    assert r.code == 2 and "lstm.yml is not the LSTMVis export's own" in r.err and one_line(r.err)
    assert Path("proj/lstm.yml").read_text() == "name: my own project\n"
    Path("proj/lstm.yml").unlink()
    assert cli("viz", trained, "text.txt", "--lstmvis", "proj").code == 0
    assert cli("viz", trained, "text.txt", "--lstmvis", "proj").code == 0
    with Path("proj/train.dict").open("a") as f:
        f.write("mine\n")
    r = cli("viz", trained, "text.txt", "--lstmvis", "proj")
    assert r.code == 2 and "train.dict changed since the LSTMVis export wrote it" in r.err
