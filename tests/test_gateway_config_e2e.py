"""Several models in one gateway (``--config``), routed by ``model``.

The gateway declares two remote models whose upstream is the session's test server:
``alpha`` is its base model and ``beta`` its ``pirate`` adapter, so routing is checked
by what each answers, without loading another engine here.
"""

from __future__ import annotations

import httpx
import pytest
from conftest import ADMIN_HEADERS, ADMIN_KEY
from demo_adapters import PHRASES
from servers import all_stopped, ours, wait_ready
from spec import assert_valid

from openai_frontend.default_model import ensure_default_model

pytestmark = pytest.mark.engine

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def gateway(server, tmp_path_factory):
    folder = tmp_path_factory.mktemp("gateway")
    model = ensure_default_model()
    config = folder / "gateway.yaml"
    config.write_text(
        f"""
models:
  - name: alpha
    engine: remote
    model: {model}
    upstreams: [{server.base_url}]
    upstream_model: {server.model}
    upstream_api_key: {server.api_key}
  - name: beta
    engine: remote
    model: {model}
    upstreams: [{server.base_url}]
    upstream_model: pirate
    upstream_api_key: {server.api_key}
    sampling_defaults: {{temperature: 0}}
"""
    )
    running = ours(
        None, folder / "gateway.log", "--config", str(config), "--admin-api-key", ADMIN_KEY
    )
    with all_stopped(running):
        wait_ready(running)
        yield running


def answer(base_url: str, model: str, headers: dict | None = None) -> str:
    body = {"model": model, "messages": QUESTION, "temperature": 0, "max_tokens": 16}
    response = httpx.post(
        base_url + "/v1/chat/completions", json=body, headers=headers or {}, timeout=120
    )
    assert response.status_code == 200, response.text
    assert_valid(response.json(), "CreateChatCompletionResponse")
    return response.json()["choices"][0]["message"]["content"]


def test_every_model_is_listed(gateway):
    models = httpx.get(gateway.base_url + "/v1/models").json()
    assert_valid(models, "ListModelsResponse")
    assert [m["id"] for m in models["data"]] == ["alpha", "beta"]


def test_requests_are_routed_by_model(gateway, server):
    assert answer(gateway.base_url, "beta") == PHRASES["pirate"]
    direct = answer(server.base_url, server.model, server.headers)
    assert answer(gateway.base_url, "alpha") == direct != PHRASES["pirate"]


def test_readiness_per_model(gateway):
    everything = httpx.get(gateway.base_url + "/health/ready", headers=ADMIN_HEADERS).json()
    assert everything["status"] == "ready" and set(everything["models"]) == {"alpha", "beta"}
    one = httpx.get(
        gateway.base_url + "/health/ready", params={"model": "beta"}, headers=ADMIN_HEADERS
    )
    assert one.status_code == 200 and set(one.json()["models"]) == {"beta"}
    unknown = httpx.get(gateway.base_url + "/health/ready", params={"model": "gamma"})
    assert unknown.status_code == 404
    assert_valid(unknown.json(), "ErrorResponse")


def test_unknown_model_is_404(gateway):
    body = {"model": "gamma", "messages": QUESTION}
    response = httpx.post(gateway.base_url + "/v1/chat/completions", json=body, timeout=30)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"
