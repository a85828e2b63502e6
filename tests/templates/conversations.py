"""Conversations that exercise what real chat templates branch on."""

from __future__ import annotations

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. Paris"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}

TOOL_CALL = {
    "id": "call12345",
    "type": "function",
    "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}},
}

#: name -> (messages, render options)
CASES: dict[str, tuple[list[dict], dict]] = {
    "single_user": ([{"role": "user", "content": "Hello! Ünïcødé ✓ 你好"}], {}),
    "system_multi_turn": (
        [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Hi there."},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "What is 2+2? Use {{ braces }} literally."},
        ],
        {},
    ),
    "no_generation_prompt": (
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hey!"}],
        {"add_generation_prompt": False},
    ),
    "tools_and_results": (
        [
            {"role": "system", "content": "You can call tools."},
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]},
            {
                "role": "tool",
                "tool_call_id": "call12345",
                "name": "get_weather",
                "content": "22 C, sunny",
            },
        ],
        {"tools": [WEATHER_TOOL]},
    ),
    "tools_offered_only": (
        [{"role": "user", "content": "Weather in Rome?"}],
        {"tools": [WEATHER_TOOL]},
    ),
    "continue_final_message": (
        [
            {"role": "user", "content": "Write a haiku."},
            {"role": "assistant", "content": "Autumn moon rises"},
        ],
        {"continue_final_message": True, "add_generation_prompt": False},
    ),
    "thinking_off": (
        [{"role": "user", "content": "Think less."}],
        {"template_kwargs": {"enable_thinking": False}},
    ),
    "documents": (
        [{"role": "user", "content": "Summarise the document."}],
        {"documents": [{"title": "Note", "text": "The sky is blue."}]},
    ),
    "parts_list": (
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "First part."},
                    {"type": "text", "text": "Second."},
                ],
            }
        ],
        {},
    ),
}
