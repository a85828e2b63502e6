"""One model served by upstream OpenAI-compatible servers: vllm serve, trtllm-serve, or
another openai-frontend.

The frontend renders the chat template and tokenizes with the model's own tokenizer
(``model_path``), as for any engine; this backend sends the token ids to an upstream's
``/v1/completions`` with ``stream: true``, parses the upstream's SSE and yields neutral
deltas, so the frontend re-emits its own exact frames whatever the upstream's quirks.

Routing is by prefix affinity (see :mod:`engines.routing`): a conversation's turns go to
the upstream that has its prefix cached, unless that one is over its load bound; or, with
``routing="least-outstanding"``, to the healthy upstream with the fewest requests in
flight. A background check
asks each upstream ``/health`` and then ``/v1/models``; one that fails a check or a
request is ejected and re-admitted by the first check that passes after a cooldown.
A request that fails before its first byte is retried once on another upstream; one
that fails after streaming started is never retried (the client gets an error event).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
from prometheus_client.metrics_core import Metric

from engines.base import (
    ALL_SAMPLING,
    Delta,
    EngineError,
    GenerateRequest,
    InvalidRequest,
    ModelInfo,
    SamplingParams,
    TokenLogprob,
    matched_stop_string,
)
from engines.hf_tokenizer import HFTokenizer
from engines.remote_logprobs import TextOf, UnreadableLogprobs, generated_logprobs, prompt_logprobs
from engines.routing import HashRing, Policy, choose, least_outstanding, routing_key
from engines.sampling_map import PASSED_AS_IS, guide, refuse_undeclared
from engines.upstream_metrics import UpstreamGauges, aggregate, read_gauges

log = logging.getLogger(__name__)

#: What an OpenAI-compatible upstream with vLLM's sampling extensions honours through
#: ``/v1/completions``. ``logprobs`` are asked with vLLM's ``return_tokens_as_token_ids``
#: and ``prompt_logprobs`` without streaming (vLLM streams none): an upstream without
#: them refuses, or answers in a shape the engine reports (see engines.remote_logprobs).
#: Structured output is sent as vLLM's ``structured_outputs`` (``{"json": schema}`` or
#: ``{"json_object": true}``); an upstream without it refuses the request with a 400.
#: Structural tags are not sent: an upstream may not be vLLM, so strict tools are checked
#: by the gateway after the fact instead (README, "Tool calling").
#: ``constraint_after_reasoning``: an upstream's grammar starts at the first token, so a
#: reasoning model's constrained request has its thinking turned off instead.
SUPPORTED_SAMPLING = ALL_SAMPLING - {"structural_tag", "constraint_after_reasoning"}

#: Fields sent only when they differ from the OpenAI default, so plain OpenAI-compatible
#: upstreams (which may refuse vLLM's extensions) see them only when asked for.
#: (logprobs go with return_tokens_as_token_ids; logit_bias needs its keys as strings.)
_OPTIONAL = tuple(name for name in PASSED_AS_IS if name not in ("logprobs", "logit_bias"))


def completion_body(request: GenerateRequest, model: str) -> dict:
    """The upstream ``/v1/completions`` request for one sequence; pure, unit-tested."""
    params: SamplingParams = request.sampling
    refuse_undeclared(params, SUPPORTED_SAMPLING, "the remote engine")
    body: dict = {
        "model": model,
        "prompt": list(request.prompt_token_ids),
        "max_tokens": params.max_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    for name in _OPTIONAL:
        value = getattr(params, name)
        if value is not None:
            body[name] = value
    if params.stop:
        body["stop"] = list(params.stop)
    if params.stop_token_ids:
        body["stop_token_ids"] = list(params.stop_token_ids)
    if params.structured_output is not None:
        body["structured_outputs"] = guide(params)
    if params.logit_bias:
        body["logit_bias"] = {str(token): bias for token, bias in params.logit_bias.items()}
    if params.logprobs is not None:
        body["logprobs"] = params.logprobs
        body["return_tokens_as_token_ids"] = True
    if params.prompt_logprobs is not None:  # vLLM answers them whole, never streamed
        body["prompt_logprobs"] = params.prompt_logprobs
        body["stream"] = False
        del body["stream_options"]
    if params.priority:  # vLLM's extension; its upstream must run the priority policy
        body["priority"] = params.priority
    for name in ("ignore_eos", "include_stop_str_in_output"):
        if getattr(params, name):
            body[name] = True
    for name in ("skip_special_tokens", "spaces_between_special_tokens"):
        if not getattr(params, name):
            body[name] = False
    return body


def embedding_body(inputs: list[list[int]], dimensions: int | None, model: str) -> dict:
    """The upstream ``/v1/embeddings`` request: the token ids the gateway counted and
    checked, as floats (the gateway encodes base64 itself); pure, unit-tested."""
    body: dict = {"model": model, "input": inputs, "encoding_format": "float"}
    if dimensions is not None:
        body["dimensions"] = dimensions
    return body


@dataclass
class Upstream:
    url: str
    #: How clients' error messages name it ("upstream 2", in --upstream order): its URL
    #: may show the internal network, so only the logs and the admin view carry that.
    name: str = "upstream"
    outstanding: int = 0
    healthy: bool = False
    ejected_until: float = 0.0
    served: int = 0
    failures: int = 0
    last_error: str | None = None
    #: What a passing check found amiss: adapters of ours this upstream does not list.
    warning: str | None = None
    #: Its ``vllm:`` gauges for our model at the last check (None: it exports none).
    gauges: UpstreamGauges | None = None

    def eject(self, reason: str, cooldown: float) -> None:
        """Out of the pool until a check passes after ``cooldown``. Logged when it was
        in, and whenever the reason changes: an upstream that never passes (at start, or
        misconfigured) says why once, not every check."""
        if self.healthy or reason != self.last_error:
            state = "ejected" if self.healthy else "not admitted"
            log.warning("upstream %s %s: %s", self.url, state, reason)
        self.healthy = False
        self.ejected_until = time.monotonic() + cooldown
        self.failures += 1
        self.last_error = reason


def _failure(upstream: Upstream, what: str, status: int = 502) -> EngineError:
    """An upstream's failure as the client reads it, naming the upstream by number; the
    log line beside it names the URL, for the operator."""
    log.warning("upstream %s (%s) %s", upstream.name, upstream.url, what)
    return EngineError(f"{upstream.name} {what}", status)


class UpstreamUnfit(Exception):
    """The upstream answers, but does not serve what this model needs."""


def _listing(names: list[str]) -> str:
    return ", ".join(sorted(names)) or "nothing"


class _BeforeFirstByte(Exception):
    """A failure that may be retried on another upstream."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass
class RemoteEngine:
    """One model behind one or more upstream OpenAI-compatible servers."""

    model_path: Path
    served_model_name: str
    upstreams: list[str]
    #: The model's name at the upstreams (default: the served name).
    upstream_model: str | None = None
    api_key: str | None = None
    max_model_len: int | None = None
    health_interval: float = 2.0
    eject_cooldown: float = 5.0
    connect_timeout: float = 5.0
    supported_sampling: frozenset[str] = SUPPORTED_SAMPLING
    #: "priority" when the upstreams schedule by priority (a vLLM upstream refuses a
    #: priority under fcfs); only then is ``priority`` declared and sent on.
    scheduling_policy: str = "fcfs"
    #: "affinity" (prefix-cache aware, the default) or "least-outstanding".
    routing: Policy = "affinity"
    #: Adapters are the upstreams' own: a request for adapter NAME asks them for NAME.
    supports_lora: bool = True
    #: Upstreams come and go without the gateway exiting (see engines.base.Engine).
    in_process = False
    _pool: list[Upstream] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        if not self.upstreams:
            raise ValueError("the remote engine needs at least one upstream URL")
        if self.scheduling_policy != "priority":
            self.supported_sampling = self.supported_sampling - {"priority"}
        self._pool = [
            Upstream(url.rstrip("/"), f"upstream {number}")
            for number, url in enumerate(self.upstreams, start=1)
        ]
        self._ring = HashRing([upstream.url for upstream in self._pool])
        self._client: httpx.AsyncClient | None = None
        self._tokenizer: HFTokenizer | None = None
        self._info: ModelInfo | None = None
        self._checker: asyncio.Task | None = None
        self._running: dict[str, httpx.Response] = {}
        self._aborted: set[str] = set()
        self._turn = itertools.count()
        #: Names of this model's adapters, which the upstreams must list too.
        self._adapters: set[str] = set()

    @property
    def model_name(self) -> str:
        return self.upstream_model or self.served_model_name

    async def start(self) -> None:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        self._client = httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(None, connect=self.connect_timeout),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=256),
        )
        self._tokenizer = await asyncio.to_thread(HFTokenizer, self.model_path)
        await self._wait_for_an_upstream()
        max_len = self.max_model_len or await self._upstream_max_len()
        self._info = ModelInfo(
            id=self.served_model_name,
            max_model_len=max_len,
            path=self.model_path,
            created=int(time.time()),
            owned_by="remote",
        )
        self._checker = asyncio.create_task(self._check_forever())

    async def _wait_for_an_upstream(self) -> None:
        """Until one upstream passes a check, the gateway is not ready (no cooldown here:
        at start every upstream may simply still be loading its model)."""
        while True:
            for upstream in self._pool:
                upstream.ejected_until = 0.0
            await self._check_all()
            if any(upstream.healthy for upstream in self._pool):
                return
            await asyncio.sleep(self.health_interval)

    async def _upstream_max_len(self) -> int:
        """``max_model_len`` as a vLLM-style upstream lists it, else the tokenizer's."""
        for upstream in self._pool:
            with contextlib.suppress(httpx.HTTPError, ValueError, KeyError, TypeError):
                models = (await self._client.get(upstream.url + "/v1/models")).json()["data"]
                for entry in models:
                    if entry["id"] == self.model_name and entry.get("max_model_len"):
                        return int(entry["max_model_len"])
        return self._tokenizer.model_max_length

    # Health ---------------------------------------------------------------------------

    async def _check_forever(self) -> None:
        while True:
            await asyncio.sleep(self.health_interval)
            await self._check_all()

    async def _check_all(self) -> None:
        await asyncio.gather(*(self._check(upstream) for upstream in self._pool))

    async def _check(self, upstream: Upstream) -> None:
        """``/health``, then ``/v1/models`` listing our model; an ejected upstream waits
        out its cooldown before a passing check re-admits it."""
        if not upstream.healthy and time.monotonic() < upstream.ejected_until:
            return
        try:
            (await self._client.get(upstream.url + "/health", timeout=5)).raise_for_status()
            response = await self._client.get(upstream.url + "/v1/models", timeout=5)
            response.raise_for_status()
            listed = [str(entry.get("id")) for entry in response.json().get("data", [])]
            if self.model_name not in listed:
                raise UpstreamUnfit(
                    f"it does not list model '{self.model_name}' (it lists: {_listing(listed)});"
                    " set upstream_model (--upstream-model) to its name there"
                )
        except UpstreamUnfit as exc:
            upstream.eject(f"health check: {exc}", self.eject_cooldown)
            return
        except (httpx.HTTPError, ValueError) as exc:
            upstream.eject(f"health check: {type(exc).__name__}: {exc}", self.eject_cooldown)
            return
        if not upstream.healthy:
            log.info("upstream %s admitted", upstream.url)
        upstream.healthy = True
        upstream.last_error = None
        self._check_adapters(upstream, listed)
        upstream.gauges = await self._scrape(upstream)

    async def _scrape(self, upstream: Upstream) -> UpstreamGauges | None:
        """The upstream's ``vllm:`` gauges, read with each health check; an upstream
        without a ``/metrics`` (or an unreadable one) simply adds none."""
        try:
            response = await self._client.get(upstream.url + "/metrics", timeout=5)
            response.raise_for_status()
            return read_gauges(response.text, self.model_name)
        except (httpx.HTTPError, ValueError):
            return None

    def engine_metrics(self) -> list[Metric]:
        """The healthy upstreams' gauges, aggregated (engines.upstream_metrics)."""
        gauges = [u.gauges for u in self._pool if u.healthy and u.gauges is not None]
        return aggregate(gauges, self.served_model_name)

    def _check_adapters(self, upstream: Upstream, listed: list[str]) -> None:
        """An upstream without one of our adapters still serves the base model, so it
        stays in; but it is reported (and logged once), since requests for that adapter
        fail there."""
        missing = sorted(self._adapters - set(listed))
        warning = None
        if missing:
            names = ", ".join(f"'{name}'" for name in missing)
            warning = f"it does not list adapter {names} (it lists: {_listing(listed)})"
            if warning != upstream.warning:
                log.warning("upstream %s: %s", upstream.url, warning)
        upstream.warning = warning

    def is_ready(self) -> bool:
        return self._info is not None and any(u.healthy for u in self._pool)

    def upstream_status(self) -> list[dict]:
        """Per upstream (the admin view): the name clients' errors use and its URL,
        health, in-flight and served counts, the last error."""
        return [
            {
                "name": u.name,
                "url": u.url,
                "healthy": u.healthy,
                "outstanding": u.outstanding,
                "served": u.served,
                "failures": u.failures,
                "last_error": u.last_error,
                "warning": u.warning,
            }
            for u in self._pool
        ]

    # Requests -------------------------------------------------------------------------

    def _pick(self, exclude: Upstream | None = None) -> Upstream | None:
        """The healthy upstream with the fewest requests in flight (ties take turns)."""
        candidates = [u for u in self._pool if u.healthy and u is not exclude]
        return least_outstanding(candidates, next(self._turn)) if candidates else None

    def _route(self, request: GenerateRequest) -> Upstream | None:
        """The first try's upstream, by the routing policy (the retry is least-outstanding:
        the key's owner just failed)."""
        candidates = [u for u in self._pool if u.healthy]
        if not candidates:
            return None
        key = None
        if self.routing == "affinity":
            key = routing_key(request.prompt_cache_key, request.prompt_token_ids)
        return choose(candidates, self._ring, key, next(self._turn))

    async def generate(self, request: GenerateRequest) -> AsyncIterator[Delta]:
        body = completion_body(request, self._adapter_model(request.adapter))
        first = self._route(request)
        if first is None:
            raise EngineError(f"no healthy upstream for '{self.served_model_name}'", 503)
        try:
            async for delta in self._stream(first, request, body):
                yield delta
            return
        except _BeforeFirstByte as failure:
            if isinstance(failure.error, InvalidRequest):
                raise failure.error from None
            second = self._pick(exclude=first)
            if second is None:
                raise failure.error from None
            log.warning(
                "upstream %s failed before its first byte (%s); retrying on %s",
                first.url,
                failure.error,
                second.url,
            )
        try:  # the one retry; a failure after its first byte reaches the client
            async for delta in self._stream(second, request, body):
                yield delta
        except _BeforeFirstByte as failure:
            raise failure.error from None

    async def embed(
        self, request_id: str, inputs: list[list[int]], dimensions: int | None
    ) -> list[list[float]]:
        """Passed through to an upstream's ``/v1/embeddings``; a connection failure is
        retried once on another upstream, a refusal (4xx) reaches the client as it was."""
        body = embedding_body(inputs, dimensions, self.model_name)
        first = self._pick()
        if first is None:
            raise EngineError(f"no healthy upstream for '{self.served_model_name}'", 503)
        try:
            return await self._post_embeddings(first, body)
        except _BeforeFirstByte as failure:
            second = None if isinstance(failure.error, InvalidRequest) else self._pick(first)
            if second is None:
                raise failure.error from None
        try:
            return await self._post_embeddings(second, body)
        except _BeforeFirstByte as failure:
            raise failure.error from None

    async def _post_embeddings(self, upstream: Upstream, body: dict) -> list[list[float]]:
        upstream.outstanding += 1
        try:
            response = await self._client.post(upstream.url + "/v1/embeddings", json=body)
            if response.status_code >= 400:
                raise _BeforeFirstByte(await self._refusal(upstream, response))
            data = sorted(orjson.loads(response.content)["data"], key=lambda item: item["index"])
            vectors = [item["embedding"] for item in data]
        except httpx.HTTPError as exc:
            upstream.eject(f"{type(exc).__name__}: {exc}", self.eject_cooldown)
            error = _failure(upstream, f"failed: {type(exc).__name__}")
            raise _BeforeFirstByte(error) from None
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise _failure(upstream, f"sent no embeddings: {exc}") from None
        finally:
            upstream.outstanding -= 1
        if len(vectors) != len(body["input"]):
            raise _failure(upstream, f"sent {len(vectors)} embeddings")
        upstream.served += 1
        return vectors

    def _adapter_model(self, adapter) -> str:
        return adapter.name if adapter is not None else self.model_name

    async def _stream(self, upstream: Upstream, request: GenerateRequest, body: dict):
        """One attempt on ``upstream``; the trace context goes along (``traceparent``),
        so the upstream's spans continue the gateway's trace."""
        request_id = request.request_id
        upstream.outstanding += 1
        started = False
        try:
            async with self._client.stream(
                "POST",
                upstream.url + "/v1/completions",
                json=body,
                headers=request.trace_headers,
            ) as response:
                if response.status_code >= 400:
                    raise _BeforeFirstByte(await self._refusal(upstream, response))
                self._running[request_id] = response
                reader = _Reader(request, self._token_text)
                deltas = reader.stream(response) if body["stream"] else reader.whole(response)
                async for delta in deltas:
                    if request_id in self._aborted:
                        return
                    started = True
                    yield delta
            upstream.served += 1
        except (httpx.HTTPError, httpx.StreamError) as exc:
            if request_id in self._aborted:  # closed by abort(): not the upstream's fault
                return
            upstream.eject(f"{type(exc).__name__}: {exc}", self.eject_cooldown)
            error = _failure(upstream, f"failed: {type(exc).__name__}")
            if not started:
                raise _BeforeFirstByte(error) from None
            raise error from None
        # ValueError: orjson's decode errors, and logprobs not in the shape asked for.
        except (UpstreamErrorEvent, KeyError, TypeError, ValueError) as exc:
            if request_id in self._aborted:
                return
            raise _failure(upstream, f"failed mid-stream: {exc}") from None
        finally:
            upstream.outstanding -= 1
            self._running.pop(request_id, None)
            self._aborted.discard(request_id)

    async def _refusal(self, upstream: Upstream, response: httpx.Response) -> Exception:
        """An upstream's error answer as ours: 4xx are the request's fault, and pass
        through with the upstream's status, message, param and code; 5xx and 429 eject
        or retry."""
        raw = await response.aread()
        try:
            error = orjson.loads(raw)["error"]
            message = error.get("message") or str(error)
            param, code = error.get("param"), error.get("code")
            code = code if isinstance(code, str) else None  # vLLM sends the status here
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            message, param, code = raw.decode(errors="replace")[:300], None, None
        status = response.status_code
        if status == 429:
            return _failure(upstream, f"is overloaded: {message}", 429)
        if status >= 500:
            upstream.eject(f"HTTP {status}: {message}", self.eject_cooldown)
            return _failure(upstream, f"answered {status}: {message}")
        if status == 404:
            return InvalidRequest(message, param or "model", 404, code or "model_not_found")
        return InvalidRequest(message, param, status, code)

    async def abort(self, request_id: str) -> None:
        """Closing the upstream stream aborts the request there."""
        response = self._running.pop(request_id, None)
        if response is not None:
            self._aborted.add(request_id)
            await response.aclose()

    def num_unfinished_requests(self) -> int:
        return sum(u.outstanding for u in self._pool)

    def model(self) -> ModelInfo:
        if self._info is None:
            raise RuntimeError("engine not started")
        return self._info

    def tokenize(self, text: str, add_special_tokens: bool) -> list[int]:
        return self._tokenizer.encode(text, add_special_tokens)

    def _token_text(self, token_id: int) -> str:
        return self._tokenizer.token_text(token_id)

    def detokenize(self, token_ids: list[int]) -> str:
        return self._tokenizer.decode(token_ids)

    async def add_adapter(self, adapter) -> None:
        """The upstreams load their own adapters; the health checks look for it there."""
        self._adapters.add(adapter.name)

    async def remove_adapter(self, adapter) -> None:
        """The upstreams unload their own adapters; the checks stop looking for it."""
        self._adapters.discard(adapter.name)

    async def loaded_adapter_ids(self) -> list[int]:
        return []

    async def shutdown(self) -> None:
        if self._checker is not None:
            self._checker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checker
        if self._client is not None:
            await self._client.aclose()


class UpstreamErrorEvent(Exception):
    """The upstream sent an error object in its stream."""


@dataclass
class _Reader:
    """An upstream's completion answer as deltas: its stream, or its whole body (when
    prompt logprobs were asked: vLLM streams none), with logprobs read by token id."""

    request: GenerateRequest
    text_of: TextOf

    async def stream(self, response: httpx.Response) -> AsyncIterator[Delta]:
        """Each delta yielded as soon as it arrives; the last one waits for the usage
        chunk, whose count is exact."""
        completion_tokens = 0
        final: Delta | None = None
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            chunk = _checked(orjson.loads(data))
            for choice in chunk.get("choices") or []:
                text = choice.get("text") or ""
                if text:
                    completion_tokens += 1  # one token a chunk, until usage says otherwise
                delta = self._delta(choice, completion_tokens)
                if delta.finish_reason is not None:
                    final = delta
                elif text or delta.logprobs:
                    yield delta
            usage = chunk.get("usage")
            if usage and final is not None:
                final.completion_tokens = usage["completion_tokens"]
                final.cached_prompt_tokens = _cached_tokens(usage)
        if final is None:
            raise UpstreamErrorEvent("the stream ended without a finish reason")
        yield final

    async def whole(self, response: httpx.Response) -> AsyncIterator[Delta]:
        """A non-streamed answer as one delta, the prompt's logprobs on it."""
        reply = _checked(orjson.loads(await response.aread()))
        choice = reply["choices"][0]
        usage = reply["usage"]
        delta = self._delta(choice, usage["completion_tokens"])
        if delta.finish_reason is None:
            raise UpstreamErrorEvent("the answer has no finish reason")
        delta.cached_prompt_tokens = _cached_tokens(usage)
        delta.prompt_logprobs = self._prompt_logprobs(choice.get("prompt_logprobs"))
        yield delta

    def _delta(self, choice: dict, completion_tokens: int) -> Delta:
        reason = choice.get("finish_reason")
        logprobs = None
        if self.request.sampling.logprobs is not None:
            top_k = self.request.sampling.logprobs
            logprobs = generated_logprobs(choice.get("logprobs"), top_k, self.text_of)
        return Delta(
            choice.get("text") or "",
            [item.token_id for item in logprobs or []],  # known only with logprobs
            completion_tokens,
            _finish(reason),
            logprobs=logprobs,
            stop_sequence=matched_stop_string(choice.get("stop_reason")) if reason else None,
        )

    def _prompt_logprobs(self, entries: list | None) -> list[TokenLogprob | None] | None:
        top_k = self.request.sampling.prompt_logprobs
        if top_k is None:
            return None
        if entries is None:
            raise UnreadableLogprobs("the upstream sent no prompt_logprobs")
        return prompt_logprobs(entries, self.request.prompt_token_ids, top_k, self.text_of)


def _checked(chunk: dict) -> dict:
    """The chunk, unless it is the upstream's error object."""
    if "error" in chunk:
        error = chunk["error"]
        raise UpstreamErrorEvent(error.get("message") if isinstance(error, dict) else error)
    return chunk


def _cached_tokens(usage: dict) -> int:
    """The upstream's ``prompt_tokens_details.cached_tokens``; 0 from an upstream that
    leaves it out (vLLM without ``--enable-prompt-tokens-details``) or sends null."""
    details = usage.get("prompt_tokens_details") or {}
    return int(details.get("cached_tokens") or 0)


def _finish(reason: str | None) -> str | None:
    """The upstream's finish reason in engines.base.FinishReason; "error" (what a vLLM
    engine reports for a failed sequence) fails the request rather than ending it."""
    if reason == "error":
        raise UpstreamErrorEvent("the upstream finished the sequence with an error")
    if reason is None:
        return None
    return reason if reason in ("stop", "length", "repetition") else "abort"
