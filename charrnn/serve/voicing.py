"""A request's voice on the server: the `tag` and `tag_strength` fields checked, `MODEL:VOICE`
names, the voice a session belongs to, and the engine work of a voiced choice, whose rows are one
(the voice) or, guided (strength other than 1), two: voiced then untagged, stepped together in the
batch and their raw logits combined by `guidance.Voicing.combine` before any filter.

A choice without a voice is run exactly as before (no `Voicing` at all). It does not draw (the
batch does) nor refuse what the engine cannot run: `Sampler.voicing` resolves a tag, with the same
one-line refusals as `charrnn sample --tag`, turned here into 400s naming the field.
"""

from __future__ import annotations

import json
import math
from collections.abc import Generator, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from charrnn.errors import InputError
from charrnn.infer.engine import EngineState, Forward
from charrnn.infer.guidance import Voicing
from charrnn.infer.voices import Tag, parse_tags
from charrnn.serve.protocol import ApiError, _api_words, _param_of


def _bad(param: str, message: str) -> ApiError:
    return ApiError(400, f"{param}: {message}", param)


def tag_field(value: Any) -> Tag:
    """A body's `tag`: absent, a voice's name, or {name: weight} (weights checked when resolved
    against the model's voices, which name the voice at fault)."""
    if value is None or isinstance(value, str):
        if value == "":
            raise _bad("tag", "a voice's name or {name: weight}, got an empty string")
        return value
    if isinstance(value, dict):
        return value
    raise _bad("tag", f"a voice's name or {{name: weight}}, got {value!r}")


def strength_field(value: Any) -> float:
    """A body's `tag_strength`: a number >= 0 (1 when absent)."""
    if value is None:
        return 1.0
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _bad("tag_strength", f"must be a number, got {value!r}")
    if value < 0:
        raise _bad("tag_strength", f"must be >= 0, got {value}")
    return float(value)


def fields(body: dict) -> tuple[Tag, float]:
    """A request body's `tag` and `tag_strength`, checked (not yet against a model)."""
    return tag_field(body.get("tag")), strength_field(body.get("tag_strength"))


def query_tag(items: Sequence[str]) -> Tag:
    """`/generate`'s `tag` query parameters: `tag=NAME`, or repeated `tag=NAME=WEIGHT` for a mix
    (as `charrnn sample --tag` takes them)."""
    if not items:
        return None
    if len(items) == 1 and "=" not in items[0]:
        return tag_field(items[0])
    try:
        return parse_tags(items)
    except InputError as e:
        raise _bad("tag", str(e).replace("--tag", "tag")) from None


def split_name(name: str) -> tuple[str, str | None]:
    """`MODEL:VOICE` → (MODEL, VOICE); a plain name → (name, None). A served model's name has no
    `:`, nor has a voice's."""
    head, sep, voice = name.partition(":")
    return (head, voice) if sep else (name, None)


def with_model_voice(tag: Tag, voice: str | None, model_name: str, names: Sequence[str]) -> Tag:
    """The tag a request asks for, given the voice its model name picks (`MODEL:VOICE`). Both may
    be given only when they ask for the same voice (`tag` is that name, or a mix of it alone);
    any other tag beside a `:VOICE` is a 400."""
    if voice is None:
        return tag
    if tag is None:
        return voice
    alone = tag == voice or (
        isinstance(tag, dict) and set(tag) == {voice} and _positive(tag[voice])
    )
    if not alone:
        raise _bad(
            "tag",
            f"model {model_name}:{voice} picks voice {voice!r}, and tag asks for {label_of(tag)}; "
            f"give one or the other (voices: {', '.join(names)})",
        )
    return voice


def _positive(w: object) -> bool:
    return isinstance(w, int | float) and not isinstance(w, bool) and w > 0


def label_of(tag: Tag) -> str:
    if tag is None:
        return "no voice"
    if isinstance(tag, str):
        return repr(tag)
    return " ".join(
        f"{k}={v:g}" if isinstance(v, int | float) else f"{k}={v!r}" for k, v in tag.items()
    )


def rows(voicing: Voicing | None) -> int:
    """Rows of the batch a choice steps: two when guided (voiced, untagged), else one."""
    return 2 if voicing is not None and voicing.paired else 1


def session_key(voicing: Voicing | None, names: Sequence[str]) -> str | None:
    """The voice a session belongs to, as stored beside it: the normalised weights by name and
    the strength (JSON); None for no voice."""
    if voicing is None or voicing.weights is None:
        return None
    mix = {n: float(w) for n, w in zip(names, voicing.weights, strict=True) if w > 0}
    return json.dumps({"tag": mix, "tag_strength": voicing.strength}, sort_keys=True)


def session_label(key: str | None) -> str:
    """A session's voice in words, for a message."""
    if key is None:
        return "no voice"
    d = json.loads(key)
    mix = d["tag"]
    voice = next(iter(mix)) if len(mix) == 1 else " ".join(f"{k}={v:.4g}" for k, v in mix.items())
    return f"voice {voice} at strength {d['tag_strength']:g}"


# --- the engine work of a voiced choice ------------------------------------------------------
def start(engine: Any, voicing: Voicing | None, batch: int = 1) -> EngineState:
    """Fresh rows: the voice's (and guided, each sample's untagged row after its voiced one)."""
    if voicing is None:
        return engine.initial_state(batch)
    state = voicing.initial_state(batch)
    return state.rows if voicing.paired else state  # type: ignore[attr-defined]


def head(engine: Any, voicing: Voicing | None, state: EngineState) -> np.ndarray:
    """The (guided) logits a choice's rows predict, one row (a session resumed)."""
    logits = engine.head_logits(state)
    if rows(voicing) == 1:
        return logits[:1]
    assert voicing is not None
    return voicing.combine(logits[0:1], logits[1:2])


def read(
    engine: Any, voicing: Voicing | None, ids: Sequence[int], base: EngineState | None
) -> Generator[None, None, Forward]:
    """Read ids from base (None: fresh rows with the voice) pausing as `forward_steps` does;
    the Forward's logits (1 × vocab) are the guided ones and its state holds the choice's rows."""
    if base is None and voicing is not None:
        base = start(engine, voicing)
    if rows(voicing) == 1:
        return (yield from engine.forward_steps(ids, base, last_only=True))
    assert voicing is not None and base is not None
    voiced = yield from engine.forward_steps(ids, base.select([0]), last_only=True)
    plain = yield from engine.forward_steps(ids, base.select([1]), last_only=True)
    logits = voicing.combine(voiced.logits[-1:], plain.logits[-1:])
    return Forward(logits, type(voiced.state).concat([voiced.state, plain.state]))


def voice_of(
    model: Any, voice: str | None, opts: Any, choices: int, max_streams: int
) -> tuple[Any, Voicing | None]:
    """The request's options with the voice it asks for (its `tag`, or the `:VOICE` of its model
    name) and the engine with that voice (None: no voice, run as before). Refusals are 400s
    naming the field; a guided request whose two streams per choice exceed --max-streams is one."""
    names = model.voices.names if model.voices else ()
    opts = replace(opts, tag=with_model_voice(opts.tag, voice, model.name, names))
    if model.voices is None and opts.tag is None:
        if opts.tag_strength != 1:
            raise _bad("tag_strength", "this model has no voices to steer toward")
        return opts, None
    try:
        voicing = model.sampler.voicing(opts)
    except InputError as e:
        msg = _api_words(str(e))
        param = _param_of(str(e)) or "tag"
        raise ApiError(400, msg if msg.startswith(param) else f"{param}: {msg}", param) from None
    if voicing.weights is None:
        return opts, None
    if rows(voicing) * choices > max_streams:
        raise _bad(
            "tag_strength",
            f"{voicing.strength:g} runs two streams per choice (voiced and untagged): "
            f"{choices} choice(s) need {2 * choices}; this server runs at most {max_streams} "
            "at once (--max-streams)",
        )
    return opts, voicing


SCORE_VOICE = ("tag", "by_tag", "prior")  # /v1/score's voice fields


def score_voice(model: Any, voice: str | None, body: dict, per_char: bool) -> Any:
    """What /v1/score reads a text with: a voice's weights (`tag` or `MODEL:VOICE`; None: no
    voice), or with `by_tag: true` the prior's name (every voice is read, as `score --by-tag`)."""
    by_tag, prior = body.get("by_tag", False), body.get("prior")
    if not isinstance(by_tag, bool):
        raise _bad("by_tag", f"must be true or false, got {by_tag!r}")
    if prior is not None and not by_tag:
        raise _bad("prior", "weighs the voices of by_tag: give by_tag: true")
    names = model.voices.names if model.voices else ()
    if by_tag:
        if model.voices is None:
            raise _bad("by_tag", f"model {model.name!r} has no voices to compare")
        if per_char:
            raise _bad("by_tag", "scores whole texts; leave out per_char")
        if voice is not None or body.get("tag") is not None:
            raise _bad("by_tag", "reads the text under every voice; leave out tag and :VOICE")
        if prior is None:
            prior = "uniform"
        if prior not in ("uniform", "corpus"):
            raise _bad("prior", f"must be 'uniform' or 'corpus', got {prior!r}")
        try:
            model.voices.priors(prior)
        except InputError as e:
            raise _bad("prior", _api_words(str(e)).removeprefix("prior ")) from None
        return prior
    tag = with_model_voice(tag_field(body.get("tag")), voice, model.name, names)
    if tag is None:
        return None
    if model.voices is None:
        raise _bad("tag", "this model has no voices; leave out tag")
    try:
        return model.voices.weights(tag)
    except InputError as e:
        raise _bad("tag", str(e)) from None
