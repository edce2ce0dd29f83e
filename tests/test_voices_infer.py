"""Voices through the commands a user types: `sample --tag` writes in the voice asked for (primed,
and unprimed with a vocabulary without a newline, where the first draw uses the voice's own
frequencies), `score --by-tag` names the voice that wrote a text, `inspect` shows the voices, the
refusals are one line with exit 2, and an unvoiced checkpoint behaves as before."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.voiced import A_LETTERS, B_LETTERS, trained_voiced, voice_text

LETTERS = {"a": set(A_LETTERS), "b": set(B_LETTERS)}


@pytest.fixture(scope="module")
def voiced(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two trained two-voice models: one whose vocabulary has a newline, one without."""
    base = tmp_path_factory.mktemp("voices")
    return {
        "newline": trained_voiced(base / "nl.ckpt", newline=True),
        "no-newline": trained_voiced(base / "flat.ckpt", newline=False),
    }


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.test_engine_parity import save_checkpoint

    return save_checkpoint(tmp_path_factory.mktemp("plain") / "plain.ckpt", "lstm")


def letters(text: str) -> set[str]:
    return set(text) - {" ", "\n"}


@pytest.mark.parametrize("kind", ["newline", "no-newline"])
@pytest.mark.parametrize("voice", ["a", "b"])
@pytest.mark.parametrize("prime", ["", "gab "])
def test_sample_writes_only_the_asked_voices_alphabet(
    cli, voiced: dict[str, Path], kind: str, voice: str, prime: str
) -> None:
    prime = prime if voice == "a" else prime.translate(str.maketrans(A_LETTERS, B_LETTERS))
    args = [voiced[kind], "--tag", voice, "--seed", prime, "--length", "150", "--json"]
    r = cli("sample", *args, "--num-samples", "4", "--rng-seed", "7", "--temp", "0.8")
    assert r.code == 0, r.err
    rows = [json.loads(line) for line in r.out.splitlines()]
    assert len(rows) == 4 and all(row["options"]["tag"] == voice for row in rows)
    for row in rows:
        assert letters(row["text"]) <= LETTERS[voice], row["text"]
        assert letters(row["text"]), "it wrote letters"


def test_the_unprimed_first_draw_uses_the_voices_counts(cli, voiced: dict[str, Path]) -> None:
    """Without a newline the first character comes from frequencies alone: the voice's."""
    for voice in ("a", "b"):
        r = cli("sample", voiced["no-newline"], "--tag", voice, "-n", "1", "--json",
                "--num-samples", "40", "--rng-seed", "0")  # fmt: skip
        firsts = {json.loads(line)["text"] for line in r.out.splitlines()}
        assert firsts - {" "} and letters("".join(firsts)) <= LETTERS[voice]


def test_strength_and_mixes_on_the_command_line(cli, voiced: dict[str, Path]) -> None:
    ckpt = voiced["newline"]
    base = ["sample", ckpt, "--seed", "ab ", "-n", "80", "--rng-seed", "3", "--no-echo"]
    strong = cli(*base, "--tag", "a", "--tag-strength", "2")
    assert strong.code == 0 and letters(strong.out) <= LETTERS["a"]
    one = cli(*base, "--tag", "a", "--tag-strength", "1")
    assert one.out == cli(*base, "--tag", "a").out != strong.out
    mix = cli(*base, "--tag", "a=1", "--tag", "b=3")
    assert mix.out == cli(*base, "--tag", "a=0.25", "--tag", "b=0.75").out
    beam = cli("sample", ckpt, "--seed", "ab ", "-n", "30", "--tag", "b", "--beam", "3")
    assert beam.code == 0 and letters(beam.out[3:]) <= LETTERS["b"]


@pytest.mark.parametrize("kind", ["newline", "no-newline"])
def test_score_by_tag_names_the_voice_that_wrote_a_text(
    cli, voiced: dict[str, Path], tmp_path: Path, kind: str
) -> None:
    nl = kind == "newline"
    (tmp_path / "a.txt").write_text(voice_text(A_LETTERS, 300, nl, 11), encoding="utf-8")
    (tmp_path / "b.txt").write_text(voice_text(B_LETTERS, 300, nl, 12), encoding="utf-8")
    r = cli("score", voiced[kind], "a.txt", "b.txt", "--by-tag", "--json")
    assert r.code == 0, r.err
    rows = {row["file"]: row for row in map(json.loads, r.out.splitlines())}
    assert rows["a.txt"]["voice"] == "a" and rows["b.txt"]["voice"] == "b"
    a = rows["a.txt"]["voices"]
    assert a["a"]["probability"] > 0.9 and a["a"]["nats_per_char"] < a["b"]["nats_per_char"]
    assert set(a["a"]) == {"nats_per_char", "bpc", "perplexity", "probability"}
    assert rows["a.txt"]["prior"] == "uniform" and rows["a.txt"]["chars"] == 300
    table = cli("score", voiced[kind], "b.txt", "--by-tag", "--prior", "corpus")
    assert table.code == 0 and table.out.splitlines()[1].split()[1] == "b"


def test_score_by_tag_per_line(cli, voiced: dict[str, Path]) -> None:
    text = "abba gade\nzyx tuvz\n\ncafe\n"
    r = cli("score", voiced["newline"], "--by-tag", "--lines", stdin=text)
    rows = [line.split("\t") for line in r.out.splitlines()]
    assert rows[0] == ["voice", "probability", "a", "b", "line"]
    assert [(row[0], row[-1]) for row in rows[1:]] == [("a", "abba gade"), ("b", "zyx tuvz"),
                                                       ("a", "cafe")]  # fmt: skip
    js = cli("score", voiced["newline"], "--by-tag", "--lines", "--json", stdin=text)
    objs = [json.loads(line) for line in js.out.splitlines()]
    assert [o["voice"] for o in objs] == ["a", "b", "a"] and objs[1]["line"] == "zyx tuvz"


def test_the_python_api_takes_a_tag_and_scores_by_voice(voiced: dict[str, Path]) -> None:
    import charrnn
    from charrnn.infer.score import Scorer

    m = charrnn.load(voiced["newline"])
    text = m.generate("ab ", 100, tag="a", rng_seed=1)
    assert letters(text) <= LETTERS["a"]
    assert "".join(m.stream("ab ", 100, tag="a", rng_seed=1)) == text
    under = {v: m.score("tuv zyx wvu", tag=v).nats for v in ("a", "b")}
    assert under["b"] < under["a"] and m.score("ab", tag={"a": 1, "b": 1}).chars == 2
    got = Scorer(m.engine).by_tag("tuv zyx wvu")
    assert (
        got.best == "b" and got.names == ("a", "b") and got.probabilities.sum() == pytest.approx(1)
    )


def test_inspect_shows_the_voices(cli, voiced: dict[str, Path]) -> None:
    r = cli("inspect", voiced["newline"])
    assert r.code == 0, r.err
    assert "voices (2, embedding 4)" in r.out
    rows = " ".join(r.out.split())  # the table wraps to the terminal's width
    assert "a train 5,400, val 600, test 0 chars; val 1.5000 nats/char" in rows
    assert "balance equal; 25% of windows trained untagged" in rows
    info = json.loads(cli("inspect", voiced["newline"], "--json").out)
    assert info["voices"]["names"] == ["a", "b"] and info["voices"]["val"] == {"a": 1.5, "b": 1.25}
    assert info["voices"]["chars"]["val"] == [600, 600] and info["format_version"] == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tag", "c"], "unknown voice 'c'; this model's voices: a, b"),
        (["--tag", "a=-1"], "weights must be >= 0"),
        (["--tag", "a=0", "--tag", "b=0"], "all zero"),
        (["--tag", "a=x"], "is not a number"),
        (["--tag", "a", "--tag-strength", "-1"], "--tag-strength must be >= 0"),
        (["--tag-strength", "2"], "give one with --tag"),
    ],
)
def test_sample_refusals_are_one_line(cli, voiced: dict[str, Path], args, message) -> None:
    r = cli("sample", voiced["newline"], "-n", "5", *args)
    assert r.code == 2 and message in r.err and r.out == ""
    assert len(r.err.strip().splitlines()) == 1


def test_voices_on_an_unvoiced_model_are_refused(cli, plain: Path, voiced: dict[str, Path]) -> None:
    r = cli("sample", plain, "-n", "5", "--tag", "a")
    assert r.code == 2 and "this model has no voices" in r.err
    assert len(r.err.strip().splitlines()) == 1
    s = cli("score", plain, "--by-tag", stdin="hello")
    assert s.code == 2 and "no voices" in s.err and len(s.err.strip().splitlines()) == 1
    both = cli("score", "--model", plain, "--model", voiced["newline"], "--by-tag", stdin="ab")
    assert both.code == 2 and "one checkpoint" in both.err


def test_an_unvoiced_checkpoint_samples_and_inspects_as_before(cli, plain: Path) -> None:
    r = cli("sample", plain, "--seed", "the ", "-n", "40", "--rng-seed", "1", "--json")
    row = json.loads(r.out)
    assert "tag" not in row["options"] and "tag_strength" not in row["options"]
    info = json.loads(cli("inspect", plain, "--json").out)
    assert info["voices"] is None and info["format_version"] == 3
    assert "voices" not in cli("inspect", plain).out
