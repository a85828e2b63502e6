"""Stored responses over HTTP, on gateways of this module's own (remote engine in front of
the session server, each with its own SQLite file): ownership by the authenticated key
whichever header carries it, one shared owner without keys, a locked store that still
answers, history stored once per chain, private files, and a fail-fast start.
"""

from __future__ import annotations

import contextlib
import sqlite3
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from conftest import USER_KEY, USER_KEY_2, Server
from servers import Running, all_stopped, ours, wait_ready
from spec import assert_valid
from test_responses import events_of

from openai_frontend.default_model import MODEL_NAME

BODY = {"model": MODEL_NAME, "input": "Name three colours.", "max_output_tokens": 16}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def x_api_key(key: str) -> dict[str, str]:
    return {"x-api-key": key}


HEADER_FORMS = {"bearer": bearer, "x-api-key": x_api_key}


@dataclass(frozen=True)
class Gateway:
    running: Running
    store: Path

    def client(self, headers: dict[str, str] | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.running.base_url, timeout=120, headers=headers)

    def log(self) -> str:
        return self.running.log_path.read_text()


def _gateway_flags(server: Server, store: Path, *keys: str) -> tuple[str, ...]:
    return (
        *("--served-model-name", MODEL_NAME, "--engine", "remote"),
        *(f"--upstream={server.base_url}", "--upstream-api-key", USER_KEY),
        *("--response-store", str(store)),
        *(flag for key in keys for flag in ("--api-key", key)),
    )


@pytest.fixture(scope="module")
def gateways(
    server: Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Gateway]]:
    """``keyed`` (USER_KEY and USER_KEY_2) and ``open`` (no --api-key), started together."""
    folder = tmp_path_factory.mktemp("store-gateways")
    keys = {"keyed": (USER_KEY, USER_KEY_2), "open": ()}
    started = {
        name: Gateway(
            ours(
                server.model_path,
                folder / f"{name}.log",
                *_gateway_flags(server, folder / name / "responses.sqlite3", *names),
            ),
            folder / name / "responses.sqlite3",
        )
        for name, names in keys.items()
    }
    with all_stopped(*(gateway.running for gateway in started.values())):
        for gateway in started.values():
            wait_ready(gateway.running)
        yield started


@pytest.fixture
def keyed(gateways: dict[str, Gateway]) -> Gateway:
    return gateways["keyed"]


def create(http: httpx.Client, **fields) -> dict:
    answer = http.post("/v1/responses", json={**BODY, **fields})
    assert answer.status_code == 200, answer.text
    assert_valid(answer.json(), "Response")
    return answer.json()


@pytest.mark.parametrize(
    ("made_with", "read_with"), [("x-api-key", "bearer"), ("bearer", "x-api-key")]
)
def test_a_stored_response_belongs_to_its_key_whichever_header_carries_it(
    keyed: Gateway, made_with: str, read_with: str
):
    """The issue's four requests: A creates; B, in either header form, gets 404 on every
    route and as previous_response_id; A, in the other form, reads, continues and deletes."""
    with keyed.client(HEADER_FORMS[made_with](USER_KEY)) as http:
        made = create(http)
    rid = made["id"]
    follow = {**BODY, "input": "And?", "previous_response_id": rid}
    for form in HEADER_FORMS.values():
        with keyed.client(form(USER_KEY_2)) as other:
            refused = [
                other.get(f"/v1/responses/{rid}"),
                other.get(f"/v1/responses/{rid}/input_items"),
                other.post("/v1/responses", json=follow),
                other.delete(f"/v1/responses/{rid}"),
            ]
        for answer in refused:
            assert answer.status_code == 404, answer.text
            assert_valid(answer.json(), "ErrorResponse")
        assert refused[2].json()["error"]["param"] == "previous_response_id"
    with keyed.client(HEADER_FORMS[read_with](USER_KEY)) as own:
        assert own.get(f"/v1/responses/{rid}").json() == made
        items = own.get(f"/v1/responses/{rid}/input_items").json()
        assert [item["content"][0]["text"] for item in items["data"]] == [BODY["input"]]
        continued = own.post("/v1/responses", json=follow)
        assert continued.status_code == 200, continued.text
        assert continued.json()["previous_response_id"] == rid
        assert own.delete(f"/v1/responses/{rid}").json()["deleted"] is True
        assert own.get(f"/v1/responses/{rid}").status_code == 404


def test_without_keys_every_caller_is_the_same_owner(gateways: dict[str, Gateway]):
    """No --api-key: nothing tells callers apart, so a placeholder bearer string is not
    made to look like privacy; every caller reads and continues every response."""
    gateway = gateways["open"]
    with gateway.client(bearer("placeholder-one")) as first:
        made = create(first)
    rid = made["id"]
    for headers in (bearer("placeholder-two"), x_api_key("anything"), {}):
        with gateway.client(headers) as other:
            assert other.get(f"/v1/responses/{rid}").json() == made
            assert other.get(f"/v1/responses/{rid}/input_items").status_code == 200


@contextlib.contextmanager
def write_locked(store: Path) -> Iterator[None]:
    """Another connection holds the store's write lock meanwhile."""
    holder = sqlite3.connect(store, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_locked_store_still_delivers_the_answer_streamed_or_not(keyed: Gateway):
    """Marked ``store: false`` (streamed: in the final event, never response.failed),
    logged, and not found later."""
    with keyed.client(bearer(USER_KEY)) as http:
        with write_locked(keyed.store):
            plain = create(http)
            streamed = http.post("/v1/responses", json={**BODY, "stream": True})
        assert streamed.status_code == 200
        events = events_of(streamed.text)
        final = events[-1]
        assert final["type"] in ("response.completed", "response.incomplete"), final
        assert not [event for event in events if event["type"] == "response.failed"]
        for response in (plain, final["response"]):
            assert response["store"] is False
            assert response["output"][0]["content"][0]["text"]
            assert http.get(f"/v1/responses/{response['id']}").status_code == 404
            assert f"response {response['id']} answered, not stored" in keyed.log()


def test_a_chain_of_follow_ups_stores_each_item_once(keyed: Gateway):
    turns = 5
    ids = []
    with keyed.client(bearer(USER_KEY)) as http:
        for number in range(turns):
            previous = {"previous_response_id": ids[-1]} if ids else {}
            ids.append(create(http, input=f"Question {number}?", **previous)["id"])
        items = http.get(f"/v1/responses/{ids[-1]}/input_items?order=asc&limit=100").json()
    with sqlite3.connect(keyed.store) as db:
        stored = dict(
            db.execute(
                f"SELECT id, input_items FROM responses WHERE id IN ({','.join('?' * turns)})",
                ids,
            ).fetchall()
        )
    own_items = [stored[rid].count('"role": "user"') for rid in ids]
    assert own_items == [1] * turns  # each row: its own question only, not the history
    assert [item["role"] for item in items["data"]] == ["user", "assistant"] * (turns - 1) + [
        "user"
    ]
    questions = [item["content"][0]["text"] for item in items["data"] if item["role"] == "user"]
    assert questions == [f"Question {number}?" for number in range(turns)]


def test_the_store_files_are_private(keyed: Gateway):
    with keyed.client(bearer(USER_KEY)) as http:
        create(http)
    for file in (keyed.store, keyed.store.with_name(keyed.store.name + "-wal")):
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
    assert stat.S_IMODE(keyed.store.parent.stat().st_mode) == 0o700


def test_a_store_that_cannot_be_written_stops_the_server_at_start(server: Server, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    gateway = ours(
        server.model_path,
        tmp_path / "gateway.log",
        *_gateway_flags(server, blocker / "responses.sqlite3"),
    )
    with all_stopped(gateway):
        while gateway.process.poll() is None:
            try:  # the old code served; the new one exits before it listens
                served = httpx.get(gateway.base_url + "/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                served = False
            assert not served, "the server started with an unwritable --response-store"
            time.sleep(0.2)
    assert gateway.process.returncode == 2
    assert "--response-store" in gateway.log_path.read_text()
    assert "cannot be written" in gateway.log_path.read_text()
