"""OpenAI's request fields the official SDK sends, through the real server: accepted
where they change no token, refused by name where this server cannot honour them."""

from __future__ import annotations

import openai
import pytest
from spec import assert_valid

QUESTION = [{"role": "user", "content": "Say hi."}]


def test_the_sdks_typical_fields_are_accepted(server, client):
    completion = client.chat.completions.create(
        model=server.model,
        messages=QUESTION,
        max_completion_tokens=4,
        user="user-1234",
        metadata={"team": "search"},
        safety_identifier="safety-identifier-1234",
        prompt_cache_key="conversation-1234",
        service_tier="auto",
        store=False,
        modalities=["text"],
    )
    assert_valid(completion.model_dump(exclude_unset=True), "CreateChatCompletionResponse")
    assert completion.usage.prompt_tokens_details.cached_tokens >= 0


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"store": True}, "store"),
        ({"priority": -1}, "priority"),
        ({"service_tier": "flex"}, "service_tier"),
        ({"verbosity": "low"}, "verbosity"),
    ],
)
def test_what_this_server_cannot_honour_is_a_400_naming_it(server, client, fields, param):
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model=server.model, messages=QUESTION, max_tokens=4, extra_body=fields
        )
    assert_valid({"error": refused.value.body}, "ErrorResponse")
    assert refused.value.body["param"] == param
