"""Plain ASGI middleware (no BaseHTTPMiddleware: it breaks disconnect-driven aborts,
vllm#10087): request ids with one JSON log line per request, user API keys, a body
size limit enforced before the body is parsed, and the last resort for a bug. Their
errors take the shape of the API the path belongs to (Anthropic's on ``/v1/messages``,
OpenAI's elsewhere).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from openai_frontend.auth import authenticated_key, batch_owner
from openai_frontend.errors import APIError, error_payload, internal_error

access_log = logging.getLogger("openai_frontend.access")
log = logging.getLogger(__name__)

#: Paths user keys protect (vLLM protects /v1 only; we add the tokenizer endpoints).
PROTECTED_PREFIXES = ("/v1/", "/tokenize", "/detokenize")
#: FastAPI's generated API description: it lists every route and parameter, so it is
#: for users as much as the API itself is.
DOC_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
#: Admin endpoints check their own key; a user key never opens them.
ADMIN_PATHS = frozenset({"/v1/load_lora_adapter", "/v1/unload_lora_adapter"})


async def _send_error(
    scope: Scope, send: Send, error: APIError, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    status = error.status
    payload = json.dumps(error_payload(scope["path"], error)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


@dataclass(frozen=True)
class RequestIdAlias:
    """One more header that carries the request id on the paths an API's dialect claims
    (Anthropic's SDKs read ``request-id``): the dialect declares it, the app passes it."""

    header: str
    applies: Callable[[str], bool]


class RequestIdMiddleware:
    """``x-request-id`` on every response (the client's own, or a new one), with the
    same id under each alias that applies to the path, and a JSON access line per
    request with status and duration."""

    def __init__(
        self,
        app: ASGIApp,
        on_status: Callable[[int, str], None] | None = None,
        aliases: Sequence[RequestIdAlias] = (),
    ) -> None:
        self.app = app
        self.on_status = on_status
        self.aliases = tuple(aliases)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _header(scope, b"x-request-id") or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        names = [b"x-request-id"]
        names += [alias.header.encode() for alias in self.aliases if alias.applies(scope["path"])]
        id_headers = [(name, request_id.encode()) for name in names]
        started = time.perf_counter()
        status = 0

        def send_with_id(message: Message) -> Awaitable[None]:
            # A plain function handing back the inner send's awaitable: no coroutine of
            # its own per streamed frame.
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), *id_headers]
            return send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if self.on_status is not None:
                self.on_status(status, scope["state"].get("log_fields", {}).get("model", ""))
            access_log.info(
                json.dumps(
                    {
                        "request_id": request_id,
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                        **scope["state"].get("log_fields", {}),
                    }
                )
            )


class ApiKeyMiddleware:
    """``Authorization: Bearer KEY`` or ``x-api-key: KEY`` on the API paths, compared in
    constant time.

    ``x-api-key`` is how Anthropic's SDKs send a key (they send no ``Authorization``
    unless given an auth token). It is accepted on every path, not only
    ``/v1/messages``: those SDKs also list ``/v1/models``, and it is the same key.
    """

    def __init__(self, app: ASGIApp, keys: Sequence[str], protect_metrics: bool = False) -> None:
        self.app = app
        self.keys = tuple(keys)
        self.protect_metrics = protect_metrics

    def _protected(self, path: str) -> bool:
        if path in ADMIN_PATHS:
            return False
        if self.protect_metrics and path == "/metrics":
            return True
        return path in DOC_PATHS or path.startswith(PROTECTED_PREFIXES)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.keys or not self._protected(scope["path"]):
            await self.app(scope, receive, send)
            return
        known = authenticated_key(Headers(scope=scope), self.keys) is not None
        if known or batch_owner(scope) is not None:  # a batch line: its owner's key let it in
            await self.app(scope, receive, send)
            return
        error = APIError(
            "Incorrect API key provided. Send it as 'Authorization: Bearer KEY' "
            "(or 'x-api-key: KEY').",
            status=401,
            type="invalid_request_error",
            code="invalid_api_key",
        )
        await _send_error(scope, send, error, [(b"www-authenticate", b'Bearer realm="api"')])


class BodyLimitMiddleware:
    """413 for a body over ``max_bytes``: by Content-Length at once, or while it streams."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _send_error(scope, send, self._error())
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # FastAPI lets an HTTPException out of body reading unchanged; the
                    # error handlers turn it into OpenAI's shape.
                    raise HTTPException(413, self._message())
            return message

        await self.app(scope, counted, send)

    def _message(self) -> str:
        return f"Request body exceeds {self.max_bytes} bytes."

    def _error(self) -> APIError:
        return APIError(self._message(), status=413, code="request_too_large")


class UnexpectedErrorMiddleware:
    """An exception no handler knows becomes a 500 in the API's shape, and ends here.

    Starlette's own last resort (``ServerErrorMiddleware``) answers outside every other
    middleware (no request id, no CORS headers, status 0 in the access log) and then
    re-raises for the server to log: uvicorn logs the traceback a second time and
    closes the connection, so a client with bytes still in flight gets a reset instead
    of the answer. Installed innermost, this one answers through all the others and
    lets nothing out. A response already started cannot become a 500: it is left
    unfinished, which tells the client it broke (streams send their own error event).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        def send_tracked(message: Message) -> Awaitable[None]:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            return send(message)

        try:
            await self.app(scope, receive, send_tracked)
        except Exception:
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if not started:
                await _send_error(scope, send, internal_error())


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None
