"""The ASGI application: routes as small functions over a `Service`, OpenAI-shaped errors for
everything that goes wrong, CORS for the origins given, the API key, and the access log.

Routes: `POST /v1/completions` and `GET /generate` (in `completions`), `POST /v1/score`,
`GET /v1/models[/{id}]`, `GET|DELETE /v1/sessions/{id}`, `GET /health`, the playground page at `/`
with its assets, and `POST /v1/chat/completions` (in `chat`; a clear 404 unless a chat template
is declared). It does not parse command-line
flags or run uvicorn (the CLI does), and it never logs prompts or text.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator
from importlib import resources

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from charrnn import __version__
from charrnn.serve.chat import chat_completions
from charrnn.serve.completions import completions, generate, service
from charrnn.serve.json_body import json_response
from charrnn.serve.middleware import AccessLog, ApiKey, read_json
from charrnn.serve.models import Model
from charrnn.serve.protocol import INTERNAL, ApiError, shown, too_many_logprobs
from charrnn.serve.service import Service, Settings
from charrnn.serve.voicing import SCORE_VOICE, score_voice

log = logging.getLogger("charrnn.serve")
JS, CSS = "text/javascript; charset=utf-8", "text/css; charset=utf-8"
ASSETS = {  # name → (package holding it in assets/, media type)
    "dom.js": ("charrnn.viz", JS),  # the DOM helpers the viz page shares
    "playground.js": ("charrnn.serve", JS),
    "write.js": ("charrnn.serve", JS),
    "inside.js": ("charrnn.serve", JS),
    "playground.css": ("charrnn.serve", CSS),
}
MAX_TOP_K = 20


def error_response(err: ApiError) -> JSONResponse:
    return JSONResponse(err.body(), status_code=err.status, headers=err.headers)


async def on_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc)


async def on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        msg = f"{request.method} is not allowed on {request.url.path}"
    else:
        msg = f"no route {request.method} {request.url.path} (see GET /v1/models, POST /v1/completions)"
    kind = "invalid_request_error"
    return error_response(ApiError(exc.status_code, msg, kind=kind, code="not_found"))


async def on_crash(request: Request, exc: Exception) -> Response:
    """A bug or a fault (a file, the sessions database): the detail, which may hold paths, goes to
    the server's log with its traceback; the client gets a 500 saying only that."""
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return error_response(ApiError(500, INTERNAL, kind="server_error"))


# --- small routes ------------------------------------------------------------------------------
async def health(request: Request) -> Response:
    srv = service(request)
    sched = srv.scheduler
    return JSONResponse(
        {
            "status": "ok",
            "version": __version__,
            "models": list(srv.models),
            "mode": "deterministic" if srv.settings.deterministic else "fast",
            "streams": sched.streams if sched else 0,
            "longest_step_gap_ms": round(1000 * sched.longest_gap, 1) if sched else 0.0,
            "queued": srv.capacity.waiting if srv.capacity else 0,
            "max_streams": srv.settings.max_streams,
            "limits": dataclasses.asdict(srv.settings.limits),
            "sessions": srv.store.count() if srv.store else None,
        }
    )


def _card(srv: Service, model: Model) -> dict:
    """A model's card, with its chat template when chat is on."""
    card = model.card()
    template = srv.settings.chat.get(model.name)
    card["charrnn"]["chat_template"] = template.to_json() if template else None
    return card


async def list_models(request: Request) -> Response:
    """Every model, each followed by its voices as `MODEL:VOICE`."""
    srv = service(request)
    cards = [card for m in srv.models.values() for card in [_card(srv, m), *m.voice_cards()]]
    return JSONResponse({"object": "list", "data": cards})


async def get_model(request: Request) -> Response:
    srv = service(request)
    model, voice = srv.pick(request.path_params["name"])
    if voice is None:
        return JSONResponse(_card(srv, model))
    return JSONResponse(next(c for c in model.voice_cards() if c["charrnn"]["voice"] == voice))


async def score(request: Request) -> Response:
    """`{"model", "text", "per_char", "top_k", "unknown"}` → `charrnn score --json`'s keys (and
    its per-character records under `per_char` when asked). A voiced model scores under the
    voice of `tag` or `MODEL:VOICE`; `by_tag: true` (with `prior`) under each voice, as
    `charrnn score --by-tag --json`."""
    srv = service(request)
    body = await read_json(request, srv.settings.max_body)
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    extra = sorted(set(body) - {"model", "text", "per_char", "top_k", "unknown", *SCORE_VOICE})
    if extra:
        raise ApiError(400, f"{shown(extra[0])}: unrecognized request argument", extra[0])
    text, per_char, top_k = body.get("text"), body.get("per_char", False), body.get("top_k", 5)
    unknown = body.get("unknown", "skip")
    if not isinstance(text, str):
        raise ApiError(400, "text: a string is required", "text")
    if not isinstance(per_char, bool):
        raise ApiError(400, "per_char: must be true or false", "per_char")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 0 <= top_k <= MAX_TOP_K:
        raise ApiError(400, f"top_k: must be an integer from 0 to {MAX_TOP_K}", "top_k")
    if unknown not in ("skip", "error"):
        raise ApiError(400, "unknown: must be 'skip' or 'error'", "unknown")
    most = srv.settings.limits.max_echo
    if per_char and len(text) * (1 + top_k) > most:
        why = too_many_logprobs(len(text), top_k, most, "top_k")
        raise ApiError(400, f"per_char: {why}; without per_char any length is scored", "per_char")
    model, voice = srv.pick(body.get("model"))
    how = score_voice(model, voice, body, per_char)  # a voice's weights, or a prior (by_tag)
    if unknown == "error":
        srv.encode(model, text, "error", "text")
    # on the batching worker's turn, one text at a time: never beside a step (see `tasks`)
    result = await srv.run_task(
        model, lambda engine: _score(engine, model, text, per_char, top_k, how)
    )
    request.scope["state"]["chars"] = result["chars"]
    return json_response(result)


def _score(engine, model: Model, text: str, per_char: bool, top_k: int, how=None) -> dict:
    from charrnn.infer.score import Scorer

    scorer = Scorer(engine, pause=engine.pause)  # engine: the task's pausing view (`tasks`)
    if isinstance(how, str):  # by_tag, with this prior
        tags = scorer.by_tag(text, prior=how)
        out = {"model": model.name, "checkpoint": str(model.path), "prior": how}
        return out | tags.to_json() | {"unknown_chars": dict(tags.scores[0].unknown)}
    result = scorer.score(text, voice=how)
    out = {"model": model.name, "checkpoint": str(model.path), **result.to_json()}
    out["unknown_chars"] = dict(result.unknown)
    if per_char:
        positions, ids, _ = scorer.known(text)
        records = scorer.records(positions, ids, top_k, voice=how)
        out["per_char"] = [r for part in records for r in part]
    return out


def _session_id(request: Request) -> str:
    srv = service(request)
    if srv.store is None:
        raise ApiError(404, "this server keeps no sessions", code="not_found")
    return request.path_params["session"]


async def get_session(request: Request) -> Response:
    sid = _session_id(request)
    saved = service(request).store.get(sid)  # type: ignore[union-attr]
    if saved is None:
        raise ApiError(404, f"no session {sid!r}", "session", code="not_found")
    return JSONResponse(saved.info())


async def delete_session(request: Request) -> Response:
    srv, sid = service(request), _session_id(request)
    if sid in srv.busy_sessions:
        raise ApiError(
            409, f"session {sid!r} is busy with a request", "session", code="session_busy"
        )
    if not srv.store.delete(sid):  # type: ignore[union-attr]
        raise ApiError(404, f"no session {sid!r}", "session", code="not_found")
    return JSONResponse({"id": sid, "object": "session", "deleted": True})


async def page(request: Request) -> Response:
    html = resources.files("charrnn.serve").joinpath("assets/playground.html").read_text("utf-8")
    return Response(html, media_type="text/html; charset=utf-8")


async def asset(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in ASSETS:
        raise ApiError(404, f"no asset {name!r}", code="not_found")
    package, media = ASSETS[name]
    data = resources.files(package).joinpath("assets", name).read_bytes()
    return Response(data, media_type=media, headers={"Cache-Control": "no-cache"})


# --- the app -----------------------------------------------------------------------------------
def build_app(models: dict[str, Model], settings: Settings) -> Starlette:
    srv = Service(models, settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        srv.start()
        try:
            yield
        finally:
            srv.stop()

    routes = [
        Route("/", page),
        Route("/assets/{name}", asset),
        Route("/health", health),
        Route("/v1/models", list_models),
        Route("/v1/models/{name:path}", get_model),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/score", score, methods=["POST"]),
        Route("/v1/sessions/{session}", get_session, methods=["GET"]),
        Route("/v1/sessions/{session}", delete_session, methods=["DELETE"]),
        Route("/generate", generate),
    ]
    middleware = [Middleware(AccessLog)]
    if settings.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.cors_origins),
                allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
                allow_headers=["Authorization", "Content-Type", "X-Session-Id"],
                max_age=600,
            )
        )
    middleware.append(Middleware(ApiKey, key=settings.api_key))
    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={
            ApiError: on_api_error,
            HTTPException: on_http_error,
            Exception: on_crash,
        },
    )
    app.state.service = srv
    return app
