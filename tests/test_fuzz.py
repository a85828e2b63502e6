"""Schemathesis against the app's own OpenAPI document, on the real server.

Every operation, with bodies that fit the schema (positive) and bodies that do not
(negative): never a 5xx, and every JSON error body is the API's own: OpenAI's
``ErrorResponse``, or Anthropic's error on ``/v1/messages``.
Generated requests are capped (max_tokens <= 4, n <= 2, Responses' floor of 16) so the
engine's share stays small: what is fuzzed is the frontend (parsing, validation,
templating, errors).
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation.modes import GenerationMode
from spec import assert_anthropic_error, assert_valid

#: Responses refuses max_output_tokens below 16, as OpenAI does.
RESPONSES_MIN_OUTPUT = 16
_CAPS = {
    "max_tokens": 4,
    "max_completion_tokens": 4,
    "max_output_tokens": RESPONSES_MIN_OUTPUT,
    "n": 2,
    "best_of": 2,
    "min_tokens": 4,
}
EXAMPLES_PER_OPERATION = 30


def _cap(path: str, body: object) -> None:
    """Keep generation tiny; a missing max_tokens would mean the whole context. A value
    of the wrong type is left as generated: it is refused before anything generates."""
    if not isinstance(body, dict):
        return
    if path == "/v1/responses" and body.get("max_output_tokens") is None:
        body["max_output_tokens"] = RESPONSES_MIN_OUTPUT
    for key, cap in _CAPS.items():
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > cap:
            body[key] = cap
    if "messages" in body or "prompt" in body:
        if not isinstance(body.get("max_tokens"), int):
            body.setdefault("max_tokens", 4)
        body.pop("max_completion_tokens", None) if body.get(
            "max_completion_tokens"
        ) is None else None


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_5xx_and_openai_shaped_errors(server, mode):
    schema = schemathesis.openapi.from_url(server.url("/openapi.json"), headers=server.headers)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8, "every route is in the document"
    fuzzed: list[str] = []
    generation_statuses: list[int] = []
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            # A fixed seed: whether some generated completions happen to be valid is not
            # left to chance. (Not a promise that CI draws the very cases a local run does:
            # one CI run found a case, a block ``type`` that was a list, that local runs
            # with the same seed did not; tests/unit keeps such finds as regressions.)
            derandomize=True,
        )
        def check(case) -> None:
            _cap(case.path, case.body)
            if (
                mode is GenerationMode.POSITIVE
                and isinstance(case.body, dict)
                and "model" in case.body
            ):
                case.body["model"] = server.model  # past the 404: into validation and the engine
            response = case.call(base_url=server.base_url, headers=server.headers, timeout=180)
            assert response.status_code < 500, (
                case.method,
                case.path,
                case.body,
                response.text[:300],
            )
            if case.path.startswith("/v1/") and case.path.endswith("completions"):
                generation_statuses.append(response.status_code)
            content_type = response.headers.get("content-type") or [""]  # a list per header
            is_json = content_type[0].startswith("application/json")
            if response.status_code >= 400 and is_json:
                if case.path.startswith("/v1/messages"):
                    assert_anthropic_error(response.json())
                else:
                    assert_valid(response.json(), "ErrorResponse")

        try:
            check()
        except Unsatisfiable:
            # No invalid input exists for this operation: it takes no body and at most a
            # free-form path id (GET /health, DELETE /v1/responses/{response_id}, POST
            # /v1/batches/{batch_id}/cancel).
            assert mode is GenerationMode.NEGATIVE
            assert len(operation.body) == 0, operation.path
            continue
        fuzzed.append(f"{operation.method.upper()} {operation.path}")
    assert sum(name.startswith("POST") for name in fuzzed) >= 5, fuzzed
    if mode is GenerationMode.POSITIVE:
        assert 200 in generation_statuses, "valid requests reached the engine and completed"
