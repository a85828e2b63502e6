"""CORS for browser clients of every API the gateway speaks (``--allowed-origins``).

The official SDKs in a browser send their own headers (the OpenAI SDK's
``x-stainless-*``, the Anthropic SDK's ``x-api-key`` and ``anthropic-version``), and the
Responses API deletes with DELETE; a preflight that refuses any of them blocks the call.
"""

from __future__ import annotations

import asyncio

import httpx
from fault_engines import FaultInjectingEngine, in_process_client

ORIGIN = "http://ui.example"


def preflight(path: str, method: str, headers: str, origin: str = ORIGIN) -> httpx.Response:
    async def ask() -> httpx.Response:
        async with in_process_client(FaultInjectingEngine(), allowed_origins=(ORIGIN,)) as client:
            return await client.options(
                path,
                headers={
                    "Origin": origin,
                    "Access-Control-Request-Method": method,
                    "Access-Control-Request-Headers": headers,
                },
            )

    return asyncio.run(ask())


def test_the_anthropic_sdks_headers_pass_the_preflight():
    answer = preflight("/v1/messages", "POST", "x-api-key,anthropic-version,content-type")
    assert answer.status_code == 200, answer.text
    assert answer.headers["access-control-allow-origin"] == ORIGIN


def test_the_openai_sdks_headers_pass_the_preflight():
    headers = "authorization,content-type,x-stainless-os,x-stainless-retry-count"
    answer = preflight("/v1/chat/completions", "POST", headers)
    assert answer.status_code == 200, answer.text


def test_deleting_a_stored_response_passes_the_preflight():
    answer = preflight("/v1/responses/resp_1", "DELETE", "authorization")
    assert answer.status_code == 200, answer.text
    assert "DELETE" in answer.headers["access-control-allow-methods"]


def test_another_origin_is_still_refused():
    answer = preflight("/v1/messages", "POST", "x-api-key", origin="http://evil.example")
    assert "access-control-allow-origin" not in answer.headers
