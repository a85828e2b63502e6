"""What the server shows without a key: readiness only, and no API description.

The app is built around a real, not yet started, remote engine whose one upstream has
failed a check, so its URL and error text are exactly what must not leak.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from engines.remote import RemoteEngine
from openai_frontend.app import create_app
from openai_frontend.cli import build_parser
from openai_frontend.config import ServerConfig
from openai_frontend.default_model import default_model_dir, is_prepared

pytestmark = pytest.mark.skipif(
    not is_prepared(default_model_dir()),
    reason="needs the default model's folder (`make model` prepares it)",
)

UPSTREAM = "http://upstream.internal:9000"
SECRET_ERROR = "health check: ConnectError: 10.1.2.3 refused"
ADMIN = {"Authorization": "Bearer admin-key"}
USER = {"Authorization": "Bearer user-key"}
DOC_PATHS = ("/docs", "/redoc", "/openapi.json")


def client(docs: bool = True) -> TestClient:
    config = ServerConfig(
        model_path=default_model_dir(),
        served_model_name="m",
        engine="remote",
        upstreams=(UPSTREAM,),
        admin_api_key="admin-key",
        api_keys=("user-key",),
        docs=docs,
    )
    engine = RemoteEngine(config.model_path, "m", [UPSTREAM])
    engine._pool[0].last_error = SECRET_ERROR
    return TestClient(create_app(config, engine))  # no lifespan: the engine stays unstarted


@pytest.mark.parametrize("headers", [{}, USER], ids=["no key", "user key"])
def test_readiness_without_the_admin_key_is_a_status_only(headers):
    for path in ("/health/ready", "/health/ready?model=m"):
        response = client().get(path, headers=headers)
        assert response.status_code == 503
        assert response.json() == {"status": "loading"}


def test_the_admin_key_shows_why_a_model_is_not_ready():
    body = client().get("/health/ready", headers=ADMIN).json()
    assert body["status"] == "loading"
    upstream = body["models"]["m"]["upstreams"][0]
    assert upstream["url"] == UPSTREAM and upstream["last_error"] == SECRET_ERROR


@pytest.mark.parametrize("path", DOC_PATHS)
def test_docs_need_the_user_key(path):
    anonymous = client().get(path)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "invalid_api_key"
    assert client().get(path, headers=USER).status_code == 200


@pytest.mark.parametrize("path", DOC_PATHS)
def test_no_docs_turns_them_off(path):
    response = client(docs=False).get(path, headers=USER)
    assert response.status_code == 404
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_no_docs_flag():
    assert build_parser().parse_args(["serve"]).docs is True
    assert build_parser().parse_args(["serve", "--no-docs"]).docs is False
