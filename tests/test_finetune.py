"""Fine-tuning (`train NEW --init-from CKPT`): the vocabulary merge, the rows that move intact, new
characters that train and sample, the record `inspect` shows, and what is refused."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from charrnn import checkpoint
from charrnn.training.finetune import merge_vocab, start_from
from charrnn.training.plan import FINETUNE_DEFAULTS
from charrnn.vocab import Vocab
from tests.conftest import TINY, corpus_text

# French (the project's own words): the source model, trained on ASCII, has never seen its accents
# or '«»'.
NEW_TEXT = "« Sous le vieux chêne, dit-il, ému, la forêt connaît mon cœur : ça va. »\n"
ACCENTED = {"«", "»", "ê", "é", "î", "œ", "ç"}


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny LSTM trained on the built-in corpus (ASCII: no accented letters)."""
    from charrnn.data.dataset import load_dataset
    from charrnn.data.prep import prep
    from charrnn.model import ModelConfig
    from charrnn.training.config import TrainConfig
    from charrnn.training.loop import Trainer

    base = tmp_path_factory.mktemp("source")
    (base / "en.txt").write_text(corpus_text(40_000), encoding="utf-8")
    prep([str(base / "en.txt")], base / "ds")
    ds = load_dataset(base / "ds")
    model = ModelConfig(vocab_size=ds.vocab.size, hidden=48, embed=16)
    cfg = TrainConfig(batch_size=8, seq_len=32, max_steps=60, eval_every=30, warmup=10)
    Trainer(ds, model, cfg, base / "run").run()
    return base / "run" / "best.ckpt"


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_the_regularised_forward_is_the_fused_one_when_nothing_is_dropped(cell: str) -> None:
    """Weight-drop and locked dropout call the same kernel (one layer at a time for locked
    dropout): with nothing dropped they compute what nn.LSTM / nn.GRU / nn.RNN computes."""
    from charrnn.model import CharRNN, ModelConfig

    torch.manual_seed(0)
    for locked in (False, True):
        cfg = ModelConfig(vocab_size=9, cell=cell, layers=3, hidden=16, embed=8, dropout=0.0)
        model = CharRNN(replace(cfg, locked_dropout=locked, weight_drop=0.0)).train()
        x = model.embed(torch.randint(0, 9, (4, 7)))
        state = model.init_state(4)
        out, final = model._regularised(x, state)
        ref, ref_final = model.rnn(x, state)
        assert torch.allclose(out, ref, atol=1e-6)
        pairs = zip(final, ref_final, strict=True) if cell == "lstm" else [(final, ref_final)]
        assert all(torch.allclose(a, b, atol=1e-6) for a, b in pairs)


def test_merge_keeps_code_point_order_and_lists_only_new_characters() -> None:
    old = Vocab(("\n", " ", "a", "z"), (5, 9, 4, 1))
    merged, new = merge_vocab(old, Vocab.from_text("zéa é\n»"))
    assert merged.chars == ("\n", " ", "a", "z", "»", "é")
    assert new == ["»", "é"]  # in code point order
    assert merged.counts == (1, 1, 1, 1, 1, 2)  # the new text's counts; 0 where it lacks one


def test_old_rows_move_intact_and_new_rows_are_sensible(source: Path) -> None:
    header = checkpoint.read_header(source)
    old = Vocab.from_json(header.meta["vocab"], header.meta["vocab_counts"])
    prefix = checkpoint.sampling_prefix(header)
    before = {
        k.removeprefix(prefix): v
        for k, v in checkpoint.load_tensors(header).items()
        if k.startswith(prefix)
    }
    start = start_from(header, Vocab.from_text(NEW_TEXT), seed=3)
    assert set(start.new_chars) == ACCENTED and start.new_chars == sorted(start.new_chars)
    after, merged = start.tensors, start.vocab
    assert list(merged.chars) == sorted(merged.chars) and merged.size == old.size + len(ACCENTED)
    for i, ch in enumerate(old.chars):
        j = merged.index(ch)
        for key in ("embed.weight", "head.weight", "head.bias"):
            assert torch.equal(after[key][j], before[key][i]), (ch, key)
    for key, value in before.items():  # everything else is copied as it was
        if key not in ("embed.weight", "head.weight", "head.bias"):
            assert torch.equal(after[key], value)
    new = torch.tensor([merged.index(c) for c in start.new_chars])
    emb = before["embed.weight"]
    assert torch.isfinite(after["embed.weight"][new]).all()
    assert (after["embed.weight"][new].std(0) < 4 * emb.std(0)).all()  # not outliers
    assert torch.count_nonzero(after["head.weight"][new]) == 0
    b = after["head.bias"][new]
    assert torch.isfinite(b).all() and (b <= before["head.bias"].max()).all()
    assert start.record["new_chars"] == start.new_chars
    assert start.record["sha256"] == checkpoint.fingerprint(source)


def test_new_characters_train_and_sample(cli, source: Path) -> None:
    Path("fr.txt").write_text(NEW_TEXT * 60, encoding="utf-8")
    r = cli(
        "train", "fr.txt", "--init-from", source, "--out", "ft", *TINY[4:8], "--max-steps", "400"
    )
    assert r.code == 0, r.err
    assert "fine-tuning from" in r.err
    assert f"{len(ACCENTED)} new characters join the vocabulary" in r.err and "'é'" in r.err
    header = checkpoint.read_header("ft/best.ckpt")
    # all of this small text is for training: no dropout, as for a new model (the all-text rule)
    assert "all of the text is for training: using --dropout 0, --weight-drop 0 (" in r.err
    assert header.meta["model"]["dropout"] == 0 and header.meta["model"]["weight_drop"] == 0
    assert header.meta["vocab"] == sorted(header.meta["vocab"])
    assert set(header.meta["vocab"]) >= ACCENTED
    assert header.meta["init_from"]["path"] == str(source)
    assert header.meta["train"]["lr"] == FINETUNE_DEFAULTS["lr"]
    # a fixed sampling seed and 2,000 characters: 400 at a drawn seed wrote only 2 of the 7 once
    # (this barely trained model writes each at about 0.4 %; 8 seeds of 2,000 wrote all 7)
    r = cli(
        "sample", "ft/best.ckpt", "-n", "2000", "--temp", "0.5", "--seed", "« Sous", "--no-echo",
        "--rng-seed", "0",
    )  # fmt: skip
    assert r.code == 0, r.err
    assert len(ACCENTED & set(r.out)) >= 5  # learned new characters are written
    info = json.loads(cli("inspect", "ft/best.ckpt", "--json").out)
    assert info["init_from"]["new_chars"] == header.meta["init_from"]["new_chars"]
    assert "initialised from" in cli("inspect", "ft/best.ckpt").out


def test_a_fine_tuned_run_resumes_on_its_text(cli, source: Path) -> None:
    Path("fr.txt").write_text(NEW_TEXT * 60, encoding="utf-8")
    assert (
        cli("train", "fr.txt", "--init-from", source, "--out", "ft", "--max-steps", "6").code == 0
    )
    r = cli("train", "--resume", "ft/last.ckpt", "--max-steps", "9")
    assert r.code == 0, r.err
    header = checkpoint.read_header("ft/last.ckpt")
    assert header.meta["state"]["step"] == 9 and header.meta["init_from"]["path"] == str(source)


def test_shape_changes_and_resume_together_are_refused(cli, source: Path) -> None:
    Path("fr.txt").write_text(NEW_TEXT * 20, encoding="utf-8")
    r = cli("train", "fr.txt", "--init-from", source, "--hidden", "64")
    assert r.code == 2
    assert r.err.strip() == (
        "charrnn: error: --hidden cannot change with --init-from (init_from=): the checkpoint's "
        "model has 48, this asks for 64; leave --hidden out when starting from a model"
    )
    r = cli("train", "fr.txt", "--init-from", source, "--resume", source)
    assert r.code == 2 and "give one of them" in r.err
    # options that shape no weight are a new run's own choice
    r = cli("train", "fr.txt", "--init-from", source, "--dropout", "0.1", "--max-steps", "2")
    assert r.code == 0, r.err
    assert checkpoint.read_header("runs/fr/best.ckpt").meta["model"]["dropout"] == 0.1


def test_a_format_1_checkpoint_still_loads_samples_and_fine_tunes(cli, source: Path) -> None:
    """Files written before weight averaging: no `ema.*` tensors, format 1, no `weights` state."""
    from safetensors.numpy import save_file

    header = checkpoint.read_header(source)
    arrays = {
        k: v.float().numpy()
        for k, v in checkpoint.load_tensors(header).items()
        if not k.startswith("ema.")
    }
    meta = {k: json.dumps(v) for k, v in header.meta.items() if k != "init_from"}
    state = {k: v for k, v in header.meta["state"].items() if k != "weights"}
    meta |= {"state": json.dumps(state), "charrnn.format": "1"}
    train = {k: v for k, v in header.meta["train"].items() if k not in ("ema", "shift_windows")}
    meta["train"] = json.dumps(train)
    save_file(arrays, "old.ckpt", metadata=meta)
    info = json.loads(cli("inspect", "old.ckpt", "--json").out)
    assert info["format_version"] == 1 and info["weights"]["sampling"] == "raw"
    r = cli("sample", "old.ckpt", "--length", "50", "--rng-seed", "1")
    assert r.code == 0 and len(r.out) == 50
    # what sampling reads is the raw weights, bit for bit
    from charrnn.infer.numpy_engine import read_model_tensors

    got = read_model_tensors(checkpoint.read_header("old.ckpt"))
    assert got.keys() == {k for k in arrays if k.startswith("model.")}
    assert all(np.array_equal(got[k], arrays[k]) for k in got)
    Path("fr.txt").write_text(NEW_TEXT * 20, encoding="utf-8")
    assert cli("train", "fr.txt", "--init-from", "old.ckpt", "--max-steps", "2").code == 0
    Path("old").mkdir()
    Path("old.ckpt").rename("old/last.ckpt")
    r = cli("train", "--resume", "old/last.ckpt", "--max-steps", str(state["step"] + 2))
    assert r.code == 0, r.err  # resumes as it was trained: without an average
    resumed = checkpoint.read_header("old/last.ckpt")
    assert resumed.meta["train"]["ema"] == 0.0 and checkpoint.sampling_prefix(resumed) == "model."
    assert resumed.meta["train"]["shift_windows"] is False  # nor with shifted windows
