"""`charrnn serve`: checkpoints as a local HTTP service (OpenAI-style completions, torch-rnn-server's
/generate, scoring, sessions, a playground page), run by uvicorn under charrnn's control.

The server binds its own socket (so `--port 0` picks a free port and the URL printed is the real
one), logs to stderr, and treats SIGINT/SIGTERM as the normal way to stop: stop accepting, finish
in-flight requests (bounded), commit sessions, exit 0.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import logging
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from charrnn.cli.console import console
from charrnn.errors import InputError, install_hint

LIMITS = "Limits"
CHAT = "Chat"
ACCESS = "Access"
GRACE = 10  # seconds in-flight requests get to finish after SIGINT/SIGTERM


def serve(
    checkpoints: Annotated[
        list[str] | None,
        typer.Argument(
            help="Checkpoints to serve, each PATH or NAME=PATH (a model is named after its run "
            "directory) \\[default: the newest runs/**/best.ckpt].",
            show_default=False,
        ),
    ] = None,
    host: Annotated[
        str, typer.Option(help="Address to bind; anything but loopback needs --api-key.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free one).")] = 8000,
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="CHARRNN_API_KEY",
            help="Require 'Authorization: Bearer KEY' on the API \\[env: CHARRNN_API_KEY].",
            show_envvar=False,
            rich_help_panel=ACCESS,
        ),
    ] = None,
    cors_origin: Annotated[
        list[str] | None,
        typer.Option(
            help="Let web pages from this origin call the API (repeatable; e.g. "
            "https://example.org).",
            rich_help_panel=ACCESS,
        ),
    ] = None,
    deterministic: Annotated[
        bool,
        typer.Option(
            "--deterministic",
            help="A seeded request returns exactly what `charrnn sample` gives, however full the "
            "batch (about 40 % less throughput under load; see docs/serving.md).",
        ),
    ] = False,
    max_chars: Annotated[
        int,
        typer.Option(
            min=1, help="Most characters one request may generate.", rich_help_panel=LIMITS
        ),
    ] = 4000,
    max_prompt: Annotated[
        int, typer.Option(min=0, help="Longest prompt, in characters.", rich_help_panel=LIMITS)
    ] = 20_000,
    max_n: Annotated[
        int, typer.Option(min=1, help="Most choices (n) per request.", rich_help_panel=LIMITS)
    ] = 16,
    max_echo: Annotated[
        int,
        typer.Option(
            min=0,
            help="Most log-probabilities one answer lists for text it was given: echo with "
            "logprobs (prompt characters × n × (1 + logprobs)) and /v1/score's per_char "
            "(characters × (1 + top_k)); keeps an answer to a few MB.",
            rich_help_panel=LIMITS,
        ),
    ] = 120_000,
    max_streams: Annotated[
        int,
        typer.Option(
            min=1,
            help="Streams generating at once (a score counts as one); more requests wait briefly, "
            "then get 429.",
            rich_help_panel=LIMITS,
        ),
    ] = 64,
    queue_timeout: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Seconds a request waits for a free stream before 429.",
            rich_help_panel=LIMITS,
        ),
    ] = 2.0,
    timeout: Annotated[
        float,
        typer.Option(min=0.1, help="Seconds a request may generate.", rich_help_panel=LIMITS),
    ] = 120.0,
    max_body: Annotated[
        int, typer.Option(min=1024, help="Largest request body, in bytes.", rich_help_panel=LIMITS)
    ] = 1 << 20,
    sessions: Annotated[
        Path | None,
        typer.Option(
            help="SQLite file of session states \\[default: ~/.cache/charrnn/sessions.sqlite].",
            show_default=False,
        ),
    ] = None,
    max_sessions: Annotated[
        int, typer.Option(min=1, help="Sessions kept; the least recently used go first.")
    ] = 10_000,
    chat: Annotated[
        bool,
        typer.Option(
            "--chat",
            help="Turn on POST /v1/chat/completions for every model, with the plain template "
            "(User: …/Assistant: … lines) where --chat-template names none.",
            rich_help_panel=CHAT,
        ),
    ] = False,
    chat_template: Annotated[
        list[str] | None,
        typer.Option(
            metavar="[MODEL=]SPEC",
            help="Chat through this template: MODEL=SPEC for that model alone, SPEC for every "
            "model not named (repeatable): a preset (plain, play, chatbot; play:HAMLET names the "
            'assistant), a JSON object {"system","user","assistant","separator","stop"} or a '
            ".json file.",
            rich_help_panel=CHAT,
        ),
    ] = None,
    threads: Annotated[
        int | None, typer.Option(min=1, help="CPU threads \\[default: every core].")
    ] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda, mps or auto.")] = "cpu",
) -> None:
    """Serve models over HTTP: OpenAI-style /v1/completions, /generate, /v1/score, a playground."""
    try:
        import uvicorn  # noqa: F401
    except ImportError:
        raise InputError(f"charrnn serve needs the serve extra: {install_hint('serve')}") from None
    from charrnn.cli.common import find_checkpoint
    from charrnn.data.dataset import cache_dir
    from charrnn.device import resolve_device
    from charrnn.serve.app import build_app
    from charrnn.serve.models import load_models, parse_spec
    from charrnn.serve.protocol import Limits
    from charrnn.serve.service import Settings

    key = api_key or None
    if not _loopback(host) and not key:
        raise InputError(
            f"--host {host} exposes the server beyond this machine: give --api-key "
            "(or $CHARRNN_API_KEY), or bind 127.0.0.1"
        )
    max_n = min(max_n, max_streams)  # a request's choices all run at once
    dev = resolve_device(device)  # before anything binds or loads: a missing GPU is one line
    if deterministic and dev != "cpu":
        here = f" ({dev} here)" if dev != device else ""
        raise InputError(
            f"--deterministic is a CPU engine mode; leave it out with --device {device}{here}"
        )
    specs = [parse_spec(s) for s in checkpoints] if checkpoints else []
    if not specs:
        specs = [parse_spec(str(find_checkpoint(None)))]
    settings = Settings(
        limits=Limits(max_chars, max_prompt, max_n, max_echo),
        max_streams=max_streams,
        queue_timeout=queue_timeout,
        timeout=timeout,
        max_body=max_body,
        api_key=key,
        cors_origins=tuple(cors_origin or ()),
        sessions=sessions or cache_dir() / "sessions.sqlite",
        max_sessions=max_sessions,
        deterministic=deterministic,
    )
    wanted = _chat_specs(chat_template or [], [name for name, _ in specs], chat)
    sock = _bind(host, port)  # before loading: a busy port fails at once
    models = load_models(specs, dev, threads or 0, deterministic)
    settings = dataclasses.replace(settings, chat=_chat_templates(wanted, models))
    app = build_app(models, settings)
    _logging()
    url = _url(host, sock.getsockname()[1])
    for m in models.values():
        info = m.info["model"]
        console.print(
            f"model {m.name}: {m.path} ({info['cell']} {info['layers']}×{info['hidden']}, "
            f"vocab {m.info['vocab']['size']})",
            highlight=False,
            markup=False,
        )
        if m.voices is not None:  # each is served as MODEL:VOICE too
            voices = ", ".join(f"{m.name}:{v}" for v in m.voices.names)
            console.print(f"voices of {m.name}: {voices}", highlight=False, markup=False)
    for name, template in settings.chat.items():
        console.print(f"chat {name}: template {template.label}", highlight=False, markup=False)
    mode = "deterministic" if deterministic else "fast"
    console.print(
        f"mode {mode}; sessions in {settings.sessions}; API key "
        f"{'required' if key else 'not required'}",
        highlight=False,
        markup=False,
    )
    console.print(f"serving on {url} (playground: {url}/)", highlight=False, markup=False)
    _run(app, sock)
    console.print("server stopped", highlight=False, markup=False)


def _chat_specs(given: list[str], names: list[str], chat: bool) -> dict[str, str]:
    """`--chat-template [MODEL=]SPEC` (and `--chat`) → model name → template spec. MODEL=SPEC
    turns chat on for that model alone; a spec without a model, or --chat (the plain template),
    for every model not named in another; nothing given and no --chat: no chat."""
    from charrnn.serve.models import NAME

    if not given and not chat:
        return {}
    default, per_model = None, {}
    for item in given:
        head, sep, rest = item.partition("=")
        if sep and NAME.fullmatch(head):
            if head not in names:
                raise InputError(
                    f"--chat-template {item}: no model named {head!r} is served "
                    f"(served: {', '.join(names)})"
                )
            if head in per_model:
                raise InputError(f"--chat-template: two templates for model {head!r}")
            per_model[head] = rest
        elif default is not None:
            raise InputError(
                f"--chat-template: {default!r} and {item!r} both apply to every model; "
                "give one as MODEL=SPEC"
            )
        else:
            default = item
    if default is None and chat:
        default = "plain"
    if default is None:
        return per_model
    return {name: per_model.get(name, default) for name in names}


def _chat_templates(wanted: dict[str, str], models: dict) -> dict:
    """Each model's template, parsed and checked against its vocabulary: a template writing a
    character the model has never seen is refused now, naming the characters."""
    from charrnn.serve.chat_template import missing_chars, parse_template

    out = {}
    for name, spec in wanted.items():
        template = parse_template(spec)
        missing = missing_chars(template, set(models[name].sampler.vocab.chars))
        if missing:
            shown = " ".join(repr(c) for c in missing[:20])
            raise InputError(
                f"--chat-template {spec}: model {name!r} has never seen {shown}; write a template "
                "from its own characters (docs/serving.md#chat)"
            )
        out[name] = template
    return out


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto given explicitly: asyncio turns Nagle off only on sockets that say IPPROTO_TCP, and
    # with Nagle on, a response on a kept-alive connection waited 40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise InputError(f"cannot listen on {host}:{port} ({e.strerror})") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _logging() -> None:
    """Access lines and warnings on stderr, plain."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    for name in ("charrnn.serve",):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(logging.INFO)
        logger.propagate = False


def _run(app, sock: socket.socket) -> None:
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            """uvicorn's handlers, without raising the signal again afterwards: a signal is how
            a server is meant to stop, so the command exits 0."""
            sigs = (signal.SIGINT, signal.SIGTERM)
            old = {s: signal.signal(s, self.handle_exit) for s in sigs}
            try:
                yield
            finally:
                for s, h in old.items():
                    signal.signal(s, h)

    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=GRACE,
        lifespan="on",
        server_header=False,
    )
    Server(config).run(sockets=[sock])
