"""``/v1/responses`` against the real server and engine: the OpenAI SDK, stored
conversations, agreement with chat, errors, and aborts on disconnect.

Expected texts are never assumed: each is taken from the same server first (greedy),
then compared. Bodies and events are validated against OpenAI's own schemas.
"""

from __future__ import annotations

import json

import httpx
import jsonschema
import openai
import pytest
from conftest import USER_KEY, USER_KEY_2, Server
from disconnects import assert_a_disconnect_mid_stream_aborts
from parser_fixtures import ParserServer
from servers import all_stopped, ours, wait_ready
from spec import assert_valid
from weather_agent import assert_the_agents_sdk_runs_the_weather_tool

from openai_frontend.default_model import MODEL_NAME

QUESTION = "Name three colours."


def create(http: httpx.Client, model: str, **fields) -> dict:
    """A non-streamed response, checked against the spec (``input``: QUESTION unless given)."""
    answer = http.post("/v1/responses", json={"model": model, "input": QUESTION, **fields})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert_valid(body, "Response")
    return body


def events_of(text: str, after: int = -1) -> list[dict]:
    """A stream's events, each valid, numbered on from ``after`` (a resumed stream's)."""
    events = []
    for block in filter(None, text.split("\n\n")):
        name, data = block.split("\n", 1)
        event = json.loads(data.removeprefix("data: "))
        assert name == f"event: {event['type']}"
        assert_valid(event, "ResponseStreamEvent")
        events.append(event)
    numbers = [event["sequence_number"] for event in events]
    assert numbers == list(range(after + 1, after + 1 + len(events)))
    return events


def test_the_sdk_creates_and_streams_the_same_greedy_response(server: Server, client, http):
    made = client.responses.create(
        model=server.model, input=QUESTION, temperature=0, max_output_tokens=24
    )
    assert made.status in ("completed", "incomplete") and made.output_text
    with client.responses.stream(
        model=server.model, input=QUESTION, temperature=0, max_output_tokens=24
    ) as stream:
        events = list(stream)
    # get_final_response() wants response.completed; a reply cut at 24 tokens is
    # (rightly) response.incomplete, so the last event is read instead.
    deltas = [event.delta for event in events if event.type == "response.output_text.delta"]
    assert events[-1].type == f"response.{made.status}"
    final = events[-1].response
    assert "".join(deltas) == final.output_text == made.output_text
    assert final.usage.output_tokens == made.usage.output_tokens
    raw = http.post(
        "/v1/responses",
        json={
            "model": server.model,
            "input": QUESTION,
            "temperature": 0,
            "max_output_tokens": 24,
            "stream": True,
        },
    )
    events = events_of(raw.text)
    assert events[0]["type"] == "response.created" and events[1]["type"] == "response.in_progress"
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == made.output_text


WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Get the current weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 20}},
        "required": ["city"],
        "additionalProperties": False,
    },
}


def test_a_named_tool_choice_gives_a_function_call_item_streamed_or_not(server: Server, http):
    body = {
        "model": server.model,
        "input": "What is the weather in Paris?",
        "tools": [WEATHER],
        "tool_choice": {"type": "function", "name": "get_weather"},
        "temperature": 0,
        "max_output_tokens": 64,
    }
    whole = create(http, **body)
    [call] = [item for item in whole["output"] if item["type"] == "function_call"]
    assert call["name"] == "get_weather" and call["call_id"]
    jsonschema.validate(json.loads(call["arguments"]), WEATHER["parameters"])
    events = events_of(http.post("/v1/responses", json={**body, "stream": True}).text)
    done = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    deltas = [e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta"]
    assert len(done) == 1 and done[0]["name"] == "get_weather"
    assert "".join(deltas) == done[0]["arguments"] == call["arguments"]
    assert events[-1]["response"]["output"][-1]["arguments"] == call["arguments"]


def test_text_format_json_schema_constrains_the_output(server: Server, http):
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["city", "population"],
        "additionalProperties": False,
    }
    body = create(
        http,
        server.model,
        input="Give me a city and its population as JSON.",
        temperature=0,
        max_output_tokens=60,
        text={"format": {"type": "json_schema", "name": "city", "schema": schema, "strict": True}},
    )
    assert body["text"]["format"]["name"] == "city"
    jsonschema.validate(json.loads(body["output"][0]["content"][0]["text"]), schema)


def test_previous_response_id_renders_the_earlier_turns(server: Server, client, http):
    first = client.responses.create(
        model=server.model, input="My name is Ada.", temperature=0, max_output_tokens=16
    )
    second = client.responses.create(
        model=server.model,
        input="What is my name?",
        previous_response_id=first.id,
        temperature=0,
        max_output_tokens=16,
    )
    assert second.previous_response_id == first.id
    turns = [
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": first.output_text},
        {"role": "user", "content": "What is my name?"},
    ]
    rendered = http.post("/tokenize", json={"model": server.model, "messages": turns}).json()
    alone = http.post("/tokenize", json={"model": server.model, "messages": turns[-1:]}).json()
    assert second.usage.input_tokens == rendered["count"] > alone["count"]
    items = client.responses.input_items.list(second.id, order="asc")
    assert [item.type for item in items.data] == ["message"] * 3
    assert items.data[1].content[0].text == first.output_text


def test_stored_responses_belong_to_their_key_and_can_be_deleted(server: Server, client):
    made = client.responses.create(model=server.model, input=QUESTION, max_output_tokens=16)
    assert client.responses.retrieve(made.id).id == made.id
    other = openai.OpenAI(base_url=server.url("/v1"), api_key=USER_KEY_2, max_retries=0)
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(made.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.create(
            model=server.model, input="and?", previous_response_id=made.id, max_output_tokens=16
        )
    client.responses.delete(made.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(made.id)


@pytest.mark.parametrize(
    ("fields", "status", "param"),
    [
        ({"previous_response_id": "resp_unknown"}, 404, "previous_response_id"),
        ({"tools": [{"type": "web_search"}]}, 400, "tools[0].type"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_audio", "data": "x"}]}]},
            400,
            "input[0].content[0].type",
        ),
    ],
)
def test_bad_input_is_refused_by_name(server: Server, http, fields, status, param):
    answer = http.post("/v1/responses", json={"model": server.model, "input": "hi", **fields})
    assert answer.status_code == status, answer.text
    assert_valid(answer.json(), "ErrorResponse")
    assert answer.json()["error"]["param"] == param


def test_a_disconnect_mid_stream_aborts_in_the_engine(server: Server, http):
    payload = {
        "model": server.model,
        "input": "Write a very long essay about the sea.",
        "max_output_tokens": 2000,
        "ignore_eos": True,
        "stream": True,
    }
    # A few text deltas: the request is running.
    running = "event: response.output_text.delta"
    assert_a_disconnect_mid_stream_aborts(server, http, "/v1/responses", payload, running)


def test_a_restarted_gateway_still_has_its_stored_responses(server: Server, tmp_path):
    """A gateway (remote engine, in front of the session server's engine) stopped and
    started again on the same SQLite file still serves and continues its responses."""
    store = tmp_path / "responses.sqlite3"
    flags = (
        *("--served-model-name", MODEL_NAME, "--engine", "remote"),
        *(f"--upstream={server.base_url}", "--upstream-api-key", USER_KEY),
        *("--api-key", USER_KEY, "--response-store", str(store)),
    )
    headers = {"Authorization": f"Bearer {USER_KEY}"}
    body = {"model": MODEL_NAME, "input": QUESTION, "max_output_tokens": 16}
    made = None
    for start in range(2):
        gateway = ours(server.model_path, tmp_path / f"gateway-{start}.log", *flags)
        with (
            all_stopped(gateway),
            httpx.Client(base_url=gateway.base_url, timeout=120, headers=headers) as http,
        ):
            wait_ready(gateway)
            if made is None:
                made = http.post("/v1/responses", json=body).json()
                continue
            assert http.get(f"/v1/responses/{made['id']}").json() == made
            follow = http.post(
                "/v1/responses", json={**body, "input": "More?", "previous_response_id": made["id"]}
            )
            assert follow.status_code == 200, follow.text
            assert follow.json()["usage"]["input_tokens"] > made["usage"]["input_tokens"]
    assert store.is_file()


def test_the_openai_agents_sdk_runs_a_function_tool_through_responses(
    parser_server: ParserServer,
):
    """The Agents SDK's default model class speaks the Responses API; with the weather
    adapter the model calls the tool, the SDK runs it and sends back its output."""
    assert_the_agents_sdk_runs_the_weather_tool(parser_server, "OpenAIResponsesModel")
