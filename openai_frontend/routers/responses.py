"""``/v1/responses``: OpenAI's Responses API, a dialect over the chat pipeline.

The request is translated into a chat request and run by :func:`start_chat` (render,
sampling, admission, metrics, engine aborts: nothing is copied here); the parsed deltas
become output items and named SSE events. Finished responses are stored (unless
``store: false`` or ``--response-store none``) before the client hears they are done, so
a follow-up with ``previous_response_id`` always finds them. A store that fails never
costs the answer: it is delivered with ``store: false``, and the failure is logged.

A ``background`` response is prepared (its 4xx come here, synchronously), saved
``queued`` and answered at once; its generation runs on as a job
(:mod:`openai_frontend.responses.background`) that GET, a resumed stream
(``stream=true&starting_after=N``) and cancel find by id, for its owner only.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import aclosing
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from openai_frontend.auth import authenticated_key, batch_owner
from openai_frontend.background import BackgroundJobs
from openai_frontend.chat_run import ChatRun, launch_chat, prepare_chat, start_chat
from openai_frontend.disconnect import cancel_on_disconnect
from openai_frontend.errors import APIError
from openai_frontend.jsonbody import OffLoopJSONRoute, in_thread_if_large
from openai_frontend.jsonresponse import json_response
from openai_frontend.responses.background import (
    UNFINISHED,
    LiveResponse,
    finish,
    generate,
    run_output,
    stored_frames,
)
from openai_frontend.responses.events import EventNumbering
from openai_frontend.responses.items import Item, normalise_input
from openai_frontend.responses.output import OutputBuilder
from openai_frontend.responses.response import response_head, snapshot
from openai_frontend.responses.store import (
    NewResponse,
    ResponseStore,
    StoredResponse,
    StoreUnavailable,
    owner_of,
)
from openai_frontend.responses.translate import renamed, to_chat_request
from openai_frontend.schemas.chat import ChatCompletionRequest
from openai_frontend.schemas.responses import ResponsesRequest
from openai_frontend.state import get_state, new_id
from openai_frontend.streaming import StreamEnding, sse_response

log = logging.getLogger(__name__)
router = APIRouter(route_class=OffLoopJSONRoute)


def response_store(request: Request) -> ResponseStore:
    return request.app.state.response_store


def background_jobs(request: Request) -> BackgroundJobs[LiveResponse]:
    return request.app.state.background


def _live(request: Request, response_id: str) -> LiveResponse | None:
    """The caller's background response still running in this process (another key's
    is not found here, and then not in the store either: a 404)."""
    live = background_jobs(request).find(response_id)
    return live if live is not None and live.owner == request_owner(request) else None


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
        _check_finished(previous)
        history = previous.conversation()
    new_items = await in_thread_if_large(request, normalise_input, body.input)
    new_items = await _resolve_references(request, new_items, history)
    chat = await in_thread_if_large(request, to_chat_request, body, [*history, *new_items])
    if body.background:
        return await _start_background(body, chat, request, new_items, history)
    try:
        run = await start_chat(chat, request, id_prefix="resp", limit_param="max_output_tokens")
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
            get_state(request).config,
            ending=StreamEnding(last=None, error=events.failure(head, output)),
        )
    response = await cancel_on_disconnect(request, _collect(run, head))
    await save(response)
    return json_response(response)


def _check_finished(previous: StoredResponse) -> None:
    """A follow-up continues a finished turn: one still generating has no output yet."""
    status = previous.response["status"]
    if status in UNFINISHED:
        raise APIError(
            f"Previous response with id '{previous.id}' is still {status}; wait until it "
            "has finished to continue it.",
            param="previous_response_id",
        )


async def _start_background(
    body: ResponsesRequest,
    chat: ChatCompletionRequest,
    request: Request,
    new_items: list[Item],
    history: list[Item],
) -> Response:
    """Prepare (4xx now), save ``queued``, answer, and leave the generation to a job."""
    store = response_store(request)
    if not store.enabled:
        raise APIError(
            "background responses are kept in the response store, and this server keeps "
            "none (--response-store none).",
            param="background",
            code="unsupported_parameter",
        )
    try:
        prepared = await prepare_chat(chat, request, limit_param="max_output_tokens")
    except APIError as error:
        raise renamed(error) from None
    reply_id = new_id("resp")
    head = response_head(body, "resp_" + reply_id.removeprefix("resp-"), stored=True)
    owner = request_owner(request)
    live = LiveResponse(owner, head, keeps_events=body.wants_stream())
    live.emit({"type": "response.created", "response": live.snapshot()})
    live.emit_status("queued")
    record = NewResponse(head["id"], live.snapshot(), new_items, body.previous_response_id, history)
    try:
        await store.save(owner, record)
    except StoreUnavailable as error:
        raise unavailable(error) from None

    async def launch() -> ChatRun:
        try:
            return await launch_chat(chat, prepared, request, reply_id=reply_id, watch_client=False)
        except APIError as error:
            raise renamed(error) from None

    async def save(response: dict[str, Any], events: list[bytes] | None) -> None:
        """Write the response's progress; a failed write is logged (GET reads it live
        meanwhile, and the next write may succeed)."""
        try:
            await store.update(owner, response["id"], response, events)
        except Exception as error:
            bug = not isinstance(error, StoreUnavailable)
            log.warning("background response %s not updated: %s", head["id"], error, exc_info=bug)

    if body.wants_stream():
        answer: Response = _follow(request, live, -1)
    else:
        answer = json_response(live.snapshot())  # encoded now: it says "queued"
    background_jobs(request).start(head["id"], live, generate(live, launch, save))
    return answer


def _follow(request: Request, live: LiveResponse, after: int) -> Response:
    """A stream of a live background response's events after ``after``; the client
    leaving ends this stream only, never the generation."""
    return sse_response(live.follow(after), get_state(request).config, ending=StreamEnding(None))


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


async def _collect(run: ChatRun, head: dict) -> dict:
    output = OutputBuilder()
    async for _ in run_output(run, output):
        pass
    return finish(run, head, output)[0]


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
    # run_output's loop, inlined: one async-generator hop less for every streamed frame.
    async with aclosing(run.deltas):  # closed: engine abort
        async for index, delta in run.deltas:
            for event in output.feed(run.outputs.parse(index, delta)):
                yield events.frame(event)
    response, closing = finish(run, head, output)
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
    """The response as JSON (a running background one as it stands now), or, with
    ``stream``, the events of a background response created with ``stream`` after
    ``starting_after``: a running one's followed until it ends, a finished one's
    replayed from the store. Other responses keep no events: a replay is refused,
    naming the parameter, rather than answered as JSON."""
    live = _live(request, response_id)
    if not stream:
        if starting_after is not None:
            raise _no_replay("starting_after", "starting_after applies to stream=true only.")
        return json_response(
            live.snapshot() if live else (await _stored(request, response_id)).response
        )
    after = -1 if starting_after is None else starting_after
    if live is not None:
        if not live.keeps_events:
            raise _no_replay("stream", "This background response was created without stream.")
        return _follow(request, live, after)
    record = await _stored(request, response_id)
    if record.events is None:
        raise _no_replay("stream", "Its events were not kept.")
    return sse_response(
        _each(stored_frames(record.events, after)),
        get_state(request).config,
        ending=StreamEnding(None),
    )


def _no_replay(param: str, why: str) -> APIError:
    return APIError(
        f"Streaming this response again is not supported: {why} Only background responses "
        "created with stream keep their events; GET it without stream and starting_after "
        "for the whole response.",
        param=param,
        code="unsupported_parameter",
    )


async def _each(frames: Iterable[bytes]) -> AsyncIterator[bytes]:
    for frame in frames:
        yield frame


@router.post("/v1/responses/{response_id}/cancel")
async def cancel_response(response_id: str, request: Request) -> Response:
    """Stop a background response (its engine request is aborted) and answer it as it
    ended: ``cancelled``, or, if it finished first, as it finished. Cancelling it again
    answers it again; a response that was not a background one is a 400."""
    live = _live(request, response_id)
    if live is not None and live.final is None:
        live.cancel_requested = True
        await background_jobs(request).cancel(response_id)
        return json_response(live.snapshot())
    if live is not None:  # ended, its job still saving
        return json_response(_cancelled_already(response_id, live.final))
    response = (await _stored(request, response_id)).response
    return json_response(_cancelled_already(response_id, response))


def _cancelled_already(response_id: str, response: dict[str, Any]) -> dict[str, Any]:
    """A response with no job to cancel: answered again if it was cancelled, else a 400
    saying why it cannot be (not a background one, or it has ended)."""
    if not response.get("background"):
        raise APIError(
            f"Response with id '{response_id}' is not a background response: only responses "
            "created with background: true can be cancelled.",
            code="invalid_request_error",
        )
    status = response["status"]
    if status == "cancelled":
        return response
    if status in UNFINISHED:  # a store shared with another server process runs it
        raise APIError(
            f"Response with id '{response_id}' runs on another server process; cancel it there.",
            status=409,
            code="conflict",
        )
    raise APIError(
        f"Cannot cancel response with id '{response_id}': it has already ended ({status}).",
        code="invalid_request_error",
    )


@router.delete("/v1/responses/{response_id}")
async def delete_response(response_id: str, request: Request) -> Response:
    """Delete a stored response; a running background one is cancelled first, so
    nothing generates for a response that no longer exists."""
    if (live := _live(request, response_id)) is not None:
        live.cancel_requested = True
        await background_jobs(request).cancel(response_id)
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
