"""Voices through `charrnn serve` on a real socket, with the real `openai` client and httpx: `tag`,
`MODEL:VOICE` and `tag_strength` write what `charrnn sample --tag --tag-strength` writes with the
same seed; `/v1/score` with `by_tag` gives `charrnn score --by-tag --json`'s figures; /v1/models
lists the voices; the refusals are 400s naming the field; a session belongs to its voice; and the
playground's voice selector sends the voice (Debian's chromium through Playwright)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.serving import Server
from tests.voiced import A_LETTERS, B_LETTERS, trained_voiced, voice_text

openai = pytest.importorskip("openai")
pytestmark = pytest.mark.slow  # a real server (and a real browser)

LETTERS = {"a": set(A_LETTERS), "b": set(B_LETTERS)}


@pytest.fixture(scope="module")
def voiced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained_voiced(tmp_path_factory.mktemp("voices") / "v.ckpt", newline=True)


@pytest.fixture(scope="module")
def server(voiced: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The voiced model as `v` beside an unvoiced one as `plain`; few streams, so a guided
    request can outgrow them."""
    from tests.test_engine_parity import save_checkpoint

    base = tmp_path_factory.mktemp("serve-voices")
    plain = save_checkpoint(base / "plain.ckpt", "lstm")
    srv = Server(
        f"v={voiced}",
        f"plain={plain}",
        "--deterministic",
        "--max-streams",
        "6",
        "--sessions",
        base / "sessions.sqlite",
    )
    yield srv
    assert srv.stop() == 0, "".join(srv.log)


def client(srv: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.url + "/v1", api_key="none", max_retries=0)


def sample(cli, ckpt: Path, prompt: str, seed: int, length: int, *opts: object) -> str:
    """What `charrnn sample` prints for these options (the prompt not echoed)."""
    r = cli(
        "sample",
        ckpt,
        "--seed",
        prompt,
        "--rng-seed",
        seed,
        "--length",
        length,
        "--no-echo",
        "--temp",
        "0.8",
        *opts,
    )
    assert r.code == 0, r.err
    return r.out


def complete(srv: Server, **body: object) -> httpx.Response:
    return httpx.post(f"{srv.url}/v1/completions", json=body, timeout=120)


def test_models_lists_each_voice_as_model_colon_voice(server: Server) -> None:
    ids = [m.id for m in client(server).models.list().data]
    assert ids == ["v", "v:a", "v:b", "plain"]
    cards = {c["id"]: c for c in httpx.get(f"{server.url}/v1/models").json()["data"]}
    assert cards["v"]["charrnn"]["voices"] == ["a", "b"]
    assert cards["plain"]["charrnn"]["voices"] is None
    assert cards["v:b"]["charrnn"] == {"model": "v", "voice": "b", "val_nats_per_char": 1.25}
    assert httpx.get(f"{server.url}/v1/models/v:a").json()["id"] == "v:a"
    r = httpx.get(f"{server.url}/v1/models/v:c")
    assert r.status_code == 404 and "voices a, b" in r.json()["error"]["message"]


def test_tag_and_model_voice_equal_charrnn_sample(server: Server, cli, voiced: Path) -> None:
    c = client(server)
    expected = sample(cli, voiced, "gab ", 7, 120, "--tag", "a")
    by_name = c.completions.create(
        model="v:a", prompt="gab ", max_tokens=120, seed=7, temperature=0.8
    )
    by_tag = c.completions.create(
        model="v", prompt="gab ", max_tokens=120, seed=7, temperature=0.8, extra_body={"tag": "a"}
    )
    assert by_name.choices[0].text == by_tag.choices[0].text == expected
    assert by_name.model == "v:a"
    assert set(expected) - {" ", "\n"} <= LETTERS["a"]
    streamed = c.completions.create(
        model="v:b", prompt="tuv ", max_tokens=120, seed=3, temperature=0.8, stream=True
    )
    assert "".join(e.choices[0].text for e in streamed) == sample(
        cli, voiced, "tuv ", 3, 120, "--tag", "b"
    )
    # a mix, given as {name: weight}, is `--tag NAME=WEIGHT` repeated
    mix = c.completions.create(
        model="v",
        prompt="",
        max_tokens=80,
        seed=11,
        temperature=0.8,
        extra_body={"tag": {"a": 1, "b": 3}},
    )
    assert mix.choices[0].text == sample(cli, voiced, "", 11, 80, "--tag", "a=1", "--tag", "b=3")


def test_strength_two_equals_charrnn_sample(server: Server, cli, voiced: Path) -> None:
    """Guided: two streams per choice stepped in the batch, choice i drawing with seed + i."""
    out = client(server).completions.create(
        model="v:b",
        prompt="abc ",
        max_tokens=100,
        seed=20,
        temperature=0.8,
        n=2,
        extra_body={"tag_strength": 2},
    )
    for i, choice in enumerate(out.choices):
        want = sample(cli, voiced, "abc ", 20 + i, 100, "--tag", "b", "--tag-strength", "2")
        assert choice.text == want
    plain = sample(cli, voiced, "abc ", 20, 100, "--tag", "b")
    assert out.choices[0].text != plain  # strength 2 is not strength 1
    # best_of ranks candidates by the guided distribution's log-probabilities
    r = complete(
        server,
        model="v:b",
        prompt="abc ",
        max_tokens=30,
        seed=20,
        n=1,
        best_of=3,
        tag_strength=2,
        logprobs=1,
    )
    assert r.status_code == 200, r.text
    # the same guided choices, each with its logprobs: the returned one has the highest mean
    each = [
        complete(
            server,
            model="v:b",
            prompt="abc ",
            max_tokens=30,
            seed=20 + i,
            tag_strength=2,
            logprobs=1,
        ).json()["choices"][0]
        for i in range(3)
    ]
    means = [sum(x["logprobs"]["token_logprobs"]) / 30 for x in each]
    assert r.json()["choices"][0]["text"] == each[means.index(max(means))]["text"]


def test_generate_takes_a_tag(server: Server) -> None:
    r = httpx.get(
        f"{server.url}/generate",
        params={"model": "v", "start_text": "tuv ", "tag": "b", "n": 2, "seed": 1},
    )
    assert r.status_code == 200, r.text
    assert all(set(t) - {" ", "\n"} <= LETTERS["b"] for t in r.json()["completions"])
    params = [("model", "v:a"), ("start_text", "abc "), ("tag_strength", "2"), ("seed", "1")]
    assert httpx.get(f"{server.url}/generate", params=params).status_code == 200
    mix = [("model", "v"), ("tag", "a=1"), ("tag", "b=-1")]
    r = httpx.get(f"{server.url}/generate", params=mix)
    assert r.status_code == 400 and r.json()["error"]["param"] == "tag"


def test_score_by_tag_equals_charrnn_score(server: Server, cli, voiced: Path, tmp_path) -> None:
    text = voice_text(B_LETTERS, 300, True, 12)
    (tmp_path / "b.txt").write_text(text, encoding="utf-8")
    for prior in ("uniform", "corpus"):
        r = cli("score", voiced, str(tmp_path / "b.txt"), "--by-tag", "--json", "--prior", prior)
        assert r.code == 0, r.err
        want = json.loads(r.out)
        got = httpx.post(
            f"{server.url}/v1/score",
            json={"model": "v", "text": text, "by_tag": True, "prior": prior},
        ).json()
        for key in ("chars", "unknown", "voice", "voices", "prior"):
            assert got[key] == want[key], key
        assert got["voice"] == "b"
    # a text under one voice: as `score` with that voice (Sampler.score(tag=...))
    import charrnn

    one = httpx.post(f"{server.url}/v1/score", json={"model": "v:a", "text": text}).json()
    assert one["nats_per_char"] == round(charrnn.load(voiced).score(text, tag="a").nats_per_char, 6)


@pytest.mark.parametrize(
    ("route", "body", "status", "param", "words"),
    [
        ("completions", {"model": "v", "tag": "c"}, 400, "tag", "voices: a, b"),
        ("completions", {"model": "v:c"}, 404, "model", "voices a, b"),
        ("completions", {"model": "v:a", "tag": "b"}, 400, "tag", "give one or the other"),
        ("completions", {"model": "v:a", "tag": {"a": 2}}, 200, None, ""),
        ("completions", {"model": "v", "tag": {"a": -1}}, 400, "tag", ">= 0"),
        ("completions", {"model": "v", "tag": {"a": 0, "b": 0}}, 400, "tag", "all zero"),
        ("completions", {"model": "v:a", "tag_strength": -1}, 400, "tag_strength", ">= 0"),
        ("completions", {"model": "v:a", "tag_strength": "2"}, 400, "tag_strength", "number"),
        ("completions", {"model": "v", "tag_strength": 2}, 400, "tag_strength", "give one"),
        ("completions", {"model": "v", "tag": 5}, 400, "tag", "name"),
        ("completions", {"model": "plain", "tag": "a"}, 400, "tag", "no voices"),
        ("completions", {"model": "plain", "tag_strength": 2}, 400, "tag_strength", "no voices"),
        ("completions", {"model": "plain:a"}, 404, "model", "no voices"),
        # two streams per choice: 4 guided choices need 8 of the server's 6
        ("completions", {"model": "v:a", "tag_strength": 2, "n": 4}, 400, "tag_strength", "6"),
        ("score", {"model": "plain", "by_tag": True}, 400, "by_tag", "no voices"),
        ("score", {"model": "v:a", "by_tag": True}, 400, "by_tag", "every voice"),
        ("score", {"model": "v", "by_tag": True, "per_char": True}, 400, "by_tag", "per_char"),
        ("score", {"model": "v", "by_tag": True, "prior": "flat"}, 400, "prior", "uniform"),
        ("score", {"model": "v", "prior": "corpus"}, 400, "prior", "by_tag"),
        ("score", {"model": "v", "tag": "z"}, 400, "tag", "voices: a, b"),
    ],
)
def test_refusals_name_the_field(server: Server, route, body, status, param, words) -> None:
    payload = {"prompt": "ab", "max_tokens": 4} if route == "completions" else {"text": "ab"}
    r = httpx.post(f"{server.url}/v1/{route}", json=payload | body, timeout=60)
    assert r.status_code == status, r.text
    if status != 200:
        err = r.json()["error"]
        assert err["param"] == param and words in err["message"], err
    assert httpx.get(f"{server.url}/health").json()["status"] == "ok"  # and it keeps serving


def test_a_session_belongs_to_its_voice(server: Server) -> None:
    first = complete(
        server, model="v:b", prompt="tuv ", max_tokens=30, seed=5, session="g", tag_strength=2
    )
    assert first.status_code == 200, first.text
    text = first.json()["choices"][0]["text"]
    for other in ({"model": "v:a", "tag_strength": 2}, {"model": "v:b"}, {"model": "v"}):
        r = complete(server, prompt=" x", max_tokens=5, session="g", **other)
        assert r.status_code == 409, r.text
        err = r.json()["error"]
        assert err["code"] == "session_voice_mismatch" and "voice b at strength 2" in err["message"]
    # its own voice continues it: as one request over the whole text (both guided rows kept)
    turn = complete(
        server, model="v:b", prompt=" xyz", max_tokens=30, seed=6, session="g", tag_strength=2
    ).json()["choices"][0]["text"]
    whole = complete(
        server, model="v:b", prompt="tuv " + text + " xyz", max_tokens=30, seed=6, tag_strength=2
    ).json()["choices"][0]["text"]
    assert turn == whole


def test_a_model_name_with_a_colon_is_refused_at_start(cli, voiced: Path) -> None:
    r = cli("serve", f"my:model={voiced}", "--port", "0")
    assert (
        r.code == 2 and "reserved for MODEL:VOICE" in r.err and len(r.err.strip().splitlines()) == 1
    )


def test_playground_voice_selector_sends_the_voice(server: Server) -> None:
    from tests.test_playground import Page
    from tests.test_viz import _browser

    sync_playwright, exe = _browser()
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=exe)
        try:
            with Page(chromium, server.url) as (page, errors):
                page.wait_for_function("document.getElementById('model').options.length === 2")
                assert page.eval_on_selector_all("#model option", "o => o.map(x => x.value)") == [
                    "v",
                    "plain",
                ]
                assert page.is_visible("#voice-box")
                options = page.eval_on_selector_all("#voice option", "o => o.map(x => x.text)")
                assert options == ["none", "a", "b", "a mix…"]
                page.select_option("#voice", "b")
                page.fill("#strength", "2")
                page.fill("#text", "tuv ")
                page.eval_on_selector("#text", "t => t.setSelectionRange(4, 4)")
                page.fill("#length", "60")
                page.fill("#seed", "31")
                page.click("#continue")
                page.wait_for_function(
                    "document.getElementById('write-status').textContent.includes('Continued')"
                )
                got = page.input_value("#text")
                page.select_option("#voice", "*")  # a mix by weights
                assert page.is_visible("#mix")
                page.select_option("#model", "plain")  # an unvoiced model: no selector
                assert page.is_hidden("#voice-box")
                assert page.locator("#error").is_hidden()
            assert errors == []
        finally:
            chromium.close()
    want = complete(
        server,
        model="v",
        prompt="tuv ",
        max_tokens=60,
        seed=31,
        temperature=0.8,
        unknown="skip",
        tag="b",
        tag_strength=2,
    ).json()["choices"][0]["text"]
    assert got == "tuv " + want
