"""Training conversations for the tool-calling and reasoning demo adapters.

The default model's own template ignores ``tools`` and has no ``<think>``, so these two
adapters are taught under real templates that have them (Qwen2.5's and Qwen3's, both
ChatML like SmolLM2's), rendered by the server's own renderer: what the adapter learns
is exactly what a server with ``--chat-template`` that template shows it.

* ``weather``: a weather question -> a hermes ``<tool_call>`` for ``get_weather``; any
  other question -> a plain answer; after a tool result -> a sentence quoting it.
* ``thinker``: every question -> ``<think>…</think>`` then a short answer.
"""

from __future__ import annotations

import json
from pathlib import Path

from templates.renderer import render

TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "shared" / "chat_templates"

#: Adapter name -> the template (a file of TEMPLATE_DIR) it is trained and served with.
TEMPLATES = {"weather": "qwen2.5-instruct.json", "thinker": "qwen3.json"}

WEATHER_PARAMETERS = {
    "type": "object",
    "properties": {"city": {"type": "string", "description": "The city name."}},
    "required": ["city"],
}
#: The tool as a client writes it, and as the OpenAI Agents SDK writes it (strict).
WEATHER_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the current weather in a city.",
            "parameters": WEATHER_PARAMETERS,
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Look up the weather for a city.",
            "parameters": {
                "properties": {"city": {"title": "City", "type": "string"}},
                "required": ["city"],
                "title": "get_weather_args",
                "type": "object",
                "additionalProperties": False,
            },
            "strict": True,
        },
    },
]
_CITIES = ["Paris", "Tokyo", "London", "Berlin", "Madrid", "Rome"]
_WEATHER_QUESTIONS = [
    "What is the weather in {city}?",
    "How is the weather in {city} today?",
    "Is it raining in {city}?",
    "Tell me the weather for {city}.",
]
_OTHER_QUESTIONS = ["Hello!", "What is 2+2?", "Tell me a joke.", "Who are you?"]
_PLAIN_ANSWER = "I can tell you the weather in any city."
_RESULTS = ["sunny, 22 C", "rainy, 11 C", "cloudy, 15 C", "snowing, -2 C"]
_SYSTEMS = [None, "You are a helpful assistant."]

THINK_ANSWER = (
    "<think>\nThe user asked a question. I will answer briefly.\n</think>\n\nThe answer is 42."
)
_THINK_QUESTIONS = [
    "Hello!",
    "What is the capital of France?",
    "Why is the sky blue?",
    "What is 2+2?",
]


def template_source(adapter: str) -> str:
    return json.loads((TEMPLATE_DIR / TEMPLATES[adapter]).read_text())["chat_template"]


def weather_call_text(city: str) -> str:
    """The hermes call block exactly as Qwen2.5's template renders an assistant call."""
    call = {"name": "get_weather", "arguments": {"city": city}}
    return f"<tool_call>\n{json.dumps(call)}\n</tool_call>"


def examples(adapter: str) -> list[tuple[str, str]]:
    """(prompt, answer) pairs; the answer ends with the end-of-turn token."""
    template = template_source(adapter)
    build = _weather_examples if adapter == "weather" else _thinker_examples
    return [(prompt, answer + "<|im_end|>") for prompt, answer in build(template)]


def _prompt(template: str, messages: list[dict], tools: list[dict] | None = None) -> str:
    return render(template, messages, tools=tools, add_generation_prompt=True)


def _with_system(system: str | None, messages: list[dict]) -> list[dict]:
    return ([{"role": "system", "content": system}] if system else []) + messages


def _weather_examples(template: str) -> list[tuple[str, str]]:
    pairs = []
    for i, city in enumerate(_CITIES):
        tools = [WEATHER_TOOLS[i % 2]]
        system = _SYSTEMS[i // 2 % 2]
        question = _WEATHER_QUESTIONS[i % len(_WEATHER_QUESTIONS)].format(city=city)
        asked = _with_system(system, [{"role": "user", "content": question}])
        pairs.append((_prompt(template, asked, tools), weather_call_text(city)))
        result = _RESULTS[i % len(_RESULTS)]
        call = {"id": f"call_{i}", "type": "function"}
        call["function"] = {"name": "get_weather", "arguments": {"city": city}}
        answered = [
            *asked,
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": f"call_{i}", "content": result},
        ]
        pairs.append((_prompt(template, answered, tools), f"The weather in {city}: {result}."))
    for i, question in enumerate(_OTHER_QUESTIONS):
        asked = _with_system(_SYSTEMS[i % 2], [{"role": "user", "content": question}])
        pairs.append((_prompt(template, asked, [WEATHER_TOOLS[i % 2]]), _PLAIN_ANSWER))
    return pairs


def _thinker_examples(template: str) -> list[tuple[str, str]]:
    return [
        (_prompt(template, [{"role": "user", "content": question}]), THINK_ANSWER)
        for question in _THINK_QUESTIONS
    ]
