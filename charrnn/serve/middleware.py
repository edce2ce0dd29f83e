"""What wraps every request: the access log line, the API key check, and the body size cap.

Plain ASGI middleware (no per-request task or buffering, so streamed responses pass straight
through). The access line has the method, the path without its query string, the status, the
characters generated and the duration: never a prompt or generated text.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.requests import Request

from charrnn.digits import decimal
from charrnn.serve.protocol import ApiError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

access = logging.getLogger("charrnn.serve.access")
PROTECTED = ("/v1/", "/generate")  # the API; the page, its assets and /health stay open


class AccessLog:
    """One line per request on the `charrnn.serve.access` logger."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0, status = time.perf_counter(), [0]
        scope.setdefault("state", {})["chars"] = 0

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            chars = scope["state"].get("chars", 0)
            client = (scope.get("client") or ("-",))[0]
            access.info(
                "%s %s %s %s %d chars %.3f s",
                client,
                scope["method"],
                scope["path"],
                status[0] or "-",
                chars,
                time.perf_counter() - t0,
            )


class ApiKey:
    """`Authorization: Bearer KEY` on the API routes when the server has a key (401 otherwise).
    Preflight requests pass (CORS answers them before this runs)."""

    def __init__(self, app: ASGIApp, key: str | None) -> None:
        self.app, self.key = app, key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.key
            and scope["type"] == "http"
            and scope["method"] != "OPTIONS"
            and scope["path"].startswith(PROTECTED)
            and not self._allowed(scope)
        ):
            err = ApiError(
                401,
                "a valid API key is required: send 'Authorization: Bearer KEY'",
                kind="invalid_request_error",
                code="invalid_api_key",
                headers={"WWW-Authenticate": "Bearer"},
            )
            await send_error(send, err)
            return
        await self.app(scope, receive, send)

    def _allowed(self, scope: Scope) -> bool:
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                scheme, _, token = value.decode("latin-1").partition(" ")
                return scheme.lower() == "bearer" and hmac.compare_digest(
                    token.strip().encode(), self.key.encode()
                )
        return False


async def send_error(send: Send, err: ApiError) -> None:
    body = json.dumps(err.body()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in err.headers.items()]
    await send({"type": "http.response.start", "status": err.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def read_json(request: Request, limit: int) -> Any:
    """The request body as JSON: 413 past `limit` bytes (checked while reading), 400 if malformed."""
    declared = request.headers.get("content-length", "")
    size = decimal(declared[:19], 19)  # 19 digits are past any limit (int() refuses 4,300)
    if size is not None and size > limit:
        raise ApiError(413, f"the request body is over this server's limit of {limit} bytes")
    data = bytearray()
    async for part in request.stream():
        data += part
        if len(data) > limit:
            raise ApiError(413, f"the request body is over this server's limit of {limit} bytes")
    if not data:
        raise ApiError(400, "the request has no body: send a JSON object")
    try:
        body = json.loads(data)
    except (UnicodeDecodeError, ValueError) as e:
        raise ApiError(400, f"the request body is not valid JSON ({e})") from None
    try:  # JSON's \ud800 escapes can spell half a character, which no text can hold or store
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as e:
        bad = e.object[e.start : e.end]
        raise ApiError(
            400, f"the request body holds a lone surrogate ({bad!a}), which is not text"
        ) from None
    return body
