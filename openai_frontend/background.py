"""Work that outlives the request that started it, and its end at shutdown.

A dialect may answer at once and keep generating (the Responses API's ``background``).
Such work runs as an asyncio task tied to no connection; this registry finds it by key
(to follow or cancel it) and, at shutdown, gives it the drain time to finish, then
cancels what is left and waits for it, so each job can record how it ended before the
engine and the store close under it. What a job is, the dialect decides: here it is
only a key, an object and a task.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

J = TypeVar("J")


class BackgroundJobs(Generic[J]):
    """Running jobs by key; a job leaves the registry when its task ends."""

    def __init__(self) -> None:
        self._jobs: dict[str, tuple[J, asyncio.Task[None]]] = {}

    def start(self, key: str, job: J, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` as a task of its own, findable by ``key`` until it ends."""
        task = asyncio.create_task(work, name=f"background {key}")
        self._jobs[key] = (job, task)
        task.add_done_callback(lambda done: self._ended(key, done))

    def find(self, key: str) -> J | None:
        entry = self._jobs.get(key)
        return entry[0] if entry is not None else None

    async def cancel(self, key: str) -> None:
        """Cancel the job and wait until it has ended (its own clean-up included)."""
        entry = self._jobs.get(key)
        if entry is not None:
            entry[1].cancel()
            await asyncio.wait({entry[1]})

    def __len__(self) -> int:
        return len(self._jobs)

    async def stop(self, grace_s: float) -> None:
        """At shutdown: wait up to ``grace_s`` for the jobs, then cancel the rest and wait
        for their clean-up (each marks itself unfinished, so none looks alive forever)."""
        tasks = {task for _, task in self._jobs.values()}
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=grace_s)
        for task in pending:
            task.cancel()
        if pending:
            log.warning("shutdown: %d background job(s) cancelled unfinished", len(pending))
            await asyncio.wait(pending)

    def _ended(self, key: str, task: asyncio.Task[None]) -> None:
        if self._jobs.get(key, (None, None))[1] is task:
            del self._jobs[key]
        if not task.cancelled() and task.exception() is not None:
            log.error("background job %s failed", key, exc_info=task.exception())
