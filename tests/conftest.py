"""One real server per test session: uvicorn + the vLLM CPU engine + the default model.

Tests that use the ``server`` fixture (directly or through a client fixture) are marked
``engine`` automatically, so ``pytest -m "not engine"`` is the fast lane.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

from openai_frontend.default_model import MODEL_NAME, ensure_default_model

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from demo_adapters import ensure_adapter  # noqa: E402

STARTUP_TIMEOUT_S = 300
#: ``make test DTYPE=bfloat16`` serves every test engine in that dtype; unset, each
#: server picks its own default (float32 for the default model on CPU).
TEST_DTYPE = os.environ.get("OPENAI_FRONTEND_TEST_DTYPE") or None
#: The conformance suite's per-backend ``engine`` fixture (tests/engines/).
pytest_plugins = ["engine_fixtures", "parser_fixtures"]

ENGINE_FIXTURES = {"server", "client", "async_client", "http", "engine", "parser_server"}
ADMIN_KEY = "test-admin-key"
USER_KEY = "test-user-key"
#: A second user, for "another key's stored response is a 404".
USER_KEY_2 = "test-user-key-2"
ALLOWED_ORIGIN = "http://chat-ui.example"
SERVED_ADAPTERS = ("pirate", "robot")
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}"}


def engine_view(http: httpx.Client) -> dict:
    """``/health/ready`` with its details (engine counts, adapters, upstreams), which only
    the admin key sees."""
    return http.get("/health/ready", headers=ADMIN_HEADERS).json()


@dataclass(frozen=True)
class Server:
    base_url: str
    model: str
    model_path: Path
    log_path: Path
    #: Adapters declared with --lora, name -> folder.
    adapters: dict[str, Path]
    #: The one --lora-root for run-time loads.
    lora_root: Path
    admin_key: str = ADMIN_KEY
    api_key: str = USER_KEY

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def url(self, path: str) -> str:
        return self.base_url + path


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if ENGINE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.engine)


def dtype_flags() -> list[str]:
    """``--dtype`` for a server under test, when the run asks for one."""
    return ["--dtype", TEST_DTYPE] if TEST_DTYPE else []


def served_dtype(model_path: Path) -> str:
    """The dtype the test servers compute in, for references that must match them."""
    from openai_frontend.default_model import default_dtype

    return TEST_DTYPE or default_dtype(model_path)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_ready(
    base_url: str, process: subprocess.Popen, log_path: Path, path: str = "/health/ready"
) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"server exited with {process.returncode}:\n{log_path.read_text()[-4000:]}"
            )
        try:
            if httpx.get(base_url + path, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(
        f"server not ready in {STARTUP_TIMEOUT_S} s:\n{log_path.read_text()[-4000:]}"
    )


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Server:
    model_path = ensure_default_model()
    adapters = {name: ensure_adapter(name) for name in SERVED_ADAPTERS}
    lora_root = tmp_path_factory.mktemp("lora-root")
    response_store = tmp_path_factory.mktemp("responses") / "responses.sqlite3"
    port = _free_port()
    log_path = tmp_path_factory.mktemp("server") / "server.log"
    command = [
        *(sys.executable, "-m", "openai_frontend", "serve", str(model_path)),
        *("--served-model-name", MODEL_NAME, "--port", str(port)),
        "--trust-request-chat-template",
        *dtype_flags(),
        *(f"--lora={name}={path}" for name, path in adapters.items()),
        *("--api-key", USER_KEY, "--api-key", USER_KEY_2, "--allowed-origins", ALLOWED_ORIGIN),
        *("--response-store", str(response_store)),
        *("--max-concurrent-requests", "512", "--max-queued-requests", "1024"),
        *("--request-timeout", "600"),
        "--enable-lora-management",
        *("--admin-api-key", ADMIN_KEY, "--lora-root", str(lora_root)),
    ]
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=os.environ.copy()
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base_url, process, log_path)
        yield Server(base_url, MODEL_NAME, model_path, log_path, adapters, lora_root)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="session")
def client(server: Server) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=server.url("/v1"), api_key=server.api_key, max_retries=0, timeout=120
    )


@pytest.fixture
def async_client(server: Server) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=server.url("/v1"), api_key=server.api_key, max_retries=0, timeout=120
    )


@pytest.fixture(scope="session")
def http(server: Server) -> httpx.Client:
    with httpx.Client(base_url=server.base_url, timeout=120, headers=server.headers) as session:
        yield session
