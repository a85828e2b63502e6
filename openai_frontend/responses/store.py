"""Stored responses: a small Protocol, SQLite behind it by default.

The router only speaks :class:`ResponseStore`, so several gateway replicas can later
share one Postgres (or any database) by implementing these three calls; see the README.
A response belongs to the API key that created it: rows carry the SHA-256 of that key
(never the key), and every read or delete is filtered by it, so another key's response
looks exactly like a missing one (404).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from openai_frontend.responses.items import Item


@dataclass(frozen=True)
class StoredResponse:
    """A finished response, and every item its model saw (earlier turns included)."""

    id: str
    response: dict[str, Any]
    input_items: list[Item]

    def conversation(self) -> list[Item]:
        """The items a follow-up (``previous_response_id``) continues from."""
        return [*self.input_items, *self.response["output"]]


class ResponseStore(Protocol):
    #: False for ``--response-store none``: nothing is kept.
    enabled: bool

    async def save(self, owner: str, record: StoredResponse) -> None: ...

    async def load(self, owner: str, response_id: str) -> StoredResponse | None: ...

    async def delete(self, owner: str, response_id: str) -> bool: ...


def owner_of(api_key: str | None) -> str:
    """The owner column for a request's bearer key (servers without keys share one)."""
    return hashlib.sha256((api_key or "").encode()).hexdigest()


class NoStore:
    """``--response-store none``: responses are served but never kept."""

    enabled = False

    async def save(self, owner: str, record: StoredResponse) -> None:
        return None

    async def load(self, owner: str, response_id: str) -> StoredResponse | None:
        return None

    async def delete(self, owner: str, response_id: str) -> bool:
        return False


_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    response TEXT NOT NULL,
    input_items TEXT NOT NULL
)
"""


class SQLiteResponseStore:
    """One SQLite file; calls run in worker threads so the event loop never waits on disk.

    The file (and its folder) is created on first use, so a server that never sees a
    Responses request leaves nothing behind.
    """

    enabled = True

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    async def save(self, owner: str, record: StoredResponse) -> None:
        row = (
            record.id,
            owner,
            record.response["created_at"],
            json.dumps(record.response),
            json.dumps(record.input_items),
        )
        await self._run("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?)", row)

    async def load(self, owner: str, response_id: str) -> StoredResponse | None:
        rows = await self._run(
            "SELECT response, input_items FROM responses WHERE id = ? AND owner = ?",
            (response_id, owner),
        )
        if not rows:
            return None
        response, items = rows[0]
        return StoredResponse(response_id, json.loads(response), json.loads(items))

    async def delete(self, owner: str, response_id: str) -> bool:
        rows = await self._run(
            "DELETE FROM responses WHERE id = ? AND owner = ? RETURNING id", (response_id, owner)
        )
        return bool(rows)

    async def _run(self, sql: str, params: tuple) -> list[tuple]:
        return await asyncio.to_thread(self._execute, sql, params)

    def _execute(self, sql: str, params: tuple) -> list[tuple]:
        with self._lock:
            db = self._connect()
            with db:  # one transaction per call
                return db.execute(sql, params).fetchall()

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(_SCHEMA)
            self._db = db
        return self._db


def open_store(setting: str | None) -> ResponseStore:
    """``--response-store``: a file path, ``none``, or unset (a file in the cache dir)."""
    if setting == "none":
        return NoStore()
    if setting is None:
        from openai_frontend.default_model import cache_root

        return SQLiteResponseStore(cache_root() / "responses.sqlite3")
    return SQLiteResponseStore(Path(setting).expanduser())
