"""OpenAI's chat completions contract for a character model: the request checked field by field (the
sampling options through the completions parser, so both endpoints read them alike), and the chat
response, chunk and logprobs shapes. Pure functions and data; no I/O.

What a character model cannot honour is refused naming the parameter (tools, tool_choice other than
"none", response_format other than text, audio, non-text content parts, ...): nothing is silently
ignored. It does not render messages (`chat_template`) or run models.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from charrnn.serve.chat_template import Message
from charrnn.serve.logprobs import LogprobEntry
from charrnn.serve.protocol import (
    MAX_LOGPROBS,
    ApiError,
    Completion,
    Limits,
    parse_completion,
    shown,
)

# passed to the completions parser as they are
SHARED = (
    "model", "temperature", "top_p", "n", "stop", "seed", "stream", "stream_options", "user",
    "frequency_penalty", "presence_penalty", "logit_bias", "logit_bias_chars", "top_k", "min_p",
    "no_repeat", "ban", "until", "min_words", "max_words", "unknown", "session", "tag",
    "tag_strength",
)  # fmt: skip
CHAT_ONLY = {"messages", "max_tokens", "max_completion_tokens", "logprobs", "top_logprobs"}
# OpenAI's chat parameters charrnn cannot honour, and the values that ask nothing of it
NEUTRAL: dict[str, tuple[Any, ...]] = {
    "tools": (None, []),
    "tool_choice": (None, "none"),
    "parallel_tool_calls": (None, True, False),  # means nothing without tools
    "functions": (None, []),
    "function_call": (None, "none"),
    "response_format": (None, {"type": "text"}),
    "modalities": (None, ["text"]),
    "audio": (None,),
    "prediction": (None,),
    "store": (None, False),
    "metadata": (None, {}),
    "reasoning_effort": (None,),
    "service_tier": (None, "auto", "default"),
    "web_search_options": (None,),
    "verbosity": (None,),
    "moderation": (None,),
    "prompt_cache_options": (None, {}),
    "prompt_cache_retention": (None, "in_memory", "24h"),  # a cache lifetime: a hint
}
HINTS = ("safety_identifier", "prompt_cache_key")  # strings that ask nothing of the output
MESSAGE_KEYS = {"role", "content", "name", "refusal", "tool_calls", "function_call", "audio"}
# distinct speaker names per request: each is a stop string (`chat_template.Template.stops`); a
# play's cast fits many times over, a list of thousands built to slow the server does not
MAX_NAMES = 256


@dataclass
class Chat:
    """A checked chat request: its messages and the options as a completion of one prompt."""

    messages: list[Message]
    comp: Completion


def _bad(param: str, message: str) -> ApiError:
    return ApiError(400, f"{shown(param)}: {message}", param)


def parse_chat(body: Any, limits: Limits) -> Chat:
    """A /v1/chat/completions body → a Chat, or an ApiError naming the parameter at fault."""
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    unknown = sorted(set(body) - set(SHARED) - CHAT_ONLY - set(NEUTRAL) - set(HINTS))
    if unknown:
        raise _bad(unknown[0], "unrecognized request argument")
    for key in HINTS:
        if body.get(key) is not None and not isinstance(body[key], str):
            raise _bad(key, "must be a string")
    for key, neutral in NEUTRAL.items():
        if key in body and not any(_same(body[key], v) for v in neutral):
            raise _bad(key, f"not supported by a character model ({_why(key)})")
    messages = _messages(body.get("messages"))
    length = _max_tokens(body, limits)
    logprobs, top = body.get("logprobs", False), body.get("top_logprobs")
    if logprobs is not None and not isinstance(logprobs, bool):
        raise _bad("logprobs", f"must be true or false, got {logprobs!r}")
    if top is not None and (isinstance(top, bool) or not isinstance(top, int)):
        raise _bad("top_logprobs", f"must be an integer, got {top!r}")
    if top is not None and not 0 <= top <= MAX_LOGPROBS:
        raise _bad("top_logprobs", f"must be between 0 and {MAX_LOGPROBS}, got {top}")
    if top is not None and not logprobs:
        raise _bad("top_logprobs", "needs logprobs: true")
    shared = {k: body[k] for k in SHARED if k in body}
    shared.setdefault("unknown", "skip")  # a chat user types anything: skip what the model lacks
    shared.update(prompt="", max_tokens=length, logprobs=(top or 0) if logprobs else None)
    comp = parse_completion(shared, limits)
    return Chat(messages, comp)


def _same(a: Any, b: Any) -> bool:
    return a == b and type(a) is type(b)


def _why(key: str) -> str:
    if key in ("tools", "tool_choice", "functions", "function_call", "parallel_tool_calls"):
        return "it writes text and cannot call tools; leave it out or set it to none"
    if key == "response_format":
        return 'it cannot promise JSON; only {"type": "text"}'
    if key in ("store", "metadata"):
        return "this server stores no completions"
    return "leave it out or at its default"


def _max_tokens(body: dict, limits: Limits) -> int:
    """max_completion_tokens (OpenAI's current name) or max_tokens (its older one); unset: the
    server's --max-chars, as OpenAI's unset means as many as the model may write."""
    given = [k for k in ("max_completion_tokens", "max_tokens") if body.get(k) is not None]
    if not given:
        return limits.max_chars
    key = given[0]
    v = body[key]
    if isinstance(v, bool) or not isinstance(v, int):
        raise _bad(key, f"must be an integer, got {v!r}")
    if not 0 <= v <= limits.max_chars:
        raise _bad(key, f"must be between 0 and {limits.max_chars}, got {v}")
    if len(given) == 2 and body["max_tokens"] != v:
        raise _bad("max_tokens", "differs from max_completion_tokens; give one")
    return v


def _messages(raw: Any) -> list[Message]:
    if not isinstance(raw, list) or not raw:
        raise _bad("messages", "a non-empty list of messages is required")
    messages = [_message(m, f"messages[{i}]") for i, m in enumerate(raw)]
    names = {m.name for m in messages if m.name}
    if len(names) > MAX_NAMES:
        raise _bad(
            "messages",
            f"{len(names)} distinct speaker names; a request may use at most {MAX_NAMES}",
        )
    return messages


def _message(m: Any, where: str) -> Message:
    if not isinstance(m, dict):
        raise _bad(where, "must be an object with role and content")
    extra = sorted(set(m) - MESSAGE_KEYS)
    if extra:
        raise _bad(f"{where}.{extra[0]}", "unrecognized message field")
    role = m.get("role")
    if role == "developer":  # OpenAI's newer name for the system role
        role = "system"
    if role in ("tool", "function"):
        raise _bad(f"{where}.role", f"{role} messages need tools, which a character model lacks")
    if role not in ("system", "user", "assistant"):
        raise _bad(f"{where}.role", f"must be system, developer, user or assistant, got {role!r}")
    if m.get("refusal") is not None:
        raise _bad(f"{where}.refusal", "a refusal is not text to continue: send it as content")
    for key in ("tool_calls", "function_call", "audio"):
        if m.get(key) not in (None, []):
            raise _bad(f"{where}.{key}", "not supported by a character model")
    name = m.get("name")
    if name is not None and (not isinstance(name, str) or not name):
        raise _bad(f"{where}.name", "must be a non-empty string")
    return Message(role, _content(m.get("content"), f"{where}.content", role), name)


def _content(content: Any, where: str, role: str) -> str:
    """A string, or a list of text parts (joined); other part types are refused."""
    if isinstance(content, str):
        return content
    if content is None and role == "assistant":
        return ""
    if not isinstance(content, list):
        raise _bad(where, "must be a string or a list of text parts")
    texts = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind != "text":
            shown = f"{kind} parts" if isinstance(kind, str) else "parts other than text"
            raise _bad(f"{where}[{j}]", f"{shown} are not supported by a character model")
        if not isinstance(part.get("text"), str):
            raise _bad(f"{where}[{j}].text", "must be a string")
        texts.append(part["text"])
    return "".join(texts)


# --- responses --------------------------------------------------------------------------------
def new_chat_id() -> str:
    return "chatcmpl-" + secrets.token_hex(12)


def _token(ch: str, lp: float) -> dict[str, Any]:
    return {"token": ch, "logprob": lp, "bytes": list(ch.encode("utf-8"))}


def chat_logprobs(entries: list[LogprobEntry]) -> dict[str, Any]:
    """OpenAI's chat logprobs object: one record per generated character."""
    content = []
    for ch, lp, top in entries:
        rec = _token(ch, lp if lp is not None else 0.0)
        rec["top_logprobs"] = [_token(c, v) for c, v in (top or {}).items()]
        content.append(rec)
    return {"content": content, "refusal": None}


def chat_body(cid: str, created: int, model: str, fingerprint: str, choices: list[dict]) -> dict:
    return {
        "id": cid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": fingerprint,
        "choices": choices,
    }


def chat_chunk(
    cid: str, created: int, model: str, fingerprint: str, choices: list[dict], usage=None
) -> dict:
    out = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": fingerprint,
        "choices": choices,
    }
    if usage is not None:
        out["usage"] = usage
    return out
