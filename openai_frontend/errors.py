"""OpenAI's error shape, ``{"error": {"message", "type", "param", "code"}}``, for every failure.

Every error leaves the server through here: bad parameters, unknown models, FastAPI's
body validation (which would otherwise be a 422 ``detail`` list), unknown routes, and a
last-resort handler so that no stack trace ever reaches a client. Errors on Anthropic's
``/v1/messages`` paths take Anthropic's shape instead (:func:`error_payload`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from openai_frontend.anthropic.errors import anthropic_error, speaks_anthropic
from openai_frontend.disconnect import ClientDisconnected, closed_response
from openai_frontend.jsonresponse import json_response

log = logging.getLogger(__name__)

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable",
}


class APIError(Exception):
    """Raise anywhere in a request to answer with an OpenAI error body."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        param: str | None = None,
        code: str | None = None,
        type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.headers = headers
        self.message = message
        self.status = status
        self.param = param
        self.code = code
        self.type = type or _TYPES.get(
            status, "server_error" if status >= 500 else "invalid_request_error"
        )

    def body(self) -> dict:
        return error_body(self.message, self.type, self.param, self.code)


def error_body(message: str, type: str, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def error_payload(path: str, error: APIError) -> dict:
    """``error``'s body in the shape of the API that ``path`` belongs to."""
    if speaks_anthropic(path):
        return anthropic_error(error.message, error.status)
    return error.body()


def error_response(request: Request, error: APIError) -> Response:
    return json_response(
        error_payload(request.url.path, error), status=error.status, headers=error.headers
    )


def model_not_found(model: str) -> APIError:
    return APIError(
        f"The model `{model}` does not exist or you do not have access to it.",
        status=404,
        code="model_not_found",
    )


def internal_error() -> APIError:
    """The answer to a bug: nothing about it reaches the client (the log has it)."""
    return APIError("The server had an error while processing your request.", status=500)


def unparsable_json() -> APIError:
    return APIError(
        "We could not parse the JSON body of your request. The API expects a JSON object "
        "as the request body.",
    )


#: Names pydantic puts in an error's location for the member of a union that failed.
_UNION_MEMBER_NAMES = frozenset({"str", "int", "float", "bool", "list", "dict", "none"})


def _is_union_member(part: str | int) -> bool:
    return isinstance(part, str) and (part in _UNION_MEMBER_NAMES or "[" in part or "-" in part)


def param_path(loc: Sequence[str | int]) -> str | None:
    """FastAPI's ``("body", "messages", 0, "role")`` as OpenAI's ``messages.[0].role``.

    Union member tags (``stop.str``) are not parameters; the path ends before them.
    """
    parts: list[str] = []
    for part in loc[1:] if loc and loc[0] == "body" else loc:
        if _is_union_member(part):
            break
        parts.append(part if isinstance(part, str) else f"[{part}]")
    return ".".join(parts) or None


def refused_translation(
    error: ValidationError, rename: Callable[[str | None], str | None] = lambda param: param
) -> APIError:
    """A dialect's request that chat's schema refused once translated, as a 400 naming
    the field (``rename`` maps chat's name back to the dialect's) instead of a 500."""
    first = error.errors()[0]
    param = rename(param_path(first["loc"]))
    return APIError(f"Invalid value for '{param}': {first['msg']}", param=param)


def _validation_error(exc: RequestValidationError) -> APIError:
    first = exc.errors()[0]
    loc = tuple(first.get("loc", ()))
    kind = first.get("type", "")
    if kind == "json_invalid" or (
        len(loc) >= 1 and loc[0] == "body" and kind == "model_attributes_type"
    ):
        return unparsable_json()
    if kind == "missing" and loc == ("body",):
        return APIError("The request body is missing; send a JSON object.")
    param = param_path(loc)
    if kind == "extra_forbidden":
        return APIError(f"Unrecognized request argument supplied: {param}", param=param)
    message = first.get("msg", "invalid value")
    if kind == "missing":
        return APIError(f"Missing required parameter: '{param}'.", param=param)
    return APIError(f"Invalid value for '{param}': {message}", param=param)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> Response:
        return error_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid_body(request: Request, exc: RequestValidationError) -> Response:
        return error_response(request, _validation_error(exc))

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> Response:
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 404:
            message = "Not found: no such route."
        return error_response(
            request, APIError(message, status=exc.status_code, headers=exc.headers)
        )

    # Starlette's own ClientDisconnect: the client left while its body was being read.
    @app.exception_handler(ClientDisconnected)
    @app.exception_handler(ClientDisconnect)
    async def _client_gone(_: Request, __: Exception) -> Response:
        return closed_response()

    # Starlette re-raises after this handler, for the server to log; the app's own
    # last resort (middleware.UnexpectedErrorMiddleware) answers first, so this one
    # only sees what the outer middleware itself raises.
    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(request, internal_error())
