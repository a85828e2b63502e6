"""One timed request against an OpenAI-compatible server, streamed or not."""

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
    endpoint: str  # "chat", "completions" or "responses"
    stream: bool
    ignore_eos: bool
    extra_body: dict

    def payload(self, prompt: Prompt) -> dict:
        body: dict = {"model": self.model}
        if self.endpoint == "responses":
            body.update(input=prompt.text, max_output_tokens=prompt.output_tokens)
        else:
            body["max_tokens"] = prompt.output_tokens
        if self.endpoint == "chat":
            body["messages"] = [{"role": "user", "content": prompt.text}]
        elif self.endpoint == "completions":
            body["prompt"] = prompt.text
        if self.ignore_eos:
            body["ignore_eos"] = True
        if self.stream:
            body["stream"] = True
            if self.endpoint != "responses":  # its final event always carries usage
                body["stream_options"] = {"include_usage": True}
        return {**body, **self.extra_body}

    def text(self, body: dict) -> str:
        """The generated text a reply body, stream chunk or stream event carries."""
        if self.endpoint != "responses":
            return "".join(self.content(choice) for choice in body.get("choices") or [])
        if self.stream:
            return body["delta"] if body.get("type") == "response.output_text.delta" else ""
        return "".join(
            part.get("text", "")
            for item in body.get("output", [])
            if item.get("type") == "message"
            for part in item.get("content", [])
        )

    def usage(self, body: dict) -> tuple[int, int] | None:
        """(prompt, output) tokens, if this body, chunk or event reports them."""
        if self.endpoint == "responses":
            usage = (body.get("response") or {}).get("usage") if self.stream else body.get("usage")
            return (usage["input_tokens"], usage["output_tokens"]) if usage else None
        usage = body.get("usage")
        return (usage.get("prompt_tokens"), usage.get("completion_tokens")) if usage else None

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
    _take_usage(shape.usage(body), record)
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
            if "error" in chunk or chunk.get("type") == "response.failed":
                raise RequestFailed(response.status_code, _failure_message(chunk))
            _take_usage(shape.usage(chunk), record)
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


def _take_usage(usage: tuple[int, int] | None, record: RequestRecord) -> None:
    if usage:
        record.prompt_tokens, record.output_tokens_usage = usage


def _failure_message(chunk: dict) -> str:
    """A stream's error: chat's ``error`` object, or ``response.failed``'s error."""
    error = chunk.get("error") or (chunk.get("response") or {}).get("error") or {}
    return error.get("message") or str(error)


def _error_message(body: bytes | str) -> str:
    try:
        error = orjson.loads(body)["error"]
        return error.get("message") or str(error)
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        text = body.decode(errors="replace") if isinstance(body, bytes) else body
        return text[:300] or "(empty body)"
