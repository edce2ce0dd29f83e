"""The wire contract: OpenAI's completions request checked field by field into charrnn's options, the
response and streamed-chunk shapes, and OpenAI's error shape. Pure functions and data; no I/O.

Every refusal is an `ApiError` carrying the HTTP status, OpenAI's error type and the parameter at
fault, so a client library shows a useful message. It does not run models or know the server's state
beyond the limits it is given.
"""

from __future__ import annotations

import math
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from charrnn.digits import decimal
from charrnn.errors import CharRNNError
from charrnn.infer.controls import MAX_NO_REPEAT, UNTILS, Rules
from charrnn.infer.logits import Filters
from charrnn.infer.sampler import MAX_SEED, Options
from charrnn.serve.logprobs import LogprobEntry

INTERNAL = "internal error; see the server log"  # all a client is told of a bug or a fault
MAX_LOGPROBS = 20
MAX_STOPS = 16
MAX_TEMPERATURE = 100.0
OPENAI_NEUTRAL = {  # parameters a character model cannot honour, and the values that ask nothing
    "suffix": ("", None),  # a left-to-right model cannot insert
}
KNOWN = {
    "model", "prompt", "max_tokens", "temperature", "top_p", "n", "stop", "seed", "stream",
    "stream_options", "echo", "logprobs", "user", "best_of", "top_k", "min_p", "no_repeat", "ban",
    "until", "min_words", "max_words", "unknown", "session", "frequency_penalty",
    "presence_penalty", "logit_bias", "logit_bias_chars", "tag", "tag_strength", *OPENAI_NEUTRAL,
}  # fmt: skip
MAX_BIAS_ENTRIES = 300  # OpenAI's own cap on logit_bias
MAX_BEST_OF = 20  # and on best_of
ID_DIGITS = 9  # a vocabulary id has fewer digits than this (a longer key names no character)


class ApiError(CharRNNError):
    """A refused request: status, OpenAI error type, the parameter at fault."""

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        kind: str = "invalid_request_error",
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.kind = status, message, param, kind
        self.code, self.headers = code, headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        }


@dataclass(frozen=True)
class Limits:
    """The server's caps on one request."""

    max_chars: int = 4000
    max_prompt: int = 20_000
    max_n: int = 16
    # log-probabilities one answer lists for text it was given: echo with logprobs (prompt chars
    # × n × (1 + logprobs)) and /v1/score's per_char (chars × (1 + top_k)); each is ~30 bytes of
    # JSON, so an answer stays within a few MB, and the playground's 20,000 chars at top_k 5 fit
    max_echo: int = 120_000


Prompt = str | list[int]  # text, or vocabulary ids (OpenAI's tokens)


@dataclass
class Completion:
    """A checked completion request. `prompts` holds each prompt as given: text, or a list of
    vocabulary ids (checked against the model's vocabulary by the service)."""

    model: str | None
    prompts: list[Prompt]
    opts: Options
    n: int
    seed: int | None
    stream: bool = False
    echo: bool = False
    logprobs: int | None = None
    include_usage: bool = False
    session: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    logit_bias: dict[int, float] = field(default_factory=dict)  # vocabulary id → bias
    logit_bias_chars: dict[str, float] = field(default_factory=dict)  # character → bias
    best_of: int = 1  # candidates per prompt, of which the n most probable are returned


_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.\[\]-]{1,64}")


def shown(name: str) -> str:
    """A parameter's name as a one-line message can show it: as it is when plain, else quoted
    (a client's unknown key may hold a line end) and cut short."""
    return (
        name if _PLAIN_NAME.fullmatch(name) else repr(name[:64]) + ("…" if len(name) > 64 else "")
    )


def too_many_logprobs(chars: int, k: int, most: int, name: str) -> str:
    """Why an answer listing each of `chars` characters' log-probability and its k alternatives
    is refused: the figures it would list against --max-echo, and the characters that fit."""
    return (
        f"{chars} characters with {name} {k} would list {chars * (1 + k)} log-probabilities; "
        f"this server lists at most {most} per answer (--max-echo): {most // (1 + k)} "
        f"characters at {name} {k}"
    )


def _bad(param: str, message: str) -> ApiError:
    return ApiError(400, f"{shown(param)}: {message}", param)


def _int(body: dict, key: str, default: int | None, lo: int, hi: int | None) -> int | None:
    v = body.get(key, default)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, int):
        raise _bad(key, f"must be an integer, got {v!r}")
    if v < lo or (hi is not None and v > hi):
        raise _bad(key, f"must be between {lo} and {hi}, got {v}" if hi else f"must be >= {lo}")
    return v


def _num(body: dict, key: str, default: float | None, lo: float, hi: float) -> float | None:
    v = body.get(key, default)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise _bad(key, f"must be a number, got {v!r}")
    if not lo <= v <= hi:
        raise _bad(key, f"must be between {lo:g} and {hi:g}, got {v}")
    return float(v)


def _bool(body: dict, key: str) -> bool:
    v = body.get(key, False)
    if v is None:
        return False
    if not isinstance(v, bool):
        raise _bad(key, f"must be true or false, got {v!r}")
    return v


def _strings(body: dict, key: str, most: int) -> tuple[str, ...]:
    v = body.get(key)
    if v is None:
        return ()
    items = [v] if isinstance(v, str) else v
    if not isinstance(items, list) or not all(isinstance(s, str) and s for s in items):
        raise _bad(key, "must be a non-empty string or a list of non-empty strings")
    if len(items) > most:
        raise _bad(key, f"at most {most} strings")
    return tuple(items)


def _neutral(body: dict) -> None:
    """OpenAI parameters a character model cannot honour: fine at their neutral values."""
    for key, neutral in OPENAI_NEUTRAL.items():
        if key in body and not any(body[key] == v and type(body[key]) is type(v) for v in neutral):
            raise _bad(key, "not supported by a character model (leave it out or at its default)")


def _bias(body: dict, key: str, chars: bool) -> dict:
    """logit_bias (decimal id strings, as OpenAI's keys are) or logit_bias_chars (single
    characters) → {id or char: bias}, each bias in [-100, 100]."""
    v = body.get(key)
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise _bad(key, f"must be an object, got {v!r}")
    if len(v) > MAX_BIAS_ENTRIES:
        raise _bad(key, f"at most {MAX_BIAS_ENTRIES} entries")
    out: dict = {}
    for k, bias in v.items():
        if chars and len(k) != 1:
            raise _bad(key, f"keys are single characters, got {k!r}")
        if not chars and decimal(k, ID_DIGITS) is None:
            shown = k if len(k) <= 20 else f"{k[:20]}… ({len(k)} characters)"
            raise _bad(key, f"keys are vocabulary ids as decimal strings, got {shown!r}")
        if isinstance(bias, bool) or not isinstance(bias, int | float) or not math.isfinite(bias):
            raise _bad(key, f"{k!r}: the bias must be a number, got {bias!r}")
        if not -100 <= bias <= 100:
            raise _bad(key, f"{k!r}: the bias must be between -100 and 100, got {bias}")
        out[k if chars else int(k)] = float(bias)
    return out


def parse_completion(body: Any, limits: Limits) -> Completion:
    """A /v1/completions body → a Completion, or an ApiError naming the parameter at fault."""
    from charrnn.serve.voicing import fields  # here: it raises this module's errors

    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    unknown = sorted(set(body) - KNOWN)
    if unknown:
        raise _bad(unknown[0], "unrecognized request argument")
    _neutral(body)
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise _bad("model", f"must be a string, got {model!r}")
    prompts = _prompts(body.get("prompt", ""), limits)
    length = _int(body, "max_tokens", 16, 0, limits.max_chars)
    n = _int(body, "n", 1, 1, limits.max_n) or 1
    best_of = _int(body, "best_of", n, 1, MAX_BEST_OF) or n
    if best_of < n:
        raise _bad("best_of", f"must be at least n ({n}), got {best_of}")
    if best_of > n and _bool(body, "stream"):
        raise _bad("best_of", "cannot be used with stream (the best are known only at the end)")
    streams = len(prompts) * best_of
    if streams > limits.max_n:
        raise _bad(
            "best_of" if best_of > n else "n" if len(prompts) == 1 else "prompt",
            f"{len(prompts)} prompt(s) × {'best_of' if best_of > n else 'n'}={best_of} = "
            f"{streams} streams; this server runs at most {limits.max_n} per request",
        )
    seed = _int(body, "seed", None, 0, MAX_SEED - 1)
    temperature = _num(body, "temperature", 1.0, 0.0, MAX_TEMPERATURE)
    top_p = _num(body, "top_p", None, 0.0, 1.0)
    if top_p == 0.0:
        raise _bad("top_p", "must be above 0")
    min_p = _num(body, "min_p", None, 0.0, 1.0)
    top_k = _int(body, "top_k", None, 0, None)
    logprobs = _int(body, "logprobs", None, 0, MAX_LOGPROBS)
    until = body.get("until")
    if until is not None and until not in UNTILS:
        raise _bad("until", f"must be one of {', '.join(UNTILS)}, got {until!r}")
    unknown_chars = body.get("unknown", "error")
    if unknown_chars not in ("error", "skip"):
        raise _bad("unknown", f"must be 'error' or 'skip', got {unknown_chars!r}")
    rules = Rules(
        _strings(body, "ban", 256),
        _int(body, "no_repeat", None, 1, MAX_NO_REPEAT),
        until,
        _int(body, "min_words", None, 1, None),
        _int(body, "max_words", None, 1, None),
    )
    opts = Options(
        length or 0,
        Filters(
            temperature if temperature is not None else 1.0,
            top_k or None,
            top_p,
            min_p,
            _num(body, "frequency_penalty", 0.0, -2.0, 2.0) or 0.0,
            _num(body, "presence_penalty", 0.0, -2.0, 2.0) or 0.0,
        ),
        rules,
        _strings(body, "stop", MAX_STOPS) or None,
        unknown_chars,
        *fields(body),  # tag, tag_strength: resolved against the model's voices by the service
    )
    try:
        opts.check()
    except CharRNNError as e:
        raise ApiError(400, _api_words(str(e)), _param_of(str(e))) from None
    echo = _bool(body, "echo")
    if echo and logprobs is not None:
        echoed = sum(len(p) for p in prompts) * (n or 1)
        if echoed * (1 + logprobs) > limits.max_echo:
            raise _bad("echo", too_many_logprobs(echoed, logprobs, limits.max_echo, "logprobs"))
    stream_opts = body.get("stream_options") or {}
    if not isinstance(stream_opts, dict) or set(stream_opts) - {"include_usage"}:
        raise _bad("stream_options", "only {'include_usage': true|false} is known")
    session = body.get("session")
    if session is not None and not isinstance(session, str):
        raise _bad("session", f"must be a string, got {session!r}")
    if session is not None and (n or 1) > 1:
        raise _bad("n", "a session continues one text: n must be 1")
    if session is not None and len(prompts) > 1:
        raise _bad("prompt", "a session continues one text: give one prompt")
    if session is not None and best_of > n:
        raise _bad("best_of", "a session continues one text: best_of must be 1")
    if "user" in body and not isinstance(body["user"], str | None):
        raise _bad("user", "must be a string")
    return Completion(
        model,
        prompts,
        opts,
        n or 1,
        seed,
        _bool(body, "stream"),
        echo,
        logprobs,
        bool(stream_opts.get("include_usage")),
        session,
        logit_bias=_bias(body, "logit_bias", chars=False),
        logit_bias_chars=_bias(body, "logit_bias_chars", chars=True),
        best_of=best_of,
    )


def _prompts(prompt: Any, limits: Limits) -> list[Prompt]:
    """OpenAI's four prompt shapes: a string, a list of strings, a list of ids (one prompt), a
    list of lists of ids. Ids are range-checked later, against the model's vocabulary."""
    if prompt is None:
        return [""]
    if isinstance(prompt, str):
        items: list = [prompt]
    elif isinstance(prompt, list) and prompt and all(_is_id(t) for t in prompt):
        items = [prompt]
    elif (isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt)) or (
        isinstance(prompt, list)
        and prompt
        and all(isinstance(p, list) and all(_is_id(t) for t in p) for p in prompt)
    ):
        items = prompt
    else:
        raise _bad(
            "prompt",
            "must be a string, a list of strings, a list of token ids, or a list of lists of ids",
        )
    for p in items:
        if len(p) > limits.max_prompt:
            raise _bad("prompt", f"{len(p)} characters; this server takes {limits.max_prompt}")
    return items


def _is_id(t: object) -> bool:
    return isinstance(t, int) and not isinstance(t, bool)


_FLAG = re.compile(r"--([a-z][a-z-]*)")
_RENAMED = {"temp": "temperature", "length": "max_tokens"}


def _api_name(flag: str) -> str:
    name = flag.replace("-", "_")
    return _RENAMED.get(name, name)


def _api_words(message: str) -> str:
    """A library error written for the command line, in the API's parameter names."""
    return _FLAG.sub(lambda m: _api_name(m.group(1)), message)


def _param_of(message: str) -> str | None:
    """The parameter a library error names first (`--min-words …` → min_words)."""
    m = _FLAG.search(message)
    return _api_name(m.group(1)) if m else None


# --- responses --------------------------------------------------------------------------------
FINISH = {"stop": "stop", "until": "stop", "dead_end": "stop", "length": "length"}


def finish_reason(reason: str) -> str:
    """OpenAI's finish_reason for charrnn's: the text ended on its own (`stop`) or was cut by a
    cap, the time limit included (`length`)."""
    return FINISH.get(reason, "length")


def new_id() -> str:
    return "cmpl-" + secrets.token_hex(12)


def logprobs_shape(entries: list[LogprobEntry], offset: int) -> dict[str, Any]:
    """OpenAI's completions logprobs object for these characters, text_offset from `offset`."""
    return {
        "tokens": [e[0] for e in entries],
        "token_logprobs": [e[1] for e in entries],
        "top_logprobs": [e[2] for e in entries],
        "text_offset": list(range(offset, offset + len(entries))),
    }


def chunk(cid: str, created: int, model: str, choices: list[dict], usage=None) -> dict:
    out = {"id": cid, "object": "text_completion", "created": created, "model": model}
    out["choices"] = choices
    if usage is not None:
        out["usage"] = usage
    return out


def usage(prompts: list[str], texts: list[str]) -> dict[str, int]:
    """OpenAI's usage: characters of every prompt read and every choice written."""
    read, made = sum(len(p) for p in prompts), sum(len(t) for t in texts)
    return {"prompt_tokens": read, "completion_tokens": made, "total_tokens": read + made}


def now() -> int:
    return int(time.time())
