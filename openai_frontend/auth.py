"""API keys: which key a request carries, compared in constant time.

A user key may come as ``Authorization: Bearer KEY`` or as ``x-api-key: KEY`` (how
Anthropic's SDKs send it). :func:`authenticated_key` is the one answer to "whose request
is this": the key middleware lets a request in by it, and what a key owns (stored
responses) is looked up by it, so the two can never disagree about the header.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping

from fastapi import Request

from openai_frontend.errors import APIError

#: The ``scope["state"]`` key that marks a batch line run in-process (never set by a
#: client: uvicorn builds the scope); its value is the batch owner's ``owner_of`` hash.
BATCH_OWNER = "batch_owner"


def batch_owner(scope: Mapping) -> str | None:
    """The owner a batch line runs for, when this request is one (see batch/runner.py):
    it carries no key, since only the key's hash is kept, and it acts as that owner."""
    return scope.get("state", {}).get(BATCH_OWNER)


def bearer_token(headers: Mapping[str, str]) -> str | None:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def supplied_keys(headers: Mapping[str, str]) -> list[str]:
    """The keys a request carries, in the order they are tried: bearer, then x-api-key."""
    supplied = [bearer_token(headers), headers.get("x-api-key", "").strip()]
    return [key for key in supplied if key]


def _same(supplied: str, expected: str) -> bool:
    return hmac.compare_digest(supplied.encode(), expected.encode())


def authenticated_key(headers: Mapping[str, str], keys: Iterable[str]) -> str | None:
    """The first key the request carries that is one of ``keys`` (None: none is)."""
    keys = tuple(keys)
    for supplied in supplied_keys(headers):
        if any(_same(supplied, key) for key in keys):
            return supplied
    return None


def carries_key(request: Request, expected: str | None) -> bool:
    """Whether the request's bearer key is ``expected`` (never, when none is set)."""
    token = bearer_token(request.headers)
    return bool(expected) and token is not None and _same(token, expected)


def require_key(request: Request, expected: str, realm: str) -> None:
    """401 in OpenAI's shape unless the request carries ``expected`` as its bearer key."""
    if not carries_key(request, expected):
        raise APIError(
            f"Incorrect or missing {realm} key. Send it as 'Authorization: Bearer KEY'.",
            status=401,
            code="invalid_api_key",
            headers={"WWW-Authenticate": f'Bearer realm="{realm}"'},
        )
