"""The built-in chat page at ``/``, in headless Chromium against the real server.

One browser for the module. Expected texts come from the same server through the API
(greedy, same fields), never from what the model is believed to know. Without Chromium
and chromedriver every test here skips with the install command (tests/browser.py).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jsonschema
import pytest
from browser import ChatPage, start_chromium
from conftest import SERVED_ADAPTERS, Server, engine_view
from fault_engines import FaultInjectingEngine, served_over_http
from prometheus_client.parser import text_string_to_metric_families
from test_tools import SCHEMAS, WEATHER
from tool_replies import ask_streamed, joined

from engines.base import EngineError

XSS = "<img src=x onerror=alert(1)>"
SYSTEM = "You are a helpful assistant."
QUESTION = "Write a short poem about the sea."
GREEDY = {"temperature": 0, "max_tokens": 40}
RUNNING_GAUGE = "openai_frontend_requests_running"


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def driver(downloads: Path) -> Iterator[object]:
    chromium = start_chromium(downloads)
    try:
        yield chromium
    finally:
        chromium.quit()


@pytest.fixture
def page(driver, server: Server) -> ChatPage:
    """A first-time visitor who has entered the right key, settings at their defaults."""
    chat = ChatPage(driver, server.base_url)
    chat.open_fresh()
    chat.enter_key(server.api_key)
    assert chat.state() == "idle"
    chat.console_errors()  # from here on, each test reads only its own
    return chat


@pytest.fixture(scope="module")
def answered(driver, server: Server, http: httpx.Client) -> dict:
    """One greedy answer through the page, with its growth and the API's same answer."""
    chat = ChatPage(driver, server.base_url)
    chat.open_fresh()
    chat.enter_key(server.api_key)
    chat.console_errors()
    chat.configure(system=SYSTEM, **GREEDY)
    chat.record_answer_growth()
    chat.send(QUESTION)
    chat.wait_idle()
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]
    reference = joined(ask_streamed(http, {"model": server.model, "messages": messages, **GREEDY}))
    return {
        "growth": chat.answer_growth(),
        "stored": chat.stored(),
        "shown": chat.messages(),
        "answer_text": chat.answer_content(),
        "figures": chat.last_answer().find_element("css selector", ".figures").text,
        "errors": chat.console_errors(),
        "screenshot": chat.screenshot_conversation("chat-page.png"),
        "reference": reference,
    }


def _running(http: httpx.Client) -> float:
    families = text_string_to_metric_families(http.get("/metrics").text)
    return sum(
        sample.value
        for family in families
        for sample in family.samples
        if sample.name == RUNNING_GAUGE
    )


def _letters(text: str) -> str:
    """The letters of ``text``: what Markdown rendering never removes."""
    return re.sub(r"[^A-Za-z]", "", text)


def test_the_page_loads_without_console_errors_and_lists_models_and_adapters(
    driver, server: Server
):
    chat = ChatPage(driver, server.base_url)
    chat.open_fresh()
    assert chat.state() == "needs-key"  # asks for the key before any request
    assert chat.by_id("key-form").is_displayed()
    chat.enter_key(server.api_key)
    assert chat.state() == "idle"
    assert chat.model_options() == [server.model, *SERVED_ADAPTERS]
    assert chat.console_errors() == []


def test_without_the_right_key_the_page_shows_the_401_message_then_works_with_it(
    driver, server: Server
):
    expected = httpx.get(server.url("/v1/models")).json()["error"]["message"]
    chat = ChatPage(driver, server.base_url)
    chat.open_fresh()
    chat.enter_key("not-the-key")
    assert chat.state() == "needs-key"
    assert chat.by_id("error").text == f"401: {expected}"
    chat.enter_key(server.api_key)
    assert chat.state() == "idle"
    assert not chat.by_id("error").is_displayed()
    assert server.model in chat.model_options()


def test_the_answer_grows_over_several_dom_updates(answered):
    growth = answered["growth"]
    assert len(growth) >= 3, growth
    assert growth[-1] == answered["answer_text"]


def test_the_final_text_is_the_apis_greedy_answer(answered):
    reference = answered["reference"]
    stored_answer = answered["stored"][0]["messages"][-1]
    assert stored_answer["content"] == reference["content"]
    assert _letters(answered["answer_text"]) == _letters(reference["content"])
    usage = reference["usage"]
    tokens = f"{usage['prompt_tokens']} prompt + {usage['completion_tokens']} completion tokens"
    assert tokens in answered["figures"]
    assert re.search(r"TTFT \d+ ms · [\d.]+ tokens/s", answered["figures"])
    assert answered["errors"] == []
    assert answered["screenshot"].stat().st_size > 0


def test_a_reload_keeps_the_conversation(answered, driver, server: Server):
    chat = ChatPage(driver, server.base_url)
    chat.reload()
    assert chat.messages() == answered["shown"]
    titles = [item.text for item in chat.all("#conversations li")]
    assert titles == [QUESTION[:40]]


def test_stop_halts_the_stream_and_the_server_aborts_the_request(
    page: ChatPage, server: Server, http: httpx.Client
):
    page.configure(temperature=0, max_tokens=2000)
    page.send("Count from 1 to 1000, separated by commas.")
    page.wait_until(page.answer_content, "the first text")
    assert page.state() == "streaming", "the answer ended before Stop could be pressed"
    assert _running(http) == 1
    page.by_id("stop-button").click()
    page.wait_until(lambda: page.state() == "idle", "the page to stop", 10)
    page.wait_until(lambda: _running(http) == 0, "the running-requests gauge to return to 0", 10)
    assert engine_view(http)["engine_unfinished_requests"] == 0
    stopped = page.last_answer().text
    time.sleep(1)
    assert page.last_answer().text == stopped
    assert "stopped" in page.last_answer().find_element("css selector", ".figures").text
    assert page.console_errors() == []


def test_a_users_markup_stays_text(page: ChatPage):
    page.configure(max_tokens=8)
    page.send(XSS)
    page.wait_idle()
    assert not page.alert_open()
    assert page.all("img") == []
    assert page.all("#messages .message.user .plain")[-1].text == XSS


def test_a_replys_markup_stays_text_and_its_markdown_renders(page: ChatPage, server: Server):
    reply = f"Look: {XSS} **bold** and `a < b`\n\n```html\n<script>alert(2)</script>\n```\n- one"
    reasoning = f"thinking {XSS}"
    call = {"id": "call_1", "name": "get_weather", "arguments": '{"city": "<b>x</b>"}'}
    conversation = {
        "id": "c-markup",
        "title": "markup",
        "created": "2026-01-01T00:00:00Z",
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": reply, "reasoning": reasoning, "tool_calls": [call]},
        ],
    }
    page.store_conversations([conversation])
    page.reload()
    answer = page.last_answer()
    assert not page.alert_open()
    assert page.all("#messages img, #messages script, #messages b") == []
    assert XSS in answer.text
    assert answer.find_element("css selector", "strong").text == "bold"
    assert answer.find_element("css selector", "p code").text == "a < b"
    assert answer.find_element("css selector", "pre code").text == "<script>alert(2)</script>"
    assert answer.find_element("css selector", "li").text == "one"
    reasoning_block = answer.find_element("css selector", "details.reasoning")
    assert reasoning_block.get_attribute("open") is None  # collapsed until clicked
    reasoning_block.click()
    assert XSS in reasoning_block.text
    assert "get_weather" in answer.find_element("css selector", ".tool-call").text
    assert page.console_errors() == []


def test_show_prompt_is_the_servers_rendered_prompt(
    page: ChatPage, server: Server, http: httpx.Client
):
    page.configure(system=SYSTEM)
    page.type_message("Hello there")
    page.by_id("show-prompt").click()
    page.wait_until(lambda: page.by_id("prompt-text").text, "the prompt")
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Hello there"}]
    expected = http.post("/tokenize", json={"model": server.model, "messages": messages}).json()
    shown = page.driver.execute_script("return document.getElementById('prompt-text').textContent")
    assert shown == expected["prompt"]
    assert f"({expected['count']} tokens)" in page.by_id("prompt-summary").text


def test_a_forced_tool_call_shows_as_a_block(page: ChatPage):
    """Greedy, with room for several calls: "required" lets the model make more than one
    (sampled, CI once ran out of tokens inside the array and got no call at all)."""
    page.configure(
        tools=json.dumps([WEATHER]), tool_choice="required", temperature=0, max_tokens=400
    )
    page.send("What is the weather in Paris?")
    page.wait_idle()
    stored = page.stored()[0]["messages"][-1]
    assert stored.get("error") is None, stored
    calls = stored.get("tool_calls")
    assert calls, stored
    for call in calls:
        jsonschema.validate(json.loads(call["arguments"]), SCHEMAS[call["name"]])
    blocks = page.last_answer().find_elements("css selector", ".tool-call")
    assert len(blocks) == len(calls)
    for block, call in zip(blocks, calls, strict=True):
        assert f"Tool call: {call['name']}" in block.text
        shown = block.find_element("css selector", "code").text
        assert json.loads(shown) == json.loads(call["arguments"])


def test_conversations_can_be_added_renamed_exported_and_deleted(page: ChatPage, downloads):
    before = len(page.all("#conversations li"))
    page.by_id("new-chat").click()
    assert len(page.all("#conversations li")) == before + 1
    title = page.by_id("chat-title")
    title.clear()
    title.send_keys("Renamed chat")
    page.reload()
    assert [li.text for li in page.all("#conversations li.current")] == ["Renamed chat"]
    (renamed,) = [c for c in page.stored() if c["title"] == "Renamed chat"]
    page.by_id("export-chat").click()
    exported = downloads / "Renamed_chat.json"
    page.wait_until(exported.is_file, "the exported file", 10)
    assert json.loads(exported.read_text()) == renamed
    page.by_id("delete-chat").click()
    assert "Renamed chat" not in [li.text for li in page.all("#conversations li")]
    assert "Renamed chat" not in [c["title"] for c in page.stored()]


def test_a_picked_adapter_answers_as_through_the_api(
    page: ChatPage, server: Server, http: httpx.Client
):
    adapter = SERVED_ADAPTERS[0]
    page.choose_model(adapter)
    page.configure(temperature=0, max_tokens=16)
    page.send("Hello!")
    page.wait_idle()
    messages = [{"role": "user", "content": "Hello!"}]
    body = {"model": adapter, "messages": messages, "temperature": 0, "max_tokens": 16}
    reference = joined(ask_streamed(http, body))
    stored = page.stored()[0]["messages"][-1]
    assert (stored["model"], stored["content"]) == (adapter, reference["content"])


def test_an_api_error_shows_its_message_and_parameter(
    page: ChatPage, server: Server, http: httpx.Client
):
    fields = {"max_tokens": 10**7}
    page.configure(**fields)
    page.send("Hello!")
    page.wait_idle()
    messages = [{"role": "user", "content": "Hello!"}]
    response = http.post(
        "/v1/chat/completions",
        json={"model": server.model, "messages": messages, "stream": True, **fields},
    )
    error = response.json()["error"]
    expected = f"{response.status_code}: {error['message']} (parameter: {error['param']})"
    assert page.last_answer().find_element("css selector", ".error").text == expected


def test_a_second_turn_after_a_tool_call_sends_the_call_and_its_results(page: ChatPage):
    """Each typed reply answers the next pending call; once all are answered the page
    asks again, with the calls and their results in the history (the server's template
    takes them: the second answer has no error)."""
    page.configure(
        tools=json.dumps([WEATHER]), tool_choice="required", temperature=0, max_tokens=400
    )
    page.send("What is the weather in Paris?")
    page.wait_idle()
    first = page.stored()[0]["messages"][-1]
    assert first.get("error") is None and first.get("tool_calls"), first
    page.configure(tool_choice="none", max_tokens=4)
    page.record_requests()
    results = []
    for number, call in enumerate(first["tool_calls"]):
        assert call["id"] in page.by_id("input").get_attribute("placeholder")
        results.append(json.dumps({"temperature_c": 20 + number}))
        page.send(results[-1])
        if number + 1 < len(first["tool_calls"]):
            assert page.sent_requests() == []  # still calls to answer
    page.wait_until(lambda: page.answers_done(2), "the answer after the tool results")
    (body,) = page.sent_requests()
    calls = [
        {
            "id": c["id"],
            "type": "function",
            "function": {"name": c["name"], "arguments": c["arguments"]},
        }
        for c in first["tool_calls"]
    ]
    assert body["messages"] == [
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": first["content"] or None, "tool_calls": calls},
        *(
            {"role": "tool", "tool_call_id": c["id"], "content": result}
            for c, result in zip(first["tool_calls"], results, strict=True)
        ),
    ]
    assert page.stored()[0]["messages"][-1].get("error") is None
    assert len(page.all("#messages .message.tool")) == len(calls)
    assert page.console_errors() == []


def test_a_failed_save_is_shown_and_the_page_stays_usable(page: ChatPage):
    """localStorage full from the answer's save on (the question's save fits): the
    page says so, ends the turn, and answers the next question too."""
    page.configure(max_tokens=4)
    page.fail_saves(after=1)
    page.send("Hello!")
    page.wait_until(lambda: page.answers_done(1), "the first answer to end")
    assert "quota" in page.by_id("error").text.lower()
    assert not page.by_id("send").get_attribute("disabled")
    page.send("Hello again!")
    page.wait_until(lambda: page.answers_done(2), "the second answer to end")
    assert page.by_id("stop-button").get_attribute("disabled")
    assert page.console_errors() == []


@pytest.fixture
def faulty() -> Iterator[tuple[str, FaultInjectingEngine]]:
    """A page on the real app whose engine fails on purpose (no model: its text is
    filler); the test turns the fault on and off."""
    engine = FaultInjectingEngine()
    with served_over_http(engine) as base_url:
        yield base_url, engine


@pytest.mark.parametrize(
    "tokens_before_fault", [2, 0], ids=["error-frame-mid-stream", "5xx-before-the-first-token"]
)
def test_a_failed_turn_is_shown_and_not_sent_again(driver, faulty, tokens_before_fault: int):
    """After an error (an error frame mid-stream, or a 5xx) the page shows it, is not
    busy, and the next turn sends neither the failed answer nor its question."""
    base_url, engine = faulty
    engine.tokens_before_fault = tokens_before_fault
    chat = ChatPage(driver, base_url)
    chat.open_fresh()
    assert chat.state() == "idle"
    chat.console_errors()
    chat.configure(max_tokens=8)
    chat.record_requests()
    engine.raises = EngineError("injected fault", 500)
    chat.send("First question")
    chat.wait_until(
        lambda: chat.state() == "idle" and chat.all("#messages .message.assistant .error"),
        "the error to show",
    )
    assert chat.answer_content() == "x" * tokens_before_fault  # the deltas before it
    assert chat.last_answer().find_element("css selector", ".error").text
    assert not chat.by_id("send").get_attribute("disabled")
    engine.raises = None
    engine.tokens_before_fault = 2
    chat.send("Second question")
    chat.wait_until(
        lambda: (
            len(chat.sent_requests()) == 2
            and chat.state() == "idle"
            and chat.last_answer().find_elements("css selector", ".figures")
        ),
        "the second answer",
    )
    assert chat.answer_content() == "xx"
    first, second = chat.sent_requests()
    assert first["messages"] == [{"role": "user", "content": "First question"}]
    assert second["messages"] == [{"role": "user", "content": "Second question"}]
    assert chat.stored()[0]["messages"][-1].get("error") is None
    # the browser logs a 5xx response itself ("network"); the page's own code logs nothing
    assert [e for e in chat.console_errors() if e["source"] != "network"] == []


def test_a_fast_stream_is_redrawn_at_most_once_a_frame(driver, faulty):
    """Thousands of deltas as fast as the app sends them (filler text): the answer is
    drawn once per animation frame at most, plus the final draw, not once per read."""
    base_url, engine = faulty
    engine.tokens_before_fault = 3000
    chat = ChatPage(driver, base_url)
    chat.open_fresh()
    chat.configure(max_tokens=4000)
    chat.count_renders_and_frames()
    chat.send("Go")
    chat.wait_until(lambda: chat.answers_done(1), "the answer")
    counts = chat.renders_and_frames()
    assert chat.answer_content() == "x" * 3000
    assert 1 <= counts["renders"] <= counts["frames"] + 2, counts
