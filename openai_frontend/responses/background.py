"""Background responses (``background: true``): answered at once, generated on.

The request is prepared (4xx) and saved ``queued`` before it is answered; its generation
then runs as a job of :class:`~openai_frontend.background.BackgroundJobs`, tied to no
connection. While it runs, a :class:`LiveResponse` holds its snapshot and (created with
``stream``) its numbered events in memory: ``GET`` reads the snapshot and a resumed
stream follows the events, with no store write per token. The store is written when it
starts, and when it ends (with its events), whichever way it ends: completed,
incomplete, failed, cancelled by the client, or cut at shutdown (failed).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

import orjson

from openai_frontend.chat_run import ChatRun
from openai_frontend.errors import APIError
from openai_frontend.responses.events import GENERIC_FAILURE
from openai_frontend.responses.output import Event, OutputBuilder
from openai_frontend.responses.response import final_status, responses_usage, snapshot

#: Statuses a background response has while it may still change.
UNFINISHED = frozenset({"queued", "in_progress"})
SHUTDOWN_ERROR = {
    "code": "server_error",
    "message": "The server shut down before this background response finished; create it again.",
}

#: Saves a snapshot of the response, and its events (JSON texts) when they are kept.
Save = Callable[[dict[str, Any], list[bytes] | None], Awaitable[None]]


async def run_output(run: ChatRun, output: OutputBuilder) -> AsyncIterator[list[Event]]:
    """The run's deltas through the parser stage into ``output``, event lists as they come."""
    async with aclosing(run.deltas):
        async for index, delta in run.deltas:
            yield output.feed(run.outputs.parse(index, delta))


def finish(run: ChatRun, head: dict, output: OutputBuilder) -> tuple[dict, list[Event]]:
    """The final response and the events that close its open item."""
    status = final_status(run.outputs.finish_reason(0))
    closing = output.finish(status)
    usage = responses_usage(run.outputs.usage(run.reply.prompt_tokens))
    return snapshot(head, status, output.output, usage=usage), closing


@dataclass
class LiveResponse:
    """A background response while its job runs: what GET and a resumed stream read."""

    owner: str
    head: dict[str, Any]
    #: Created with ``stream``: its events are kept (in memory, then in the store).
    keeps_events: bool
    output: OutputBuilder = field(default_factory=OutputBuilder)
    status: str = "queued"
    #: The response as it ended; None while it runs.
    final: dict[str, Any] | None = None
    #: Set by the cancel route before it cancels the job: the job then ends
    #: ``cancelled`` (a job cancelled without it was cut at shutdown: ``failed``).
    cancel_requested: bool = False
    #: Each event as (type, JSON text), in ``sequence_number`` order: encoded when
    #: made, since the snapshots they carry share lists that keep growing.
    events: list[tuple[str, bytes]] = field(default_factory=list)
    _grew: asyncio.Event = field(default_factory=asyncio.Event)

    def snapshot(self) -> dict[str, Any]:
        return self.final or snapshot(self.head, self.status, self.output.so_far())

    def emit(self, event: Event) -> None:
        """Number and keep ``event`` (if events are kept), and wake the followers."""
        if self.keeps_events:
            event["sequence_number"] = len(self.events)
            self.events.append((event["type"], orjson.dumps(event)))
            self._wake()

    def emit_status(self, status: str) -> None:
        """Move to ``status`` with its event (``response.queued``, ``.in_progress``)."""
        self.status = status
        self.emit({"type": f"response.{status}", "response": self.snapshot()})

    def end(self, response: dict[str, Any]) -> None:
        self.final = response
        self._wake()

    def event_texts(self) -> list[bytes] | None:
        """The events as JSON texts, for the store (None when they are not kept)."""
        return [data for _, data in self.events] if self.keeps_events else None

    async def follow(self, after: int) -> AsyncIterator[bytes]:
        """The SSE frames of the events after sequence number ``after``, then each new
        one as it is made, until the response ends."""
        index = max(after + 1, 0)
        while True:
            grew = self._grew
            while index < len(self.events):
                yield sse_frame(*self.events[index])
                index += 1
            if self.final is not None:
                return
            await grew.wait()

    def _wake(self) -> None:
        self._grew.set()
        self._grew = asyncio.Event()


def sse_frame(event_type: str, data: bytes) -> bytes:
    return b"event: " + event_type.encode() + b"\ndata: " + data + b"\n\n"


def stored_frames(events: list[dict[str, Any]], after: int) -> list[bytes]:
    """A finished background stream's stored events after ``after``, framed again."""
    return [sse_frame(e["type"], orjson.dumps(e)) for e in events if e["sequence_number"] > after]


async def generate(
    live: LiveResponse, launch: Callable[[], Awaitable[ChatRun]], save: Save
) -> None:
    """The job: launch the prepared request, feed ``live`` until the reply ends, and save
    how it ended. Cancelled, it saves ``cancelled`` (the client asked) or ``failed``
    (shutdown) before the cancellation goes on: closing the deltas aborts the engine."""
    try:
        run = await launch()
        live.emit_status("in_progress")
        await save(live.snapshot(), None)
        async with aclosing(run_output(run, live.output)) as batches:
            async for batch in batches:
                for event in batch:
                    live.emit(event)
        response, closing = finish(run, live.head, live.output)
        for event in closing:
            live.emit(event)
    except asyncio.CancelledError:
        await _end(live, _stopped(live), save)
        raise
    except Exception as exc:  # noqa: BLE001 - every failure ends the response, saved
        message = exc.message if isinstance(exc, APIError) else GENERIC_FAILURE
        error = {"code": "server_error", "message": message}
        response = snapshot(live.head, "failed", live.output.so_far(), error=error)
    live.emit({"type": f"response.{response['status']}", "response": response})
    await _end(live, response, save)


def _stopped(live: LiveResponse) -> dict[str, Any]:
    """The response as it stands when its job is cancelled."""
    if live.cancel_requested:
        return snapshot(live.head, "cancelled", live.output.so_far())
    return snapshot(live.head, "failed", live.output.so_far(), error=SHUTDOWN_ERROR)


async def _end(live: LiveResponse, response: dict[str, Any], save: Save) -> None:
    """Let GET and followers see the final response, then save it (and its events).

    In that order: a save interrupted (a second cancel) still leaves no follower
    waiting; the job stays registered until the save is done, so GET reads it live."""
    live.end(response)
    await save(response, live.event_texts())
