"""Runs batches: each line through the app's own endpoint, in-process, a few at a time,
behind interactive traffic.

Why in-process through the app (an ``httpx.ASGITransport`` to the same app): a line gets
exactly the API's behaviour (validation, templates, parsers, errors, stored responses)
with no copy of any of it. The line is marked in its ASGI scope (``BATCH_OWNER``, never
settable by a client), which lets it past the key check as its batch's owner and puts it
behind every interactive request in the admission queue (``BATCH_PRIORITY``); at most
``concurrency`` lines of all batches run at once, so a batch never floods the engine.

Each line's result is stored as it finishes; a restart (``resume``) reads the same input
file again, skips the lines with results, and runs the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
from starlette.types import ASGIApp, Receive, Scope, Send

from openai_frontend.auth import BATCH_OWNER
from openai_frontend.batch.lines import Planned, answered_line, error_line, read_lines, request_id
from openai_frontend.batch.store import BatchStore, LineResult, StoredFile

log = logging.getLogger(__name__)

#: Lines of all batches sent at once: enough to keep a batching engine busy when idle,
#: few enough that interactive requests (which go first in admission) find room.
DEFAULT_CONCURRENCY = 4
#: A line answered "busy" (429, 503) is retried after its Retry-After, this many times.
MAX_RETRIES = 20
_OWNER_HEADER = b"x-openai-frontend-batch-owner"


class LineSender(Protocol):
    """Sends one line's body to ``url`` as ``owner``: (status, JSON body, headers)."""

    async def __call__(
        self, owner: str, url: str, body: dict[str, Any], request: str
    ) -> tuple[int, Any, dict[str, str]]: ...


class _AsOwner:
    """The app, for in-process lines only: the owner header becomes the scope marker."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = scope.get("headers", [])
        owner = next(value for name, value in headers if name == _OWNER_HEADER).decode()
        scope = {
            **scope,
            "headers": [(name, value) for name, value in headers if name != _OWNER_HEADER],
            "state": {BATCH_OWNER: owner, "log_fields": {"batch": True}},
        }
        await self.app(scope, receive, send)


class InProcessSender:
    """Sends lines through ``app`` itself (middleware, routers, admission and all)."""

    def __init__(self, app: ASGIApp) -> None:
        transport = httpx.ASGITransport(app=_AsOwner(app))
        self._client = httpx.AsyncClient(
            transport=transport, base_url="http://batch.internal", timeout=None
        )

    async def __call__(
        self, owner: str, url: str, body: dict[str, Any], request: str
    ) -> tuple[int, Any, dict[str, str]]:
        headers = {_OWNER_HEADER.decode(): owner, "x-request-id": request}
        response = await self._client.post(url, json=body, headers=headers)
        try:
            payload = response.json()
        except ValueError:
            payload = {"error": {"message": response.text, "type": "server_error"}}
        return response.status_code, payload, dict(response.headers)

    async def close(self) -> None:
        await self._client.aclose()


@dataclass
class _Job:
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    expired: bool = False
    inflight: set[asyncio.Task] = field(default_factory=set)
    task: asyncio.Task | None = None


class BatchRunner:
    def __init__(
        self,
        store: BatchStore,
        send: LineSender,
        concurrency: int = DEFAULT_CONCURRENCY,
        ready: Callable[[], bool] = lambda: True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._send = send
        self._concurrency = concurrency
        self._slots = asyncio.Semaphore(concurrency)
        self._ready = ready
        self._clock = clock
        self._jobs: dict[str, _Job] = {}

    def start(self, owner: str, batch_id: str) -> None:
        job = _Job()
        self._jobs[batch_id] = job
        job.task = asyncio.create_task(self._run(owner, batch_id, job), name=f"batch {batch_id}")
        job.task.add_done_callback(lambda _: self._jobs.pop(batch_id, None))

    async def resume(self) -> list[str]:
        """Start every batch an earlier process left unfinished; their ids."""
        unfinished = await self._store.unfinished()
        for owner, batch_id in unfinished:
            log.info("resuming batch %s", batch_id)
            self.start(owner, batch_id)
        return [batch_id for _, batch_id in unfinished]

    def cancel(self, batch_id: str) -> None:
        """Stop sending ``batch_id``'s lines and abort those in flight (the store already
        says ``cancelling``); the runner then writes what finished and ``cancelled``."""
        job = self._jobs.get(batch_id)
        if job is not None:
            job.stop.set()
            for task in job.inflight:
                task.cancel()

    async def wait(self, batch_id: str) -> None:
        """Until ``batch_id``'s run ends (returns at once if none runs here)."""
        job = self._jobs.get(batch_id)
        if job is not None and job.task is not None:
            await asyncio.shield(job.task)

    async def close(self) -> None:
        """Stop every run; lines that finished are stored, so the next start resumes."""
        tasks = [job.task for job in self._jobs.values() if job.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, owner: str, batch_id: str, job: _Job) -> None:
        try:
            while not self._ready():  # a restart: lines wait for the model to load
                await asyncio.sleep(0.5)
            await self._run_batch(owner, batch_id, job)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.exception("batch %s failed", batch_id)
            failure = {"code": "batch_failed", "message": str(error) or type(error).__name__}
            with contextlib.suppress(Exception):
                await self._finalize(owner, batch_id, "failed", [failure])

    async def _run_batch(self, owner: str, batch_id: str, job: _Job) -> None:
        batch = await self._store.get_batch(None, batch_id)
        if batch is None:
            return
        content = await self._store.file_content(owner, batch["input_file_id"])
        if content is None:
            message = f"Input file '{batch['input_file_id']}' is gone (deleted or expired)."
            failure = {"code": "file_not_found", "message": message, "param": "input_file_id"}
            await self._finalize(owner, batch_id, "failed", [failure])
            return
        planned = read_lines(content, batch["endpoint"])
        if not planned:
            failure = {"code": "empty_file", "message": "The input file has no lines."}
            await self._finalize(owner, batch_id, "failed", [failure])
            return
        if batch["status"] == "validating":
            started = {"status": "in_progress", "in_progress_at": int(self._clock())}
            await self._store.update_batch(
                batch_id, {**started, "_total": len(planned)}, only_from=("validating",)
            )
            batch = await self._store.get_batch(None, batch_id) or batch
        if batch["status"] == "in_progress":
            done = {result.line for result in await self._store.lines(batch_id)}
            todo = [line for line in planned if line.line not in done]
            await self._run_lines(owner, batch, todo, job)
        if job.expired:
            await self._finalize(owner, batch_id, "expired")
        elif job.stop.is_set() or batch["status"] == "cancelling":
            await self._finalize(owner, batch_id, "cancelled")
        else:
            await self._finalize(owner, batch_id, "completed")

    async def _run_lines(
        self, owner: str, batch: dict[str, Any], todo: list[Planned], job: _Job
    ) -> None:
        """Send ``todo`` in order through the shared slots; store each result at once."""
        lines = iter(todo)

        async def worker() -> None:
            for planned in lines:
                if job.stop.is_set():
                    return
                if self._clock() >= batch["expires_at"]:
                    job.expired = True
                    job.stop.set()
                    return
                async with self._slots:
                    if job.stop.is_set():
                        return
                    task = asyncio.create_task(self._line(owner, batch["endpoint"], planned, job))
                    job.inflight.add(task)
                    try:
                        result = await task
                    except asyncio.CancelledError:
                        if task.cancelled() and job.stop.is_set():
                            return  # aborted by a cancel: the line has no result
                        raise
                    finally:
                        job.inflight.discard(task)
                await self._store.save_line(batch["id"], result)

        await asyncio.gather(*(worker() for _ in range(self._concurrency)))

    async def _line(self, owner: str, endpoint: str, planned: Planned, job: _Job) -> LineResult:
        if planned.body is None:
            return LineResult(planned.line, False, error_line(planned))
        request = request_id()
        for _ in range(MAX_RETRIES):
            try:
                status, body, headers = await self._send(owner, endpoint, planned.body, request)
            except Exception as error:  # the app answers errors itself; this is a bug
                log.exception("batch line %s could not be sent", planned.custom_id)
                message = {"message": f"internal error: {error}", "type": "server_error"}
                status, body, headers = 500, {"error": message}, {}
            if status not in (429, 503) or job.stop.is_set():
                break
            # Busy (queue full, model loading): wait as told, then send it again.
            await asyncio.sleep(_retry_after(headers))
        ok = 200 <= status < 300
        return LineResult(planned.line, ok, answered_line(planned.custom_id, status, request, body))

    async def _finalize(
        self, owner: str, batch_id: str, status: str, errors: list[dict] | None = None
    ) -> None:
        """Write the output and error files (the lines that finished, in input order)
        and the final status in one transaction."""
        now = int(self._clock())
        results = await self._store.lines(batch_id)
        changes: dict[str, Any] = {"status": status, f"{status}_at": now}
        if status == "completed":
            changes["finalizing_at"] = now
        if errors:
            changes["errors"] = {"object": "list", "data": errors}
        files = []
        for ok, kind, key in (
            (True, "output", "output_file_id"),
            (False, "error", "error_file_id"),
        ):
            chosen = [result.result for result in results if result.ok == ok]
            if not chosen:
                continue
            content = ("\n".join(chosen) + "\n").encode()
            file = StoredFile(
                f"file-{uuid.uuid4().hex}",
                now,
                f"{batch_id}_{kind}.jsonl",
                "batch_output",
                len(content),
            )
            files.append((file, content))
            changes[key] = file.id
        await self._store.finish(owner, batch_id, changes, files)
        log.info("batch %s %s: %d lines answered", batch_id, status, len(results))


def _retry_after(headers: dict[str, str]) -> float:
    try:
        return max(float(headers.get("retry-after", "1")), 0.1)
    except ValueError:
        return 1.0
