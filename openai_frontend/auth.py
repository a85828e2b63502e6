"""Bearer-key checks, compared in constant time."""

from __future__ import annotations

import hmac

from fastapi import Request

from openai_frontend.errors import APIError


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def carries_key(request: Request, expected: str | None) -> bool:
    """Whether the request's bearer key is ``expected`` (never, when none is set)."""
    token = bearer_token(request)
    if not expected or token is None:
        return False
    return hmac.compare_digest(token.encode(), expected.encode())


def require_key(request: Request, expected: str, realm: str) -> None:
    """401 in OpenAI's shape unless the request carries ``expected`` as its bearer key."""
    if not carries_key(request, expected):
        raise APIError(
            f"Incorrect or missing {realm} key. Send it as 'Authorization: Bearer KEY'.",
            status=401,
            code="invalid_api_key",
            headers={"WWW-Authenticate": f'Bearer realm="{realm}"'},
        )
