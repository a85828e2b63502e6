"""Anthropic's error shape, ``{"type": "error", "error": {"type", "message"}}``.

Kept free of the rest of the server (no imports from it), so the one place that picks
an error's shape (:func:`openai_frontend.errors.error_payload`) can use it without an
import cycle.
"""

from __future__ import annotations

#: Paths that speak Anthropic's dialect: ``/v1/messages`` and ``/v1/messages/count_tokens``.
MESSAGES_PATH = "/v1/messages"

#: Anthropic's error types by HTTP status (docs.anthropic.com, "Errors").
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def speaks_anthropic(path: str) -> bool:
    """Whether errors on ``path`` take Anthropic's shape."""
    return path == MESSAGES_PATH or path.startswith(MESSAGES_PATH + "/")


def error_type(status: int) -> str:
    """Anthropic's type for ``status``; other 4xx are request errors, other 5xx API errors."""
    return _TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def anthropic_error(message: str, status: int) -> dict:
    return {"type": "error", "error": {"type": error_type(status), "message": message}}
