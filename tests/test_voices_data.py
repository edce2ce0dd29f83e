"""Labelled corpora (issue 42, item 1): each input form (--tags-from dir, --tags-from file,
--jsonl --tag-key) and each refusal, each voice's own splits and the spans that cover them, the
cache key by tag mode, and unlabelled text prepared exactly as before."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from charrnn.data.dataset import load_dataset, resolve_dataset
from charrnn.data.prep import prep
from charrnn.data.split import split_sizes
from charrnn.data.voices import MIN_VOICE_CHARS, TagOptions, VoiceTable
from charrnn.errors import InputError

# Three made-up alphabets: a character tells whose text it is.
ALPHABETS = {"aa": "abcd", "bb": "wxyz", "cc": "mnop"}


def text_of(voice: str, n: int, seed: int) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice(ALPHABETS[voice]) for _ in range(n))


def write_voices(root: str = "corpus", sizes: dict | None = None) -> dict[str, list[str]]:
    """A folder per voice, documents of several sizes; returns each voice's documents in order."""
    sizes = sizes or {"aa": [300, 500, 600], "bb": [700, 200], "cc": [600]}
    docs: dict[str, list[str]] = {}
    for voice, lengths in sizes.items():
        Path(root, voice).mkdir(parents=True, exist_ok=True)
        docs[voice] = [text_of(voice, n, hash((voice, i)) % 1000) for i, n in enumerate(lengths)]
        for i, doc in enumerate(docs[voice]):
            Path(root, voice, f"{i:02d}.txt").write_text(doc)
    return docs


def voice_text(ds, table: VoiceTable, v: int) -> str:
    """Voice v's text, read back from its part of every split."""
    out = []
    for split in ("train", "val", "test"):
        start, n = table.offsets(split)[v], table.chars(split)[v]
        out.append(ds.vocab.decode(ds.split(split)[start : start + n].tolist()))
    return "".join(out)


def test_tags_from_dir_gives_each_voice_its_own_tail_splits_and_spans() -> None:
    docs = write_voices()
    r = prep(["corpus"], Path("ds"), val_frac=0.2, test_frac=0.1, tags=TagOptions("dir"))
    ds = load_dataset(Path("ds"))
    table = ds.voices
    assert r.meta["version"] == 2 and table is not None and table.mode == "dir"
    assert table.names == ("aa", "bb", "cc")
    for v, name in enumerate(table.names):
        n = sum(map(len, docs[name]))
        want = split_sizes(n, 0.2, 0.1)
        assert [table.chars(s)[v] for s in ("train", "val", "test")] == list(want.values())
        assert voice_text(ds, table, v) == "".join(docs[name])
        counts = dict(zip(ds.vocab.chars, table.counts[v], strict=True))
        assert {c for c, k in counts.items() if k} == set(ALPHABETS[name])
    for split in ("train", "val", "test"):
        spans = table.spans(split)
        assert spans[:, 1].sum() == len(ds.split(split))  # cover the split, in order
        text = ds.vocab.decode(ds.split(split).tolist())
        for start, length, v in spans:
            assert set(text[start : start + length]) <= set(ALPHABETS[table.names[v]])
    # aa: 1,400 chars, train 980: its third document (800..1400) crosses the cut into two spans
    train, val = table.spans("train"), table.spans("val")
    assert train[:3].tolist() == [[0, 300, 0], [300, 500, 0], [800, 180, 0]]
    assert val[0].tolist() == [0, 280, 0] and train[3].tolist() == [980, 630, 1]
    assert set(r.meta["files"]) == {
        *(f"{s}.bin" for s in ("train", "val", "test")),
        *(f"spans-{s}.npy" for s in ("train", "val", "test")),
    }
    # prep may replace its own dataset, spans and all; an edited spans file it refuses
    prep(["corpus"], Path("ds"), val_frac=0.2, test_frac=0.1, tags=TagOptions("dir"))
    np.save("ds/spans-val.npy", np.zeros((1, 3), dtype=np.int64))
    with pytest.raises(InputError, match=r"spans-val\.npy changed since the dataset wrote it"):
        prep(["corpus"], Path("ds"), tags=TagOptions("dir"))


def test_tags_from_file_names_each_voice_by_its_file(cli) -> None:
    for i, name in enumerate(("de", "en.uk", "fr")):
        Path(f"{name}.txt").write_text(text_of(("aa", "bb", "cc")[i], 800, i))
    r = cli("prep", "fr.txt", "de.txt", "en.uk.txt", "--tags-from", "file", "-o", "ds")
    assert r.code == 0, r.err
    assert "voices (file): de 800, en.uk 800, fr 800" in r.err
    table = load_dataset(Path("ds")).voices
    assert table is not None and table.names == ("de", "en.uk", "fr")
    assert table.chars("val") == [80, 80, 80]


def test_jsonl_records_are_documents_of_their_voices(cli) -> None:
    rng = random.Random(3)
    voices = [rng.choice(["aa", "bb"]) for _ in range(200)]
    records = [(v, text_of(v, rng.randint(50, 150), i)) for i, v in enumerate(voices)]
    lines = [json.dumps({"body": t, "who": v, "other": 1}) for v, t in records]
    Path("r.jsonl").write_text("\n".join(lines[:50]) + "\n\n" + "\n".join(lines[50:]) + "\n")
    r = cli("prep", "r.jsonl", "--jsonl", "--text-key", "body", "--tag-key", "who", "-o", "ds")
    assert r.code == 0, r.err
    ds = load_dataset(Path("ds"))
    assert ds.voices is not None and ds.voices.mode == "jsonl"
    for v, name in enumerate(ds.voices.names):
        assert voice_text(ds, ds.voices, v) == "".join(t for w, t in records if w == name)
    # each record its own document: a span per record (those crossing the cut, two)
    assert sum(len(ds.voices.spans(s)) for s in ("train", "val")) == len(records) + 2
    # without --tag-key the records are unlabelled text, in order: version 1, no voices
    assert cli("prep", "r.jsonl", "--jsonl", "--text-key", "body", "-o", "plain").code == 0
    plain = load_dataset(Path("plain"))
    assert plain.voices is None and plain.meta["version"] == 1
    whole = "".join(plain.vocab.decode(plain.split(s).tolist()) for s in ("train", "val"))
    assert whole == "".join(t for _, t in records)


def jsonl(*records: object) -> str:
    return "\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "\n"


GOOD = {"text": "x" * 600, "voice": "aa"}


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        ("loose", ["corpus", "--tags-from", "dir"], "a file beside the voice subfolders"),
        ("small", ["corpus", "--tags-from", "dir"], "voice 'cc' has 100 characters; a voice needs"),
        ("badname", ["corpus", "--tags-from", "dir"], "voice name 'x:y' is not allowed; a voice"),
        ("plain", ["plain.txt", "corpus", "--tags-from", "dir"], "a mix of labelled and unlab"),
        ("plain", ["-", "--tags-from", "file"], "a mix of labelled and unlabelled text"),
        ("notobj", ["r.jsonl", "--jsonl", "--tag-key", "voice"], "r.jsonl: line 2 is not a JSON"),
        ("notext", ["r.jsonl", "--jsonl", "--tag-key", "voice"], "line 2 has no 'text' key"),
        ("nonstr", ["r.jsonl", "--jsonl", "--tag-key", "voice"], "line 2: 'text' is not a str"),
        ("notag", ["r.jsonl", "--jsonl", "--tag-key", "voice"], "line 2 has no 'voice' key"),
        ("tagnum", ["r.jsonl", "--jsonl", "--tag-key", "voice"], "line 2: 'voice' is not a str"),
        ("plain", ["plain.txt", "--tag-key", "voice"], "--text-key and --tag-key read JSON Lines"),
    ],
)
def test_each_refusal_is_one_line(cli, setup: str, args: list[str], message: str) -> None:
    write_voices()
    Path("plain.txt").write_text("unlabelled " * 100)
    if setup == "loose":
        Path("corpus/readme.txt").write_text("which voice am I?")
    elif setup == "small":
        write_voices(sizes={"cc": [100]})
    elif setup == "badname":
        Path("corpus/x:y").mkdir()
        Path("corpus/x:y/a.txt").write_text("m" * MIN_VOICE_CHARS)
    second = {
        "notobj": "[1, 2]",
        "notext": {"body": "x", "voice": "aa"},
        "nonstr": {"text": 5, "voice": "aa"},
        "notag": {"text": "x" * 600},
        "tagnum": {"text": "x", "voice": 7},
    }.get(setup)
    Path("r.jsonl").write_text(jsonl(GOOD, second or GOOD))
    r = cli("prep", *args, "-o", "ds", stdin="some text")
    assert r.code == 2, r.err
    assert message in r.err and len(r.err.strip().splitlines()) == 1, r.err
    if setup == "badname":
        assert "ASCII letters, digits, '_', '-' or '.'" in r.err


def test_the_cache_key_differs_by_tag_mode() -> None:
    write_voices()
    plain, _ = resolve_dataset("corpus")
    by_dir, fresh = resolve_dataset("corpus", tags=TagOptions("dir"))
    by_file, _ = resolve_dataset("corpus", tags=TagOptions("file"))
    assert fresh and len({plain.path, by_dir.path, by_file.path}) == 3
    assert plain.voices is None and by_dir.voices.names == ("aa", "bb", "cc")
    assert by_file.voices.names == ("00", "01", "02")
    again, fresh = resolve_dataset("corpus", tags=TagOptions("dir"))
    assert again.path == by_dir.path and not fresh


def test_unlabelled_text_is_prepared_as_before_and_old_datasets_load() -> None:
    """Version 1, no voices, no spans, the same three files; and a version-1 dataset written
    before voices (meta.json as it was) still loads."""
    Path("t.txt").write_text("plain text, no voices at all. " * 100)
    r = prep(["t.txt"], Path("ds"))
    assert r.meta["version"] == 1 and "voices" not in r.meta
    assert sorted(p.name for p in Path("ds").iterdir()) == [
        "meta.json",
        "test.bin",
        "train.bin",
        "val.bin",
    ]
    assert sorted(r.meta["files"]) == ["test.bin", "train.bin", "val.bin"]
    ds = load_dataset(Path("ds"))
    assert ds.voices is None and len(ds.split("train")) == r.meta["splits"]["train"]
    with pytest.raises(InputError, match="a prepared dataset keeps its own voices"):
        resolve_dataset("ds", tags=TagOptions("dir"))
