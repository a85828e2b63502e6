"""One request through the three chat-shaped APIs: Chat Completions, Responses and
Anthropic's Messages. Each is a dialect over one pipeline, so the same messages,
greedy, give the same text and the same prompt, whatever that text is (it is taken
from the chat reply of the same server, never assumed).
"""

from __future__ import annotations

import anthropic
import openai
from conftest import Server

SYSTEM = "You are a terse assistant."
QUESTION = "Name three colours and say why you like them."
MAX_TOKENS = 32  # at least 16: the Responses API's minimum max_output_tokens


def test_the_same_request_gives_the_same_text_through_all_three_apis(
    server: Server, client: openai.OpenAI
):
    chat = client.chat.completions.create(
        model=server.model,
        messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}],
        temperature=0,
        max_completion_tokens=MAX_TOKENS,
    )
    response = client.responses.create(
        model=server.model,
        instructions=SYSTEM,
        input=QUESTION,
        temperature=0,
        max_output_tokens=MAX_TOKENS,
        store=False,
    )
    claude = anthropic.Anthropic(
        base_url=server.base_url, api_key=server.api_key, max_retries=0, timeout=120
    )
    message = claude.messages.create(
        model=server.model,
        system=SYSTEM,
        messages=[{"role": "user", "content": QUESTION}],
        max_tokens=MAX_TOKENS,
        extra_body={"temperature": 0},  # the SDK has no temperature argument
    )
    text = chat.choices[0].message.content
    assert text  # a reply to compare, whatever it says
    assert response.output_text == text
    assert "".join(block.text for block in message.content if block.type == "text") == text
    prompt_tokens = chat.usage.prompt_tokens
    assert response.usage.input_tokens == prompt_tokens
    # Anthropic's input_tokens exclude the prompt's cache read (the same prompt ran twice
    # before it): the three counts make the whole prompt.
    usage = message.usage
    cached = (usage.cache_read_input_tokens or 0) + (usage.cache_creation_input_tokens or 0)
    assert usage.input_tokens + cached == prompt_tokens
    output_tokens = chat.usage.completion_tokens
    assert response.usage.output_tokens == message.usage.output_tokens == output_tokens
