"""Models listing and health endpoints."""

from __future__ import annotations

from spec import assert_valid


def test_list_models(server, http, client):
    body = http.get("/v1/models").json()
    assert_valid(body, "ListModelsResponse")
    ids = [m["id"] for m in body["data"]]
    assert ids[0] == server.model, "the base model comes first, then its adapters"
    assert set(server.adapters) <= set(ids[1:])
    assert body["data"][0]["max_model_len"] == 8192
    assert [m.id for m in client.models.list()] == ids


def test_retrieve_model(server, http):
    response = http.get(f"/v1/models/{server.model}")
    assert response.status_code == 200
    assert_valid(response.json(), "Model")


def test_health(server, http):
    assert http.get("/health").status_code == 200
    ready = http.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
