"""Sampling on a real trained model: seeds, the writer's controls, beam search, records, stop."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import charrnn
from charrnn.errors import InputError
from charrnn.infer.beam import beam_search
from charrnn.infer.controls import Rules, count_words
from charrnn.infer.logits import Filters, log_softmax
from charrnn.infer.sampler import Options

from .conftest import corpus_text


@pytest.fixture(scope="module")
def model(trained: Path):
    return charrnn.load(str(trained))


def test_sample_i_of_a_batch_is_its_seed_alone(trained: Path) -> None:
    exact = charrnn.load(str(trained), deterministic=True)
    batch = exact.generate_batch("def ", 120, 5, temperature=0.9, rng_seed=40)
    alone = [exact.generate("def ", 120, 0.9, rng_seed=40 + i) for i in range(5)]
    assert batch == alone and len(set(batch)) == 5
    assert exact.generate("def ", 120, 0.9, rng_seed=41) == batch[1]


def test_fast_batches_repeat_exactly(model) -> None:
    """The default mode: the same command gives the same samples."""
    first = model.generate_batch("def ", 200, 8, temperature=0.9, rng_seed=40)
    assert first == model.generate_batch("def ", 200, 8, temperature=0.9, rng_seed=40)
    assert len(set(first)) == 8


def test_greedy_is_top_k_1_and_seed_free(model) -> None:
    g = model.generate("class", 80, 0.0, rng_seed=1)
    assert (
        g
        == model.generate("class", 80, 0.0, rng_seed=2)
        == model.generate("class", 80, 1.3, top_k=1)
    )


def test_a_banned_string_never_appears_in_100_samples(model) -> None:
    texts = model.generate_batch("", 200, 100, temperature=1.0, rng_seed=5, ban=["the", "e "])
    plain = model.generate_batch("", 200, 100, temperature=1.0, rng_seed=5)
    assert sum("the" in t or "e " in t for t in plain) > 50  # the model does want to write them
    assert not any("the" in t or "e " in t for t in texts)


def test_no_repeat_never_completes_a_sequence_twice(model) -> None:
    n = 6
    for text in model.generate_batch("def ", 300, 10, temperature=0.7, rng_seed=3, no_repeat=n):
        full = "def " + text
        grams = [full[i : i + n] for i in range(len(full) - n + 1)]
        assert len(grams) == len(set(grams))


def test_until_sentence_ends_a_sentence_within_the_word_bounds(model) -> None:
    opts = Options(400, Filters(0.8), Rules(until="sentence", min_words=3, max_words=12))
    done = model.samples("The ", opts, rng_seed=11, n=20)
    for s in done:
        assert s.finish_reason == "until", s
        assert s.text.rstrip("\"')]}").endswith((".", "!", "?")), s.text
        assert 3 <= count_words(s.text) <= 12, s.text
    assert [s.text for s in model.samples("The ", opts, rng_seed=11, n=20)] == [
        s.text for s in done
    ]


def test_until_line_and_paragraph(model) -> None:
    for s in model.samples("def main():\n", Options(300, Filters(0.8), Rules(until="line")), 2, 10):
        assert "\n" not in s.text and s.finish_reason in ("until", "length")
    par = model.samples("def main():\n", Options(800, Filters(0.8), Rules(until="paragraph")), 2, 5)
    assert all("\n\n" not in s.text for s in par)


def test_words_count_cjk_characters_one_by_one() -> None:
    assert count_words("to be  or\nnot") == 4 and count_words("我爱你 ok") == 4


def test_controls_that_leave_nothing_end_the_sample(model) -> None:
    every = list(model.vocab.chars)
    s = model.samples("A", Options(50, Filters(1.0), Rules(ban=tuple(every))), 1)[0]
    assert s.text == "" and s.finish_reason == "dead_end"


def test_min_p_keeps_only_likely_characters(model) -> None:
    strict = model.generate("def ", 300, 1.0, rng_seed=4, min_p=0.9)
    loose = model.generate("def ", 300, 1.0, rng_seed=4)
    assert strict != loose and len(set(strict)) < len(set(loose))


def total_logprob(model, prime: str, text: str) -> float:
    ids = model.vocab.encode(prime + text)
    fwd = model.engine.forward(ids[:-1])
    lp = log_softmax(fwd.logits)
    return float(sum(lp[len(prime) - 1 + i, ids[len(prime) + i]] for i in range(len(text))))


def test_beam_is_deterministic_and_beats_greedy_on_average(model) -> None:
    text = corpus_text(200_000)
    primes = [text[i : i + 20] for i in range(0, 200_000, 10_000)]
    opts = Options(30)
    beams, greedy = [], []
    for p in primes:
        b = beam_search(model, p, opts, 4)
        assert b.text == beam_search(model, p, opts, 4).text and len(b.text) == 30
        g = model.generate(p, 30, 0.0)
        beams.append(total_logprob(model, p, b.text))
        greedy.append(total_logprob(model, p, g))
    assert np.mean(beams) >= np.mean(greedy)


def test_beam_with_until_ends_at_the_boundary(model) -> None:
    # A short-trained code model's likeliest text is indentation, which holds no words: banning
    # runs of spaces leaves the beam words to write, and --max-words then ends the sentence.
    s = beam_search(
        model,
        "The king ",
        Options(200, rules=Rules(until="sentence", max_words=5, ban=("the", "  "))),
        3,
    )
    assert s.finish_reason == "until" and s.text.endswith((".", "!", "?"))
    assert "the" not in s.text and "  " not in s.text


def test_fifty_unique_records_none_a_corpus_line(cli, trained: Path) -> None:
    r = cli("sample", trained, "--records", "50", "--unique", "--rng-seed", "1", "-n", "60")
    assert r.code == 0, r.err
    lines = r.out.split("\n")
    assert lines[-1] == "" and len(lines[:-1]) == 50
    items = lines[:-1]
    corpus_lines = set(corpus_text().split("\n"))
    assert len(set(items)) == 50 and all(i and i not in corpus_lines for i in items)


def test_json_lines_parse_with_seeds_and_novelty(cli, trained: Path) -> None:
    r = cli(
        "sample",
        trained,
        "-s",
        "def ",
        "-n",
        "60",
        "--num-samples",
        "3",
        "--rng-seed",
        "9",
        "--json",
        "--novelty",
        "--until",
        "sentence",
    )
    assert r.code == 0, r.err
    objs = [json.loads(line) for line in r.out.splitlines()]
    assert [o["rng_seed"] for o in objs] == [9, 10, 11]
    for o in objs:
        assert o["finish_reason"] in ("until", "length") and o["options"]["until"] == "sentence"
        nov = o["novelty"]
        assert nov["longest_copy"] == len(nov["longest_copy_text"]) and 0 <= nov["new_share"] <= 1
        assert nov["longest_copy_text"] in corpus_text()


def test_stop_strings_and_unknown_characters(model) -> None:
    text = model.generate("a", 500, 1.0, rng_seed=3)
    cut = text.find("\n")
    assert cut >= 0 and model.generate("a", 500, 1.0, rng_seed=3, stop="\n") == text[:cut]
    assert "".join(model.stream("", 20, 1.0, rng_seed=4)) == model.generate("", 20, 1.0, rng_seed=4)
    with pytest.raises(InputError, match="'☃'"):  # not ASCII: not in the corpus
        model.generate("a☃", 5)
    assert len(model.generate("a☃☃", 5, unknown="skip")) == 5 and model.generate("a", 0) == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--beam", "3", "--temp", "0.5"], "--beam"),
        (["--beam", "3", "--num-samples", "2"], "--num-samples"),
        (["--min-p", "2"], "--min-p"),
        (["--unique"], "--records"),
        (["--max-words", "3"], "--until"),
        (["--until", "sentence", "--min-words", "5", "--max-words", "2"], "--min-words"),
        (["--no-repeat", "0"], "--no-repeat"),
    ],
)
def test_bad_control_values_get_one_line(cli, trained: Path, args, message) -> None:
    r = cli("sample", trained, *args)
    assert r.code == 2 and r.out == "" and message in r.err and len(r.err.strip().splitlines()) == 1
