"""Chat templates: how a list of chat messages becomes one prompt for a character model, and where
the model's reply ends.

A character model has no notion of roles; it continues text. A template declares the text that
introduces each role (its prefix), the text between messages (the separator), and extra stop
strings. The messages are rendered as `prefix + content`, joined by the separator, then followed
by the separator and the assistant's prefix, after which the model writes; the reply ends where the
model writes the separator followed by a role's prefix, or a stop string. A prefix may hold
`{name}`: a message's `name` is written there (a play's speakers), else the role's default name.

Presets: `plain` (`User: …` / `Assistant: …` lines), `play` (`NAME:\\n…` speeches separated by a
blank line, as in plays), `chatbot` (chatbot-rnn's `> ` before the user's lines). Pure functions
and data; the server checks a template against each model's vocabulary at start-up.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from charrnn.errors import InputError

ROLES = ("system", "user", "assistant")
FIELDS = {*ROLES, "separator", "stop", "names"}


@dataclass(frozen=True)
class Template:
    """Role prefixes (each may hold `{name}`), the separator, extra stops, default names."""

    system: str = ""
    user: str = "User: "
    assistant: str = "Assistant: "
    separator: str = "\n"
    stop: tuple[str, ...] = ()
    names: dict[str, str] = field(default_factory=dict)
    label: str = "custom"  # the spec it came from, for messages and /v1/models

    def prefix(self, role: str, name: str | None = None) -> str:
        """The text that opens a message of this role (with this speaker's name, if given)."""
        text = getattr(self, role)
        if "{name}" not in text:
            return text
        return text.replace("{name}", name or self.names.get(role, role.capitalize()))

    def renders_names(self, role: str) -> bool:
        return "{name}" in getattr(self, role)

    def stops(self, names: dict[str, set[str]] | None = None) -> tuple[str, ...]:
        """Where a reply ends: the separator followed by any role's prefix (as written, trailing
        spaces and line ends dropped so `User:` at the end of a line stops it too), for the
        default names and every name in `names` (role → names used), then the declared stops."""
        out: list[str] = []
        for role in ROLES:
            speakers: set[str | None] = {None}
            if self.renders_names(role):
                speakers |= set((names or {}).get(role, ()))
            for speaker in sorted(speakers, key=lambda s: s or ""):
                head = self.prefix(role, speaker).rstrip(" \t\n")
                if head:
                    out.append(self.separator + head)
        out += [s for s in self.stop if s]
        return tuple(dict.fromkeys(out))

    def text(self) -> str:
        """Every character a template itself writes (for the vocabulary check)."""
        parts = [self.prefix(r) for r in ROLES] + [self.separator, *self.stop]
        return "".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "spec": self.label,
            "system": self.system,
            "user": self.user,
            "assistant": self.assistant,
            "separator": self.separator,
            "stop": list(self.stop),
            "names": {r: self.names.get(r, r.capitalize()) for r in ROLES if self.renders_names(r)},
        }


PRESETS: dict[str, Template] = {
    "plain": Template(
        system="System: ",
        user="{name}: ",
        assistant="{name}: ",
        separator="\n",
        stop=("\n",),  # a message is a line: the reply ends with its line
        names={"user": "User", "assistant": "Assistant"},
        label="plain",
    ),
    # a play: each speech is the speaker's name in capitals on its own line, then the lines, then a
    # blank line; a system message is written as it is (a stage direction, a scene heading)
    "play": Template(
        system="",
        user="{name}:\n",
        assistant="{name}:\n",
        separator="\n\n",
        stop=("\n\n",),
        names={"user": "USER", "assistant": "ASSISTANT"},
        label="play",
    ),
    # chatbot-rnn (pender): the user's lines start with "> ", the reply is the next line
    "chatbot": Template(
        system="", user="> ", assistant="", separator="\n", stop=("\n",), label="chatbot"
    ),
}


def parse_template(spec: str) -> Template:
    """A preset (`plain`, `play`, `chatbot`; `plain:ASSISTANT[:USER]` and `play:ASSISTANT[:USER]`
    name the speakers), a JSON object, or the path of a JSON file holding one."""
    spec = spec.strip()
    if spec.startswith("{"):
        return _from_json(spec, "the JSON template")
    name, _, rest = spec.partition(":")
    if name in PRESETS:
        return _named(PRESETS[name], rest, spec)
    path = Path(spec)
    if path.suffix == ".json" or path.is_file():
        try:
            return replace(_from_json(path.read_text("utf-8"), spec), label=spec)
        except OSError as e:
            raise InputError(f"--chat-template {spec}: cannot read ({e.strerror})") from None
    raise InputError(
        f"--chat-template {spec}: not a preset ({', '.join(PRESETS)}), a JSON object or a .json file"
    )


def _named(base: Template, rest: str, spec: str) -> Template:
    if not rest:
        return base
    speakers = rest.split(":")
    if not base.renders_names("assistant") or len(speakers) > 2 or not all(speakers):
        raise InputError(
            f"--chat-template {spec}: give {base.label}:ASSISTANT or {base.label}:ASSISTANT:USER"
            if base.renders_names("assistant")
            else f"--chat-template {spec}: the {base.label} preset has no speaker names"
        )
    names = {**base.names, "assistant": speakers[0]}
    if len(speakers) == 2:
        names["user"] = speakers[1]
    return replace(base, names=names, label=spec)


def _from_json(text: str, where: str) -> Template:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"--chat-template {where}: not valid JSON ({e.msg})") from None
    if not isinstance(obj, dict):
        raise InputError(f"--chat-template {where}: must be a JSON object")
    extra = sorted(set(obj) - FIELDS)
    if extra:
        raise InputError(
            f"--chat-template {where}: unknown field {extra[0]!r} (known: {', '.join(sorted(FIELDS))})"
        )
    for key in (*ROLES, "separator"):
        if key in obj and not isinstance(obj[key], str):
            raise InputError(f"--chat-template {where}: {key!r} must be a string")
    if "user" not in obj or "assistant" not in obj:
        raise InputError(f"--chat-template {where}: 'user' and 'assistant' prefixes are required")
    stop = obj.get("stop", [])
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
        raise InputError(f"--chat-template {where}: 'stop' must be a list of non-empty strings")
    names = obj.get("names", {})
    if not isinstance(names, dict) or not all(
        k in ROLES and isinstance(v, str) and v for k, v in names.items()
    ):
        raise InputError(
            f"--chat-template {where}: 'names' maps system/user/assistant to non-empty names"
        )
    t = Template(
        system=obj.get("system", ""),
        user=obj["user"],
        assistant=obj["assistant"],
        separator=obj.get("separator", "\n"),
        stop=tuple(stop),
        names=names,
        label="custom",
    )
    if not t.separator and not t.stop:
        raise InputError(
            f"--chat-template {where}: with an empty separator, give 'stop' (else a reply never "
            "ends before max_tokens)"
        )
    return t


def missing_chars(template: Template, chars: set[str] | frozenset[str]) -> list[str]:
    """The characters the template writes that a vocabulary lacks, in order of appearance."""
    return list(dict.fromkeys(c for c in template.text() if c not in chars))


@dataclass
class Message:
    """One chat message, checked: a role of ROLES, its text, and the speaker's name if given."""

    role: str
    content: str
    name: str | None = None


@dataclass
class Rendered:
    """A conversation as the model reads it, and where the reply ends."""

    prompt: str
    stops: tuple[str, ...]
    continued: bool  # the last message was the assistant's: its text is continued


def render(template: Template, messages: list[Message]) -> Rendered:
    """The prompt: each message as prefix + content, joined by the separator; then, unless the
    last message is the assistant's (which is continued as it stands), the separator and the
    assistant's prefix."""
    parts = [template.prefix(m.role, m.name) + m.content for m in messages]
    prompt = template.separator.join(parts)
    continued = bool(messages) and messages[-1].role == "assistant"
    if not continued:
        opener = template.prefix("assistant")
        prompt = prompt + template.separator + opener if parts else opener
    used: dict[str, set[str]] = {}
    for m in messages:
        if m.name:
            used.setdefault(m.role, set()).add(m.name)
    return Rendered(prompt, template.stops(used), continued)
