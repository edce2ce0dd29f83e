"""Chat templates and the chat request contract, as pure functions: rendering, stops, presets, the
vocabulary check, and every refusal naming its parameter."""

from __future__ import annotations

import pytest

from charrnn.errors import InputError
from charrnn.serve.chat_protocol import parse_chat
from charrnn.serve.chat_template import (
    PRESETS,
    Message,
    missing_chars,
    parse_template,
    render,
)
from charrnn.serve.protocol import ApiError, Limits


def test_plain_renders_lines_and_stops_at_the_line_end() -> None:
    t = parse_template("plain")
    msgs = [
        Message("system", "Be brief."),
        Message("user", "Hi"),
        Message("assistant", "Hello."),
        Message("user", "How are you?"),
    ]
    r = render(t, msgs)
    assert (
        r.prompt
        == "System: Be brief.\nUser: Hi\nAssistant: Hello.\nUser: How are you?\nAssistant: "
    )
    assert not r.continued
    assert r.stops == ("\nSystem:", "\nUser:", "\nAssistant:", "\n")


def test_play_writes_speakers_and_their_names() -> None:
    t = parse_template("play:HAMLET:HORATIO")
    msgs = [
        Message("system", "Elsinore. A platform before the castle."),
        Message("user", "What news?"),
        Message("user", "Who's there?", name="BERNARDO"),
    ]
    r = render(t, msgs)
    assert r.prompt == (
        "Elsinore. A platform before the castle.\n\nHORATIO:\nWhat news?\n\n"
        "BERNARDO:\nWho's there?\n\nHAMLET:\n"
    )
    # a speaker's name in the messages also ends a reply; the blank line ends it first
    assert "\n\nBERNARDO:" in r.stops and "\n\nHAMLET:" in r.stops and "\n\n" in r.stops
    # names are written only where a prefix has {name}: plain writes them, chatbot ignores them
    assert render(parse_template("plain"), [Message("user", "x", "Ann")]).prompt.startswith("Ann: ")
    assert render(PRESETS["chatbot"], [Message("user", "x", "Ann")]).prompt == "> x\n"


def test_a_trailing_assistant_message_is_continued() -> None:
    r = render(parse_template("plain"), [Message("user", "Hi"), Message("assistant", "Well, ")])
    assert r.prompt == "User: Hi\nAssistant: Well, " and r.continued


def test_json_templates_and_files(tmp_path) -> None:
    t = parse_template('{"user": "问：", "assistant": "答：", "separator": "\\n"}')
    assert render(t, [Message("user", "你好")]).prompt == "问：你好\n答："
    assert render(t, [Message("user", "你好")]).stops == ("\n问：", "\n答：")
    path = tmp_path / "t.json"
    path.write_text('{"user": "Q: ", "assistant": "A: ", "stop": ["\\n\\n"]}', encoding="utf-8")
    assert parse_template(str(path)).stop == ("\n\n",)
    assert missing_chars(t, set("abc\n")) == ["问", "：", "答"]
    assert missing_chars(parse_template("plain"), set(PRESETS["plain"].text())) == []


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("nonesuch", "not a preset"),
        ("{", "not valid JSON"),
        ('{"user": "Q: "}', "'user' and 'assistant'"),
        ('{"user": "Q", "assistant": "A", "colour": 1}', "unknown field 'colour'"),
        ('{"user": "Q", "assistant": "A", "separator": ""}', "give 'stop'"),
        ('{"user": "Q", "assistant": "A", "names": {"bot": "X"}}', "'names' maps"),
        ("chatbot:BOT", "no speaker names"),
        ("play:A:B:C", "play:ASSISTANT"),
        ("missing.json", "cannot read"),
    ],
)
def test_bad_templates_are_one_line_errors(spec: str, words: str) -> None:
    with pytest.raises(InputError, match="--chat-template") as e:
        parse_template(spec)
    assert words in str(e.value) and "\n" not in str(e.value)


LIMITS = Limits(max_chars=500, max_prompt=1000, max_n=4)
USER = [{"role": "user", "content": "Hi"}]


def test_chat_request_reads_options_as_completions_do() -> None:
    chat = parse_chat(
        {
            "messages": [
                {
                    "role": "developer",
                    "content": [
                        {"type": "text", "text": "Be "},
                        {"type": "text", "text": "brief."},
                    ],
                },
                *USER,
                {"role": "assistant", "content": None, "tool_calls": []},
            ],
            "max_completion_tokens": 40,
            "logprobs": True,
            "top_logprobs": 3,
            "temperature": 0.5,
            "frequency_penalty": 0.5,
            "n": 2,
            "seed": 9,
            "tools": [],
            "tool_choice": "none",
            "response_format": {"type": "text"},
            "prompt_cache_key": "k",
            "safety_identifier": "u1",
        },
        LIMITS,
    )
    assert [(m.role, m.content) for m in chat.messages] == [
        ("system", "Be brief."),
        ("user", "Hi"),
        ("assistant", ""),
    ]
    comp = chat.comp
    assert (comp.opts.length, comp.logprobs, comp.n, comp.seed) == (40, 3, 2, 9)
    assert comp.opts.filters.frequency_penalty == 0.5 and comp.opts.unknown == "skip"
    # unset max tokens: the server's cap, as OpenAI's unset means as many as the model writes
    assert parse_chat({"messages": USER}, LIMITS).comp.opts.length == 500
    assert parse_chat({"messages": USER, "logprobs": False}, LIMITS).comp.logprobs is None


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": []}, "messages"),
        ({"messages": USER, "tools": [{"type": "function"}]}, "tools"),
        ({"messages": USER, "tool_choice": "auto"}, "tool_choice"),
        ({"messages": USER, "response_format": {"type": "json_object"}}, "response_format"),
        ({"messages": USER, "store": True}, "store"),
        ({"messages": USER, "audio": {"voice": "x"}}, "audio"),
        ({"messages": USER, "best_of": 2}, "best_of"),
        ({"messages": USER, "echo": True}, "echo"),
        ({"messages": USER, "top_logprobs": 2}, "top_logprobs"),
        ({"messages": USER, "logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ({"messages": USER, "max_tokens": 501}, "max_tokens"),
        ({"messages": USER, "max_tokens": 5, "max_completion_tokens": 6}, "max_tokens"),
        ({"messages": USER, "n": 5}, "n"),
        ({"messages": USER, "temperature": -1}, "temperature"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
            "messages[0].content[0]",
        ),
        ({"messages": [{"role": "user", "content": 3}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": "x", "mood": 1}]}, "messages[0].mood"),
        (
            {"messages": [{"role": "assistant", "content": "", "tool_calls": [{}]}]},
            "messages[0].tool_calls",
        ),
        ({"messages": USER, "session": "s", "n": 2}, "n"),
        ({"messages": USER, "moderation": {"model": "m"}}, "moderation"),
        ({"messages": USER, "prompt_cache_key": 3}, "prompt_cache_key"),
    ],
)
def test_chat_refusals_name_the_parameter(body: dict, param: str) -> None:
    with pytest.raises(ApiError) as e:
        parse_chat(body, LIMITS)
    assert e.value.status == 400 and e.value.param == param, e.value.message
