"""Fine-tuning with voices (issue 42, item 6): `--init-from` on labelled text adds the text's new
voices as new characters are added, keeps the source's, and a source without voices gains them
while computing at first exactly what it did; the refusals; and the fine-tuned run's resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from charrnn import checkpoint
from charrnn.data.dataset import load_dataset
from charrnn.data.prep import prep
from charrnn.data.voices import TagOptions
from charrnn.model import CharRNN, ModelConfig
from charrnn.training.finetune_voices import merge_table, transplant_voices
from charrnn.vocab import Vocab

from .conftest import TINY
from .test_voices_data import ALPHABETS, write_voices

BIG = ["--hidden", "48", "--embed", "8", "--batch-size", "16", "--seq-len", "32"]


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_source_without_voices_gains_them_and_computes_what_it_did(cell: str) -> None:
    torch.manual_seed(0)
    plain = CharRNN(ModelConfig(vocab_size=9, cell=cell, hidden=12, embed=5, dropout=0.0)).eval()
    tensors = transplant_voices(plain.state_dict(), [], ["aa", "bb"], 4, seed=3)
    voiced = CharRNN(
        ModelConfig(vocab_size=9, cell=cell, hidden=12, embed=5, dropout=0.0, voices=2, voice_dim=4)
    ).eval()
    voiced.load_state_dict(tensors)
    x = torch.randint(0, 9, (3, 20))
    with torch.no_grad():
        want = plain(x)[0]
        for v in (0, 1, 2):
            got = voiced(x, None, torch.full_like(x, v))[0]
            torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    assert tensors["voice.weight"].shape == (3, 4) and tensors["voice.weight"].std() > 0.5


def test_a_voiced_source_keeps_its_rows_by_name_and_new_voices_start_at_no_voice() -> None:
    emb = torch.arange(12.0).reshape(3, 4)  # rows: a, c, no voice
    out = transplant_voices({"voice.weight": emb}, ["a", "c"], ["a", "b", "c", "d"], 4, seed=0)
    rows = out["voice.weight"]
    assert rows.shape == (5, 4)
    for got, want in zip(rows, [emb[0], emb[2], emb[1], emb[2], emb[2]], strict=True):
        assert torch.equal(got, want)


def alphabet_share(text: str, voice: str) -> float:
    letters = [c for c in text if not c.isspace()]
    return sum(c in ALPHABETS[voice] for c in letters) / max(1, len(letters))


def test_fine_tuning_adds_the_texts_new_voice_and_keeps_the_old(cli) -> None:
    write_voices("first", {"aa": [3000], "bb": [3000]})
    r = cli(
        "train",
        "first",
        "--tags-from",
        "dir",
        "--val-frac",
        "0.1",
        *BIG,
        "--max-steps",
        "60",
        "-o",
        "src",
    )
    assert r.code == 0, r.err
    src = checkpoint.read_header("src/last.ckpt").meta
    # the second text: bb again, and cc, a new voice with new characters
    write_voices("second", {"bb": [3000], "cc": [3000]})
    ft = [
        "train",
        "second",
        "--tags-from",
        "dir",
        "--val-frac",
        "0.1",
        "--init-from",
        "src/last.ckpt",
        *BIG,
    ]
    r = cli(*ft, "--max-steps", "150", "--eval-every", "50", "--lr", "0.01", "-o", "ft")
    assert r.code == 0, r.err
    assert "1 new voice joins the model (3 in all): cc" in r.err
    assert "4 new characters join the vocabulary" in r.err  # m n o p
    meta = checkpoint.read_header("ft/last.ckpt").meta
    voices = meta["voices"]
    assert meta["model"]["voices"] == 3 and meta["model"]["voice_dim"] == 16
    assert voices["names"] == ["aa", "bb", "cc"]
    assert meta["init_from"]["new_voices"] == ["cc"]
    # aa's sizes come with it from the source; bb's and cc's are this text's
    old = src["voices"]["chars"]
    assert [voices["chars"][s][0] for s in old] == [old[s][0] for s in old]
    assert voices["chars"]["train"][1:] == [2700, 2700]
    assert sorted(voices["val"]) == ["bb", "cc"]  # only the text's voices are evaluated
    counts = dict(zip(meta["vocab"], voices["counts"][0], strict=True))
    assert {c for c, k in counts.items() if k} == set(ALPHABETS["aa"])
    assert len(meta["history"]["val_voices"][-1]) == 4  # step, aa (None), bb, cc
    # the new voice writes its own alphabet, unprimed
    out = cli("sample", "ft/last.ckpt", "--tag", "cc", "-n", "300", "--rng-seed", "1")
    assert out.code == 0, out.err
    assert alphabet_share(out.out, "cc") > 0.9, out.out
    assert cli("sample", "ft/last.ckpt", "--tag", "aa", "-n", "20").code == 0
    # the fine-tuned run resumes on its text, its three voices kept
    r = cli(*ft[:6], "--resume", "ft/last.ckpt", "--max-steps", "152")
    assert r.code == 0, r.err
    after = checkpoint.read_header("ft/last.ckpt").meta
    assert after["state"]["step"] == 152 and after["voices"]["names"] == ["aa", "bb", "cc"]
    assert after["voices"]["chars"] == voices["chars"]


def test_a_source_without_voices_is_conditioned_on_the_texts(cli) -> None:
    write_voices("plain", {"aa": [1500], "bb": [1500]})
    Path("plain.txt").write_text(Path("plain/aa/00.txt").read_text() * 2)
    assert cli("train", "plain.txt", *TINY, "--max-steps", "4", "-o", "src").code == 0
    args = ["train", "plain", "--tags-from", "dir", "--init-from", "src/last.ckpt", *TINY]
    r = cli(*args, "--voice-dim", "6", "--max-steps", "4", "-o", "ft")
    assert r.code == 0, r.err
    assert "2 new voices join the model (2 in all): aa, bb" in r.err
    meta = checkpoint.read_header("ft/last.ckpt").meta
    assert meta["model"]["voices"] == 2 and meta["model"]["voice_dim"] == 6
    assert meta["voices"]["names"] == ["aa", "bb"]
    # --no-condition fine-tunes the plain model on the labelled text, balanced, still plain
    r = cli(*args, "--no-condition", "--max-steps", "4", "-o", "base")
    assert r.code == 0, r.err
    base = checkpoint.read_header("base/last.ckpt").meta
    assert "voices" not in base["model"] and base["train"]["voices_off"]["names"] == ["aa", "bb"]


def test_what_cannot_fine_tune_a_voiced_model_is_one_line(cli) -> None:
    write_voices("first", {"aa": [1500], "bb": [1500]})
    r = cli("train", "first", "--tags-from", "dir", *TINY, "--max-steps", "2", "-o", "src")
    assert r.code == 0, r.err
    Path("plain.txt").write_text("abcd wxyz " * 300)
    base = ["train", "--init-from", "src/last.ckpt", "--max-steps", "2", *TINY]
    cases = [
        (["plain.txt"], "src/last.ckpt: its model has voices (aa, bb); label the text"),
        (["first", "--tags-from", "dir", "--no-condition"], "--no-condition: src/last.ckpt's"),
        (["first", "--tags-from", "dir", "--voice-dim", "8"], "--voice-dim cannot change with"),
    ]
    for extra, message in cases:
        r = cli(*base[:1], *extra, *base[1:])
        assert r.code == 2 and message in r.err and "Traceback" not in r.err, r.err
        assert [x for x in r.err.splitlines() if "error" in x] == [r.err.splitlines()[-1]]


def test_merged_voices_map_spans_to_model_ids_and_keep_the_records_figures() -> None:
    write_voices("corpus", {"bb": [800], "cc": [900]})
    prep(["corpus"], Path("ds"), val_frac=0.2, tags=TagOptions("dir"))
    ds = load_dataset(Path("ds"))
    text = ds.voices
    vocab = Vocab(tuple(sorted(set(ds.vocab.chars) | {"q"})))
    record = {
        "names": ["aa", "bb", "dd"],
        "counts": [[1] * (vocab.size - 1), [2] * vocab.size, "junk"],
        "chars": {"train": [70, 80, 90], "val": [7, 8, "x"], "test": [0, 0]},
    }
    names = ["aa", "bb", "cc", "dd"]
    merged = merge_table(text, names, ds.vocab, vocab, record, list(vocab.chars))
    assert merged.names == tuple(names) and merged.chars("train") == [0, 640, 720, 0]
    assert merged.recorded_chars("train") == [70, 640, 720, 90]
    assert merged.recorded_chars("val") == [7, 160, 180, 0]  # what is not a count is 0
    assert merged.counts[0] == (0,) * vocab.size and merged.counts[3] == (0,) * vocab.size
    own = dict(zip(ds.vocab.chars, text.counts[0], strict=True))
    assert merged.counts[1] == tuple(own.get(c, 0) for c in vocab.chars)
    spans = merged.spans("train")
    assert set(spans[:, 2].tolist()) == {1, 2}
    assert (spans[:, :2] == text.spans("train")[:, :2]).all()
