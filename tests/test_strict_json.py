"""Every JSON charrnn writes parses in a strict parser (no bare NaN or Infinity), on inputs that make
a figure non-finite where one can: a text with no character the model knows."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

UNKNOWN = "☃☂☄" * 40  # no character of these is in the test models' ASCII vocabulary


def strict(text: str) -> object:
    """json.loads that refuses NaN, Infinity and -Infinity, as browsers and jq do."""

    def refuse(name: str) -> None:
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def strict_lines(text: str) -> list:
    return [strict(line) for line in text.splitlines() if line.strip()]


def test_export_quality_of_an_unscorable_text_is_null_with_a_reason(cli, trained: Path) -> None:
    Path("eval.txt").write_text(UNKNOWN + "ab")  # two characters scored, not the text's length
    r = cli("export", trained, "-o", "w", "--eval", "eval.txt", "--json")
    assert r.code == 0, r.err
    q = strict(r.out)["quality"]
    assert q["chars"] == 2 and q["cost"] is not None
    Path("eval.txt").write_text(UNKNOWN)
    quality = {}
    for fmt in ("web", "onnx", "ml5"):
        r = cli("export", trained, "-f", fmt, "-o", fmt, "--eval", "eval.txt", "--json")
        assert r.code == 0, r.err
        q = quality[fmt] = strict(r.out)["quality"]
        assert q["chars"] == 0 and q["f32"] is None and q["cost"] is None
        assert "none of the 120 characters of eval.txt is in the model's vocabulary" in q["method"]
        assert strict(Path(fmt, "export.json").read_text())["quality"] == q
        for f in Path(fmt).glob("*.json"):
            strict(f.read_text())
    assert strict(Path("web/model.json").read_text())["quality"] == quality["web"]
    import onnx

    props = {p.key: p.value for p in onnx.load("onnx/model.onnx").metadata_props}
    assert strict(props["charrnn.quality"]) == quality["onnx"]
    for value in props.values():
        if value[:1] in "[{":
            strict(value)
    r = cli("export", trained, "--single-file", "-o", "one.html", "--eval", "eval.txt")
    assert r.code == 0 and "quality: not measured: none of the 120" in r.err


def test_hub_export_json_of_an_unscorable_text_parses_strictly(cli, trained: Path) -> None:
    pytest.importorskip("huggingface_hub")
    Path("eval.txt").write_text(UNKNOWN)
    for fmt in ("hub", "space"):
        r = cli("export", trained, "-f", fmt, "-o", fmt, "--eval", "eval.txt", "--json",
                "--no-samples")  # fmt: skip
        assert r.code == 0, r.err
        q = strict(r.out)["quality"]
        assert q["chars"] == 0 and q["cost"] is None
        assert strict(Path(fmt, "export.json").read_text())["quality"] == q
        for f in Path(fmt).rglob("*.json"):
            strict(f.read_text())


def test_cli_json_outputs_parse_strictly(cli, trained: Path, corpus_file: Path) -> None:
    Path("odd.txt").write_text(UNKNOWN)
    Path("ok.txt").write_text("def f():\n    return 1\n")
    r = cli("prep", corpus_file, "-o", "ds", "--json", "-q")
    assert r.code == 0, r.err
    strict(r.out)
    strict(Path("ds/meta.json").read_text())
    for args in (
        ["score", trained, "odd.txt", "--json"],
        ["score", trained, "odd.txt", "odd.txt", "--json"],
        ["score", trained, "odd.txt", "--per-char"],
        ["score", trained, "ok.txt", "--per-char", "--top-k", "3"],
        ["inspect", trained, "--json"],
        ["sample", trained, "--length", "20", "--json", "--rng-seed", "1", "--num-samples", "2"],
    ):
        r = cli(*args)
        assert r.code == 0, (args, r.err)
        for obj in strict_lines(r.out) if args[0] != "inspect" else [strict(r.out)]:
            if args[0] == "score" and "nats_per_char" in obj:
                assert obj["nats_per_char"] is None


@pytest.mark.slow
def test_train_json_and_metrics_parse_strictly(cli, corpus_file: Path) -> None:
    tiny = ["--hidden", "16", "--embed", "8", "--batch-size", "2", "--seq-len", "8"]
    r = cli("train", corpus_file, *tiny, "--max-steps", "4", "--dry-run", "--json")
    assert r.code == 0, r.err
    strict(r.out)
    run = ["--max-steps", "4", "--eval-every", "2", "--log-every", "1", "-o", "run", "--json"]
    r = cli("train", corpus_file, *tiny, *run)
    assert r.code == 0, r.err
    strict_lines(r.out)
    assert len(strict_lines(Path("run/metrics.jsonl").read_text())) >= 4


def _post(url: str, body: dict) -> tuple[int, str]:
    req = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_server_routes_answer_strict_json(served) -> None:
    srv = served("--chat")
    for path in ("/health", "/v1/models", "/v1/models/run"):
        with urllib.request.urlopen(srv.url + path, timeout=30) as resp:
            strict(resp.read().decode())
    calls = [
        ("/v1/score", {"text": UNKNOWN}),
        ("/v1/score", {"text": UNKNOWN, "per_char": True}),
        ("/v1/score", {"text": ""}),
        ("/v1/completions", {"prompt": "ab", "max_tokens": 4, "logprobs": 3, "echo": True}),
        ("/v1/completions", {"prompt": "", "max_tokens": 0, "echo": True, "logprobs": 2}),
        ("/v1/completions", {"prompt": "a", "max_tokens": 3, "logit_bias": {"0": -100}}),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}),
        ("/v1/completions", {"prompt": UNKNOWN, "max_tokens": 2}),
    ]
    for path, body in calls:
        status, text = _post(srv.url + path, body)
        assert status < 500, (path, body, text)
        strict(text)
    stream = {"prompt": "ab", "max_tokens": 8, "logprobs": 2, "stream": True}
    status, text = _post(srv.url + "/v1/completions", stream)
    assert status == 200
    events = [x.removeprefix("data: ") for x in text.split("\n\n") if x.strip()]
    assert events[-1] == "[DONE]"
    for event in events[:-1]:
        strict(event)
