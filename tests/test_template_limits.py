"""Hostile request templates through the real server: each gets its 400 within the
render deadline, and ``/health`` keeps answering while it renders.

The test server runs with ``--trust-request-chat-template``, so these reach the
renderer. Before the fix, the first one held the event loop for hours.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from spec import assert_valid

from templates.budget import MAX_RENDER_SECONDS

#: One deadline covers a request's template work (probe renders, compiling, rendering):
#: two would take 2 x MAX_RENDER_SECONDS. Past one deadline, a request may take what
#: the same request costs without the render (measured on this server, x ROUND_TRIPS
#: for a shared 2-core machine) and half a deadline more for the scheduler, never two.
DEADLINES_ALLOWED = 1.5
ROUND_TRIPS = 4
HEALTH_WITHIN_S = 1.0
#: When /health is asked, the render below has been running this long.
HEALTH_AFTER_S = 0.3

SILENT_LOOP = "{% set s='a'*4000000 %}{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}"
PAYLOADS = {
    "loop that writes nothing": SILENT_LOOP,
    "140 KB template": "{{ a.b[c](d,e) ~ f }}" * (140 * 1024 // 21),
    "8 MB comment": "{# " + "x" * 8_000_000 + " #}x",
}
ENDPOINTS = ["/v1/chat/completions", "/tokenize"]


def _round_trip(http: httpx.Client, endpoint: str, body: dict) -> float:
    """The seconds ``body`` takes with a template that renders at once: the request's
    cost on this server outside the render."""
    quick = {**body, "chat_template": "{{ messages[0].content }}"}
    started = time.monotonic()
    assert http.post(endpoint, json=quick).status_code == 200
    return time.monotonic() - started


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("template", PAYLOADS.values(), ids=PAYLOADS.keys())
def test_hostile_template_is_a_400_in_time_and_health_answers(server, http, endpoint, template):
    body = {
        "model": server.model,
        "messages": [{"role": "user", "content": "hi"}],
        "chat_template": f"{{# {uuid.uuid4()} #}}{template}",  # its own: no cached probe
        "max_tokens": 1,
    }
    allowed = DEADLINES_ALLOWED * MAX_RENDER_SECONDS + ROUND_TRIPS * _round_trip(
        http, endpoint, body
    )
    with ThreadPoolExecutor(1) as pool:
        started = time.monotonic()
        reply = pool.submit(http.post, endpoint, json=body, timeout=2 * allowed)
        time.sleep(HEALTH_AFTER_S)
        health_started = time.monotonic()
        health = httpx.get(server.url("/health"), timeout=HEALTH_WITHIN_S)
        health_seconds = time.monotonic() - health_started
        render_still_running = not reply.done()
        response = reply.result()
        elapsed = time.monotonic() - started

    assert health.status_code == 200 and health_seconds < HEALTH_WITHIN_S
    if template is SILENT_LOOP:
        assert render_still_running, "/health answered while the template was rendering"
    assert response.status_code == 400, response.text
    assert_valid(response.json(), "ErrorResponse")
    assert response.json()["error"]["param"] == "chat_template"
    assert elapsed < allowed, f"{elapsed:.2f} s: more than one render deadline"


def test_a_normal_request_template_still_renders(server, http):
    """The limits leave ordinary templates alone, on both endpoints."""
    body = {
        "model": server.model,
        "messages": [{"role": "user", "content": "hi"}],
        "chat_template": "{% for m in messages %}[{{ m.role }}] {{ m.content }}{% endfor %}",
    }
    tokenized = http.post("/tokenize", json=body)
    assert tokenized.status_code == 200, tokenized.text
    assert tokenized.json()["prompt"] == "[user] hi"
    reply = http.post("/v1/chat/completions", json={**body, "max_tokens": 1})
    assert reply.status_code == 200, reply.text
    assert reply.json()["usage"]["prompt_tokens"] == tokenized.json()["count"]
