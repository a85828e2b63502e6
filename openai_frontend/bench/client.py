"""One timed request against an OpenAI-compatible server, streamed or not."""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx
import orjson

from openai_frontend.bench.corpus import Prompt, Tokenizer
from openai_frontend.bench.dialects import DIALECTS, BenchDialect, Usage
from openai_frontend.bench.metrics import RequestRecord


@dataclass(frozen=True)
class RequestShape:
    """What every request of a run has in common."""

    model: str
    endpoint: str  # a name in DIALECTS: "chat", "completions", "responses", "messages"
    stream: bool
    ignore_eos: bool
    extra_body: dict

    @property
    def dialect(self) -> BenchDialect:
        return DIALECTS[self.endpoint]

    def payload(self, prompt: Prompt) -> dict:
        body = self.dialect.body(self.model, prompt.text, prompt.output_tokens, self.stream)
        if self.ignore_eos:
            body["ignore_eos"] = True
        return {**body, **self.extra_body}


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
    response = await client.post(shape.dialect.path, json=shape.payload(prompt))
    if response.status_code >= 400:
        raise RequestFailed(response.status_code, _error_message(response.content))
    body = orjson.loads(response.content)
    record.ttft = time.perf_counter() - sent  # the whole reply is the first token's arrival
    _take_usage(shape.dialect.usage(body), record)
    return shape.dialect.reply_text(body)


async def _streamed(client, shape, prompt, record, sent) -> str:
    parts: list[str] = []
    last = None
    dialect = shape.dialect
    async with client.stream("POST", dialect.path, json=shape.payload(prompt)) as response:
        record.status = response.status_code
        if response.status_code >= 400:
            raise RequestFailed(response.status_code, _error_message(await response.aread()))
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            record.frames += 1
            event = orjson.loads(line[6:])
            failure = dialect.event_error(event)
            if failure is not None:
                raise RequestFailed(response.status_code, failure)
            _take_usage(dialect.usage(event), record)
            text = dialect.event_text(event)
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


def _take_usage(usage: Usage | None, record: RequestRecord) -> None:
    """Counts as they come: a stream may send the prompt's and the output's apart."""
    if usage is None:
        return
    prompt_tokens, output_tokens = usage
    if prompt_tokens is not None:
        record.prompt_tokens = prompt_tokens
    if output_tokens is not None:
        record.output_tokens_usage = output_tokens


def _error_message(body: bytes | str) -> str:
    try:
        error = orjson.loads(body)["error"]
        return error.get("message") or str(error)
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        text = body.decode(errors="replace") if isinstance(body, bytes) else body
        return text[:300] or "(empty body)"
