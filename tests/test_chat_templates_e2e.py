"""Templates through the real server: the model's own template, /tokenize, template errors."""

from __future__ import annotations

from transformers import AutoTokenizer

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Say {{ 7*7 }} back to me, literally."},
]


def _tokenize(http, server, **fields) -> dict:
    response = http.post("/tokenize", json={"model": server.model, **fields})
    assert response.status_code == 200, response.text
    return response.json()


def test_default_model_template_matches_transformers(server, http):
    body = _tokenize(http, server, messages=MESSAGES)
    tokenizer = AutoTokenizer.from_pretrained(server.model_path)
    expected = tokenizer.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    assert body["prompt"] == expected
    assert "{{ 7*7 }}" in body["prompt"], "message content is data, never template code"
    assert body["tokens"] == tokenizer.encode(expected, add_special_tokens=False)
    assert body["count"] == len(body["tokens"])
    assert body["max_model_len"] == 8192


def test_tokenize_counts_what_the_engine_received(server, http):
    body = _tokenize(http, server, messages=MESSAGES)
    reply = http.post(
        "/v1/chat/completions", json={"model": server.model, "messages": MESSAGES, "max_tokens": 1}
    ).json()
    assert reply["usage"]["prompt_tokens"] == body["count"]


def test_tokenize_prompt_and_detokenize_round_trip(server, http):
    body = _tokenize(http, server, prompt="Hello, world!")
    back = http.post("/detokenize", json={"model": server.model, "tokens": body["tokens"]}).json()
    assert back["prompt"] == "Hello, world!"


def test_request_template_raise_exception_is_400_with_its_message(server, http):
    template = (
        "{% if messages[0]['role'] != 'user' %}"
        "{{ raise_exception('First message must be from the user') }}{% endif %}x"
    )
    response = http.post(
        "/v1/chat/completions",
        json={"model": server.model, "messages": MESSAGES, "chat_template": template},
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "First message must be from the user"


def test_request_template_is_used(server, http):
    body = _tokenize(
        http,
        server,
        messages=MESSAGES,
        chat_template="{% for m in messages %}[{{ m.role }}]{% endfor %}",
    )
    assert body["prompt"] == "[system][user]"


def test_sandbox_escape_in_request_template_is_400(server, http):
    response = http.post(
        "/v1/chat/completions",
        json={
            "model": server.model,
            "messages": MESSAGES,
            "chat_template": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        },
    )
    assert response.status_code == 400
    assert "sandbox" in response.json()["error"]["message"]


def test_image_part_to_text_model_is_400(server, http):
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ],
        }
    ]
    response = http.post("/v1/chat/completions", json={"model": server.model, "messages": messages})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages.[0].content.[1].type"


def test_text_parts_are_joined_for_a_string_template(server, http):
    parts = [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
    ]
    joined = [{"role": "user", "content": "a\nb"}]
    assert (
        _tokenize(http, server, messages=parts)["prompt"]
        == _tokenize(http, server, messages=joined)["prompt"]
    )


def test_continue_final_message(server, http):
    messages = [
        {"role": "user", "content": "Finish: roses are"},
        {"role": "assistant", "content": "Roses are red,"},
    ]
    body = _tokenize(http, server, messages=messages, continue_final_message=True)
    assert body["prompt"].endswith("<|im_start|>assistant\nRoses are red,")
    response = http.post(
        "/v1/chat/completions",
        json={
            "model": server.model,
            "messages": messages,
            "continue_final_message": True,
            "add_generation_prompt": True,
        },
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "continue_final_message"
