"""`charrnn export --format hub` and `--format space`: the folder's files, the card's front matter
read back by huggingface_hub, the card's figures against `inspect --json`, its samples regenerated
from their seeds, no path of this machine anywhere, the sampling checkpoint loading everywhere but
`--resume`, an edited card kept from --overwrite, and each refusal in one line."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from tests.conftest import TINY, run_cli

pytest.importorskip("huggingface_hub")


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny LSTM with a weight average, trained for 40 steps on text written here; its dataset
    stays in the module's cache, so novelty can be measured against it."""
    base = tmp_path_factory.mktemp("hubmodel")
    words = "the quick brown fox jumps over the lazy dog; pack my box with five dozen jugs. "
    (base / "text.txt").write_text("".join(words[i % 7 :] for i in range(600)), "utf-8")
    env = {**os.environ, "CHARRNN_CACHE": str(base / "cache"), "CHARRNN_NO_CALIBRATE": "1"}
    r = run_cli(
        "train", base / "text.txt", *TINY, "--max-steps", "40", "-o", base / "run", "--quiet",
        env=env, cwd=base,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return base / "run" / "best.ckpt"


def _export(cli, ckpt: Path, *args: str, out: str = "hubdir"):
    return cli("export", ckpt, "--format", "hub", "-o", out, *args)


def _card(path: Path):
    from huggingface_hub import ModelCard

    return ModelCard.load(path)


def test_folder_card_fields_and_figures(cli, small: Path, tmp_path: Path) -> None:
    r = _export(
        cli, small, "--license", "mit", "--language", "en", "--dataset", "someone/fox-text",
        "--text-source", "written by the test", "--text-license", "CC0-1.0",
    )  # fmt: skip
    assert r.code == 0, r.err
    assert "note:" not in r.err and "hf upload OWNER/NAME hubdir" in r.err
    folder = Path("hubdir")
    names = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert names == sorted(
        ["model.safetensors", "config.json", "README.md", "export.json"]
        + [f"web/{n}" for n in ("index.html", "charrnn.js", "charrnn.mjs", "model.js")]
        + ["web/model.bin", "web/model.json"]
    )
    card = _card(folder / "README.md")
    d = card.data.to_dict()
    assert d["library_name"] == "charrnn" and d["pipeline_tag"] == "text-generation"
    assert d["license"] == "mit" and d["language"] == ["en"]
    assert d["datasets"] == ["someone/fox-text"]
    assert d["tags"] == ["charrnn", "character-level", "lstm"]
    assert "base_model" not in d
    inspected = json.loads(cli("inspect", small, "--json").out)["training"]
    exported = json.loads(cli("inspect", folder / "model.safetensors", "--json").out)["training"]
    results = {e.metric_type: e for e in card.data.eval_results}
    assert results["nats_per_char"].metric_value == inspected["best_val_loss"]
    assert results["bits_per_character"].metric_value == inspected["best_val_bpc"]
    assert exported["best_val_loss"] == inspected["best_val_loss"]
    assert {e.dataset_split for e in results.values()} == {"validation"}
    assert f"{inspected['best_val_loss']:.4f} nats/char" in card.text
    for part in ("## How to use", "## Training text", "## Training\n", "## Evaluation"):
        assert part in card.text
    assert "written by the test" in card.text and "CC0-1.0" in card.text
    assert "int8 weights" in card.text  # the page's cost
    config = json.loads((folder / "config.json").read_text())
    assert config["library_name"] == "charrnn" and config["model"]["cell"] == "lstm"
    assert config["training"]["best_val_loss"] == inspected["best_val_loss"]
    # no path of this machine in any file of the folder
    for p in folder.rglob("*"):
        if p.is_file():
            data = p.read_bytes()
            for local in {str(tmp_path), str(small.parent.parent), str(Path.home())}:
                assert local.encode() not in data, (p, local)
            assert b'"path"' not in data or p.name == "model.json", p


def test_card_samples_regenerate_with_their_novelty(cli, small: Path) -> None:
    assert _export(cli, small, "--no-web").code == 0
    text = Path("hubdir/README.md").read_text("utf-8")
    found = re.findall(
        r"`(charrnn sample model\.safetensors [^`]*)`\n\n(`{3,})text\n(.*?)\n\2", text, re.S
    )
    assert len(found) == 2
    for command, _, sample in found:
        args = command.split()[3:]
        again = cli("sample", "hubdir/model.safetensors", *args)
        assert again.code == 0 and again.out == sample
        # the same weights as the training checkpoint, whose dataset gives the novelty figures
        measured = cli("sample", small, *args, "--json", "--novelty")
        record = json.loads(measured.out)
        assert record["text"] == sample
        nov = record["novelty"]
        assert f"is {nov['longest_copy']} characters; {nov['new_share']:.1%}" in text
    assert not Path("hubdir/web").exists()
    r = _export(cli, small, "--no-samples", "--overwrite")
    assert r.code == 0 and "--no-samples" in Path("hubdir/README.md").read_text()


def test_sampling_checkpoint_loads_everywhere_but_resume(cli, small: Path) -> None:
    assert _export(cli, small, "--no-web", "--no-samples").code == 0
    model = Path("hubdir/model.safetensors")
    from safetensors import safe_open

    with safe_open(model, "np") as f:
        assert all(k.startswith("model.") for k in f.keys())  # noqa: SIM118
    assert len(cli("sample", model, "-n", "20", "--rng-seed", "3").out) == 20
    assert cli("score", model, "-", stdin="the quick brown fox").code == 0
    r = cli("train", "--resume", model)
    assert r.code == 2 and "a sampling checkpoint" in r.err and "--init-from" in r.err
    assert len(r.err.strip().splitlines()) == 1
    import charrnn
    from charrnn.errors import InputError

    with pytest.raises(InputError) as refused:  # the call refuses as the command does
        charrnn.train(resume=model)
    assert str(refused.value) in r.err
    text = small.parent.parent / "text.txt"
    r = cli("train", text, "--init-from", model, *TINY, "--max-steps", "2", "-o", "ft", "--quiet")
    assert r.code == 0, r.err


def test_edited_card_survives_overwrite(cli, small: Path) -> None:
    assert _export(cli, small, "--no-web", "--no-samples").code == 0
    assert (
        "note: the Hub asks for a licence"
        in cli("export", small, "--format", "hub", "-o", "again", "--no-web", "--no-samples").err
    )
    assert _export(cli, small, "--no-web", "--no-samples", "--overwrite").code == 0  # unedited
    card = Path("hubdir/README.md")
    card.write_text(card.read_text() + "\nMy own words.\n")
    r = _export(cli, small, "--no-web", "--no-samples", "--overwrite")
    assert r.code == 2 and "hubdir: README.md changed since the export wrote it" in r.err
    assert len(r.err.strip().splitlines()) == 1
    assert card.read_text().endswith("My own words.\n")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--dataset", "fox-text"], "give a Hub dataset id, OWNER/NAME"),
        (["--single-file"], "--single-file is for --format web only"),
        (["--dtype", "f64"], "cannot hold --dtype f64"),
    ],
)
def test_refusals_are_one_line(cli, small: Path, args: list[str], says: str) -> None:
    r = _export(cli, small, *args)
    assert r.code == 2 and says in r.err and len(r.err.strip().splitlines()) == 1
    assert not Path("hubdir").exists()


def test_space_folder(cli, small: Path) -> None:
    r = cli("export", small, "--format", "space", "-o", "sp", "--license", "mit", "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["format"] == "space"
    from huggingface_hub import SpaceCard

    card = SpaceCard.load(Path("sp/README.md"))
    assert card.data.sdk == "static" and card.data.app_file == "index.html"
    assert Path("sp/index.html").is_file() and Path("sp/model.js").is_file()
    assert not Path("sp/model.safetensors").exists()


@pytest.mark.slow
def test_space_page_runs_from_file_url(cli, small: Path) -> None:
    from charrnn.infer.numpy_engine import Engine
    from charrnn.infer.sampler import Sampler
    from tests.test_export_browser import generate_on, watch
    from tests.test_viz import _browser

    assert cli("export", small, "--format", "space", "-o", "sp", "--dtype", "f32").code == 0
    greedy = Sampler(Engine.load(small, threads=1)).generate("the ", 100, temperature=0)
    sync_playwright, exe = _browser()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe)
        context = browser.new_context(offline=True)
        page = context.new_page()
        errors, requests = watch(page)
        page.goto((Path("sp") / "index.html").resolve().as_uri())
        assert generate_on(page, "the ", 100) == greedy
        assert errors == [] and all(u.startswith("file://") for u in requests)
        browser.close()
