"""``/v1/responses``: OpenAI's Responses API, a dialect over the chat pipeline.

The request is translated into a chat request and run by :func:`start_chat` (render,
sampling, admission, metrics, engine aborts: nothing is copied here); the parsed deltas
become output items and named SSE events. Finished responses are stored (unless
``store: false`` or ``--response-store none``) before the client hears they are done, so
a follow-up with ``previous_response_id`` always finds them. A store that fails never
costs the answer: it is delivered with ``store: false``, and the failure is logged.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from openai_frontend.auth import authenticated_key, batch_owner
from openai_frontend.chat_run import ChatRun, start_chat
from openai_frontend.disconnect import cancel_on_disconnect
from openai_frontend.errors import APIError
from openai_frontend.jsonbody import OffLoopJSONRoute, in_thread_if_large
from openai_frontend.jsonresponse import json_response
from openai_frontend.responses.events import EventNumbering
from openai_frontend.responses.items import Item, normalise_input
from openai_frontend.responses.output import Event, OutputBuilder
from openai_frontend.responses.response import (
    final_status,
    response_head,
    responses_usage,
    snapshot,
)
from openai_frontend.responses.store import (
    NewResponse,
    ResponseStore,
    StoredResponse,
    StoreUnavailable,
    owner_of,
)
from openai_frontend.responses.translate import renamed, to_chat_request
from openai_frontend.schemas.responses import ResponsesRequest
from openai_frontend.state import get_state
from openai_frontend.streaming import StreamEnding, sse_response

log = logging.getLogger(__name__)
router = APIRouter(route_class=OffLoopJSONRoute)


def response_store(request: Request) -> ResponseStore:
    return request.app.state.response_store


def request_owner(request: Request) -> str:
    """The key the request was let in by, whichever header carried it (no keys: one
    owner for every caller). A batch line acts as its batch's owner."""
    internal = batch_owner(request.scope)
    if internal is not None:
        return internal
    return owner_of(authenticated_key(request.headers, get_state(request).config.api_keys))


def unavailable(error: StoreUnavailable) -> APIError:
    log.warning("response store unavailable: %s", error)
    return APIError(
        "The response store is unavailable; retry shortly.",
        status=503,
        code="store_unavailable",
        headers={"Retry-After": "1"},
    )


def not_found(response_id: str, store: ResponseStore, param: str | None = None) -> APIError:
    why = "" if store.enabled else " (this server stores no responses: --response-store none)"
    return APIError(
        f"Response with id '{response_id}' not found.{why}",
        status=404,
        param=param,
        code="not_found" if param is None else "previous_response_not_found",
    )


async def _stored(request: Request, response_id: str, param: str | None = None) -> StoredResponse:
    store = response_store(request)
    try:
        record = await store.load(request_owner(request), response_id)
    except StoreUnavailable as error:
        raise unavailable(error) from None
    if record is None:
        raise not_found(response_id, store, param)
    return record


@router.post("/v1/responses")
async def create_response(body: ResponsesRequest, request: Request) -> Response:
    history: list[Item] = []
    if body.previous_response_id is not None:
        previous = await _stored(request, body.previous_response_id, "previous_response_id")
        history = previous.conversation()
    new_items = await in_thread_if_large(request, normalise_input, body.input)
    new_items = await _resolve_references(request, new_items, history)
    try:
        run = await start_chat(
            await in_thread_if_large(request, to_chat_request, body, [*history, *new_items]),
            request,
            id_prefix="resp",
            limit_param="max_output_tokens",
        )
    except APIError as error:
        raise renamed(error) from None
    store = response_store(request)
    stored = body.wants_store() and store.enabled
    head = response_head(body, "resp_" + run.reply.id.removeprefix("resp-"), stored)

    async def save(response: dict[str, Any]) -> None:
        """Store ``response``; on failure say so in it (``store: false``) and log."""
        if not stored:
            return
        record = NewResponse(
            response["id"], response, new_items, body.previous_response_id, history
        )
        try:
            await store.save(request_owner(request), record)
        except Exception as error:  # the answer is worth more than its copy
            bug = not isinstance(error, StoreUnavailable)
            log.warning("response %s answered, not stored: %s", response["id"], error, exc_info=bug)
            response["store"] = False

    if body.wants_stream():
        events = EventNumbering()
        output = OutputBuilder()
        return sse_response(
            _stream(run, head, output, events, save),
            get_state(request).config.drain_timeout,
            ending=StreamEnding(last=None, error=events.failure(head, output)),
        )
    response = await cancel_on_disconnect(request, _collect(run, head))
    await save(response)
    return json_response(response)


async def _resolve_references(
    request: Request, items: list[Item], history: list[Item]
) -> list[Item]:
    """``item_reference`` inputs replaced by the items they name: from the conversation
    continued, else from any live stored response of the caller's key (as OpenAI, a
    reference to another key's item is not found)."""
    wanted = {item["id"] for item in items if item["type"] == "item_reference"}
    if not wanted:
        return items
    known = {item["id"]: item for item in history if item.get("id") in wanted}
    if missing := sorted(wanted - known.keys()):
        try:
            known |= await response_store(request).load_items(request_owner(request), missing)
        except StoreUnavailable as error:
            raise unavailable(error) from None
    for index, item in enumerate(items):
        if item["type"] == "item_reference" and item["id"] not in known:
            raise APIError(
                f"Item with id '{item['id']}' not found.",
                status=404,
                param=f"input[{index}].id",
                code="not_found",
            )
    return [known[item["id"]] if item["type"] == "item_reference" else item for item in items]


async def _run_output(run: ChatRun, output: OutputBuilder) -> AsyncIterator[list[Event]]:
    """The run's deltas through the parser stage into ``output``, event lists as they come."""
    async with aclosing(run.deltas):
        async for index, delta in run.deltas:
            yield output.feed(run.outputs.parse(index, delta))


def _finish(run: ChatRun, head: dict, output: OutputBuilder) -> tuple[dict, list[Event]]:
    status = final_status(run.outputs.finish_reason(0))
    closing = output.finish(status)
    usage = responses_usage(run.outputs.usage(run.reply.prompt_tokens))
    return snapshot(head, status, output.output, usage=usage), closing


async def _collect(run: ChatRun, head: dict) -> dict:
    output = OutputBuilder()
    async for _ in _run_output(run, output):
        pass
    return _finish(run, head, output)[0]


async def _stream(
    run: ChatRun,
    head: dict,
    output: OutputBuilder,
    events: EventNumbering,
    save: Callable[[dict], Awaitable[None]],
) -> AsyncIterator[bytes]:
    started = snapshot(head, "in_progress", [])
    yield events.frame({"type": "response.created", "response": started})
    yield events.frame({"type": "response.in_progress", "response": started})
    async with aclosing(_run_output(run, output)) as batches:  # closed: engine abort
        async for batch in batches:
            for event in batch:
                yield events.frame(event)
    response, closing = _finish(run, head, output)
    for event in closing:
        yield events.frame(event)
    await save(response)
    yield events.frame({"type": f"response.{response['status']}", "response": response})


@router.get("/v1/responses/{response_id}")
async def get_response(
    response_id: str,
    request: Request,
    stream: bool = False,
    starting_after: int | None = None,
) -> Response:
    """The stored response as JSON. Its events are not kept, so a replay (``stream``,
    ``starting_after``) is refused, naming the parameter, rather than answered as JSON."""
    if stream or starting_after is not None:
        param = "stream" if stream else "starting_after"
        raise APIError(
            "Streaming a stored response again is not supported by this server: its events "
            "are not kept. GET it without stream and starting_after for the whole response.",
            param=param,
            code="unsupported_parameter",
        )
    return json_response((await _stored(request, response_id)).response)


@router.delete("/v1/responses/{response_id}")
async def delete_response(response_id: str, request: Request) -> Response:
    store = response_store(request)
    try:
        deleted = await store.delete(request_owner(request), response_id)
    except StoreUnavailable as error:
        raise unavailable(error) from None
    if not deleted:
        raise not_found(response_id, store)
    return json_response({"id": response_id, "object": "response", "deleted": True})


@router.get("/v1/responses/{response_id}/input_items")
async def list_input_items(
    response_id: str,
    request: Request,
    limit: int = Query(20, ge=1, le=100),
    order: Literal["asc", "desc"] = "desc",
    after: str | None = None,
) -> Response:
    items = (await _stored(request, response_id)).input_items
    if order == "desc":
        items = items[::-1]
    if after is not None:
        ids = [item["id"] for item in items]
        if after not in ids:
            raise APIError(f"No input item with id '{after}' in this response.", param="after")
        items = items[ids.index(after) + 1 :]
    page = items[:limit]
    return json_response(
        {
            "object": "list",
            "data": page,
            "has_more": len(items) > limit,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
        }
    )
