"""The OpenAI Agents SDK driving the ``weather`` demo adapter, through either of its
model classes (Chat Completions in tests/test_tools.py, Responses in
tests/test_responses.py): one agent, so both tests check the same round trip."""

from __future__ import annotations

from typing import Literal

import pytest
from parser_fixtures import ParserServer


def assert_the_agents_sdk_runs_the_weather_tool(
    parser_server: ParserServer,
    model_class: Literal["OpenAIChatCompletionsModel", "OpenAIResponsesModel"],
) -> None:
    """The model calls ``get_weather``, the SDK runs it and sends back its output, and
    the run ends in a text answer. The SDK is imported here: it is a test extra."""
    agents = pytest.importorskip("agents", reason="needs openai-agents (the test extra)")
    from openai import AsyncOpenAI

    agents.set_tracing_disabled(True)
    called: list[str] = []

    @agents.function_tool
    def get_weather(city: str) -> str:
        """Look up the weather for a city."""
        called.append(city)
        return "sunny, 22 C"

    client = AsyncOpenAI(base_url=parser_server.url("/v1"), api_key="unused", max_retries=0)
    agent = agents.Agent(
        name="weather",
        instructions="You are a helpful assistant.",
        tools=[get_weather],
        model=getattr(agents, model_class)(model="weather", openai_client=client),
        model_settings=agents.ModelSettings(temperature=0),
    )
    result = agents.Runner.run_sync(agent, "What is the weather in Rome?", max_turns=4)
    assert called and all(isinstance(city, str) for city in called)
    assert isinstance(result.final_output, str) and result.final_output
