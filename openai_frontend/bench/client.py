"""One timed request against an OpenAI-compatible server, streamed or not (or against
Anthropic's Messages API, ``--endpoint messages``)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx
import orjson

from openai_frontend.bench import ENDPOINTS
from openai_frontend.bench.corpus import Prompt, Tokenizer
from openai_frontend.bench.metrics import RequestRecord


@dataclass(frozen=True)
class RequestShape:
    """What every request of a run has in common."""

    model: str
    endpoint: str  # "chat", "completions" or "messages"
    stream: bool
    ignore_eos: bool
    extra_body: dict

    def payload(self, prompt: Prompt) -> dict:
        body: dict = {"model": self.model, "max_tokens": prompt.output_tokens}
        if self.endpoint == "completions":
            body["prompt"] = prompt.text
        else:
            body["messages"] = [{"role": "user", "content": prompt.text}]
        if self.ignore_eos:
            body["ignore_eos"] = True
        if self.stream:
            body["stream"] = True
            if self.endpoint != "messages":  # Messages streams always end with usage
                body["stream_options"] = {"include_usage": True}
        return {**body, **self.extra_body}

    def text(self, reply: dict) -> str:
        """The generated text a reply (or a stream chunk or event) carries."""
        if self.endpoint == "messages":
            return _messages_text(reply)
        return "".join(self.content(choice) for choice in reply.get("choices") or [])

    def content(self, choice: dict) -> str:
        """The generated text a choice (or a stream chunk's choice) carries."""
        if self.endpoint == "chat":
            part = choice.get("delta") if self.stream else choice.get("message")
            return (part or {}).get("content") or ""
        return choice.get("text") or ""


class RequestFailed(Exception):
    def __init__(self, status: int | None, message: str) -> None:
        super().__init__(message)
        self.status = status


async def timed_request(
    client: httpx.AsyncClient,
    shape: RequestShape,
    prompt: Prompt,
    record: RequestRecord,
    run_start: float,
    tokenizer: Tokenizer | None,
) -> RequestRecord:
    """Send one request and fill ``record``; failures are recorded, not raised."""
    sent = time.perf_counter()
    record.sent = sent - run_start
    try:
        if shape.stream:
            text = await _streamed(client, shape, prompt, record, sent)
        else:
            text = await _whole(client, shape, prompt, record, sent)
        record.e2el = time.perf_counter() - sent
        record.status = record.status or 200
        record.ok = True
    except RequestFailed as exc:
        record.status, record.error = exc.status, str(exc)
        return record
    except httpx.HTTPError as exc:
        record.error = f"{type(exc).__name__}: {exc}"
        return record
    if tokenizer is not None:
        record.output_tokens_counted = len(tokenizer.encode(text, add_special_tokens=False))
    record.output_tokens = (
        record.output_tokens_usage
        if record.output_tokens_usage is not None
        else record.output_tokens_counted or 0
    )
    return record


async def _whole(client, shape, prompt, record, sent) -> str:
    response = await client.post(ENDPOINTS[shape.endpoint], json=shape.payload(prompt))
    if response.status_code >= 400:
        raise RequestFailed(response.status_code, _error_message(response.content))
    body = orjson.loads(response.content)
    record.ttft = time.perf_counter() - sent  # the whole reply is the first token's arrival
    _take_usage(body.get("usage"), record)
    return shape.text(body)


async def _streamed(client, shape, prompt, record, sent) -> str:
    parts: list[str] = []
    last = None
    url = ENDPOINTS[shape.endpoint]
    async with client.stream("POST", url, json=shape.payload(prompt)) as response:
        record.status = response.status_code
        if response.status_code >= 400:
            raise RequestFailed(response.status_code, _error_message(await response.aread()))
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = orjson.loads(line[6:])
            if "error" in chunk:
                raise RequestFailed(response.status_code, _error_message(line[6:]))
            _take_usage(chunk.get("usage") or (chunk.get("message") or {}).get("usage"), record)
            text = shape.text(chunk)
            if not text:
                continue
            now = time.perf_counter()
            if last is None:
                record.ttft = now - sent
            else:
                record.itl.append(now - last)
            last = now
            parts.append(text)
    return "".join(parts)  # an empty reply is a success without a TTFT


def _messages_text(reply: dict) -> str:
    """A Message's text blocks, or a ``text_delta`` event's text."""
    if reply.get("type") == "content_block_delta":
        return reply["delta"].get("text") or ""
    return "".join(block.get("text") or "" for block in reply.get("content") or [])


def _take_usage(usage: dict | None, record: RequestRecord) -> None:
    """OpenAI's ``prompt_tokens``/``completion_tokens`` or Anthropic's ``input_tokens``/
    ``output_tokens`` (a Messages stream tells them in ``message_start``, then the
    final count in ``message_delta``)."""
    if usage:
        record.prompt_tokens = usage.get("prompt_tokens", usage.get("input_tokens"))
        record.output_tokens_usage = usage.get("completion_tokens", usage.get("output_tokens"))


def _error_message(body: bytes | str) -> str:
    try:
        error = orjson.loads(body)["error"]
        return error.get("message") or str(error)
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        text = body.decode(errors="replace") if isinstance(body, bytes) else body
        return text[:300] or "(empty body)"
