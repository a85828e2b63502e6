"""Stored responses: a small Protocol, SQLite behind it by default.

The router only speaks :class:`ResponseStore`, so several gateway replicas can later
share one Postgres (or any database) by implementing its calls; see the README.
A response belongs to the API key that created it: rows carry the SHA-256 of that key
(never the key), and every read or delete is filtered by it, so another key's response
looks exactly like a missing one (404).

A follow-up (``previous_response_id``) is stored as a link to the response it continues
plus its own new input items only; the conversation is rebuilt by walking the links, so
a chain of N turns stores each item once instead of copying the history N times.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from openai_frontend.responses.items import Item

log = logging.getLogger(__name__)

#: OpenAI keeps stored responses for 30 days; so do we, unless --responses-ttl says else.
DEFAULT_TTL_S = 30 * 24 * 3600
DEFAULT_MAX_BYTES = 1 << 30
#: How long one SQLite call waits for a lock another connection holds (SQLite's own
#: default is 5 s), and how long a caller waits in all, queue included. Past that a save
#: is given up (the answer is still delivered, marked ``store: false``).
BUSY_TIMEOUT_S = 0.5
WAIT_S = 1.0
#: At start a lock held a moment longer (another process's write) is waited out.
START_BUSY_TIMEOUT_S = 5.0


class StoreUnavailable(Exception):
    """The store could not answer in time, or at all (locked, full disk, bad file...)."""


@dataclass(frozen=True)
class StoredResponse:
    """A finished response, and every item its model saw (earlier turns included)."""

    id: str
    response: dict[str, Any]
    input_items: list[Item]
    #: The stream's events, kept for a background response created with ``stream``
    #: (a later GET may replay them); None for every other response.
    events: list[dict[str, Any]] | None = None

    def conversation(self) -> list[Item]:
        """The items a follow-up (``previous_response_id``) continues from."""
        return [*self.input_items, *self.response["output"]]


@dataclass(frozen=True)
class NewResponse:
    """What a create saves: the response, this turn's input, and the turn it continues.

    ``history`` is that turn's conversation as it was read; it is stored only if that
    turn was deleted or expired while this one generated (the link would lead nowhere).
    """

    id: str
    response: dict[str, Any]
    new_items: list[Item]
    previous_id: str | None = None
    history: list[Item] = field(default_factory=list)


class ResponseStore(Protocol):
    #: False for ``--response-store none``: nothing is kept.
    enabled: bool

    async def save(self, owner: str, record: NewResponse) -> None: ...

    async def load(self, owner: str, response_id: str) -> StoredResponse | None: ...

    async def delete(self, owner: str, response_id: str) -> bool: ...

    async def update(
        self,
        owner: str,
        response_id: str,
        response: dict[str, Any],
        events: list[bytes] | None = None,
    ) -> bool:
        """Replace a saved response (a background one as it progresses), and keep its
        events (each a JSON text) if given; False if there is no such row any more."""
        ...

    async def load_items(self, owner: str, item_ids: list[str]) -> dict[str, Item]:
        """The items of ``owner``'s stored responses (input or output) with these ids."""
        ...

    def close(self) -> None: ...


def owner_of(api_key: str | None) -> str:
    """The owner column for a request's authenticated key. A server without keys has
    no one to tell apart: every caller is the same owner, whatever it sends."""
    return hashlib.sha256((api_key or "").encode()).hexdigest()


class NoStore:
    """``--response-store none``: responses are served but never kept."""

    enabled = False

    async def save(self, owner: str, record: NewResponse) -> None:
        return None

    async def load(self, owner: str, response_id: str) -> StoredResponse | None:
        return None

    async def delete(self, owner: str, response_id: str) -> bool:
        return False

    async def update(
        self,
        owner: str,
        response_id: str,
        response: dict[str, Any],
        events: list[bytes] | None = None,
    ) -> bool:
        return False

    async def load_items(self, owner: str, item_ids: list[str]) -> dict[str, Item]:
        return {}

    def close(self) -> None:
        return None


#: ``input_items`` holds the row's own new items; ``previous_id`` the row it continues;
#: ``events`` a background stream's events (else null); ``size`` the bytes of its JSON
#: texts (what --responses-max-bytes counts).
_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    response TEXT NOT NULL,
    input_items TEXT NOT NULL,
    previous_id TEXT,
    size INTEGER NOT NULL DEFAULT 0,
    events TEXT
);
CREATE INDEX IF NOT EXISTS responses_by_age ON responses (created_at);
CREATE INDEX IF NOT EXISTS responses_by_previous ON responses (previous_id);
"""

#: Rows written before chaining hold their whole history and no link: each is a chain
#: of its own, so adding the columns is the whole migration.
_MIGRATION = """
ALTER TABLE responses ADD COLUMN previous_id TEXT;
ALTER TABLE responses ADD COLUMN size INTEGER NOT NULL DEFAULT 0;
UPDATE responses SET size = length(response) + length(input_items);
"""

#: Background responses came later: their events' column is all a table needs.
_EVENTS_MIGRATION = "ALTER TABLE responses ADD COLUMN events TEXT"

#: Rows a server left unfinished: a background response is written when it starts and
#: rewritten when it ends, so one still queued or in progress at start was cut short
#: by the process that ran it stopping (a crash, a kill, or a restart).
_UNFINISHED = """
SELECT id, response FROM responses
WHERE json_extract(response, '$.status') IN ('queued', 'in_progress')
"""
RESTARTED_ERROR = {
    "code": "server_error",
    "message": "The server restarted before this background response finished; create it again.",
}

#: The row and the rows it continues, newest first.
_CHAIN = """
WITH RECURSIVE chain(depth, previous_id, response, input_items, events) AS (
    SELECT 0, previous_id, response, input_items, events FROM responses
    WHERE id = ? AND owner = ? AND created_at >= ?
    UNION ALL
    SELECT chain.depth + 1, r.previous_id, r.response, r.input_items, r.events
    FROM responses AS r JOIN chain ON r.id = chain.previous_id AND r.owner = ?
)
SELECT response, input_items, events FROM chain ORDER BY depth DESC
"""

#: Items by id among one owner's live rows, inputs and outputs alike (a scan of that
#: owner's rows: item references are rare next to whole-response reads).
_ITEMS = """
SELECT item.value FROM responses AS r, json_each({source}) AS item
WHERE r.owner = ? AND r.created_at >= ? AND json_extract(item.value, '$.id') IN ({marks})
"""

T = TypeVar("T")


class SQLiteResponseStore:
    """One SQLite file, created 0600 in a folder created 0700.

    Every call runs on the store's own single worker thread (never the default executor,
    which tokenization shares), and a caller waits at most ``WAIT_S``: a locked or
    broken database raises :class:`StoreUnavailable` instead of holding the request.
    Rows older than ``ttl_s`` are 404s and are deleted; past ``max_bytes`` the oldest
    rows go first.

    ``shared``: several API processes write the file (``--api-server-count``). Then the
    size total is read in each write's transaction (another process's rows count too),
    and opening does not mark unfinished background responses failed: a sibling may be
    running them (the supervisor sweeps once, before any API process starts).
    """

    enabled = True

    def __init__(
        self,
        path: Path,
        ttl_s: float = DEFAULT_TTL_S,
        max_bytes: int = DEFAULT_MAX_BYTES,
        clock: Callable[[], float] = time.time,
        shared: bool = False,
    ) -> None:
        self.path = path
        self.shared = shared
        self.ttl_s = ttl_s
        self.max_bytes = max_bytes
        self._clock = clock
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="response-store")
        self._db: sqlite3.Connection | None = None
        #: The sum of the rows' ``size``; read and written on the worker thread only.
        self._bytes = 0

    def open(self) -> None:
        """Create or open the file and prove it can be written: called at start, so a
        bad ``--response-store`` stops the server with a clear message (a ValueError)."""
        try:
            self._worker.submit(self._connect).result()
        except (sqlite3.Error, OSError) as error:
            raise ValueError(f"--response-store {self.path} cannot be written: {error}") from None

    def close(self) -> None:
        """Close the file (on the worker, which owns the connection), then the worker."""
        self._worker.submit(self._disconnect)
        self._worker.shutdown(wait=True)

    def _disconnect(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    async def save(self, owner: str, record: NewResponse) -> None:
        await self._call(self._insert, owner, record)

    async def load(self, owner: str, response_id: str) -> StoredResponse | None:
        return await self._call(self._load, owner, response_id)

    async def delete(self, owner: str, response_id: str) -> bool:
        return await self._call(self._delete, owner, response_id)

    async def update(
        self,
        owner: str,
        response_id: str,
        response: dict[str, Any],
        events: list[bytes] | None = None,
    ) -> bool:
        return await self._call(self._update, owner, response_id, response, events)

    async def load_items(self, owner: str, item_ids: list[str]) -> dict[str, Item]:
        return await self._call(self._load_items, owner, item_ids)

    async def _call(self, function: Callable[..., T], *args: object) -> T:
        job = self._worker.submit(function, *args)
        done = asyncio.wrap_future(job)
        try:
            try:
                return await asyncio.wait_for(asyncio.shield(done), WAIT_S)
            except TimeoutError:
                if job.cancel():  # still queued: it will never run
                    raise StoreUnavailable(f"busy for {WAIT_S} s") from None
                return await done  # running: SQLite's busy timeout bounds it
        except (sqlite3.Error, OSError) as error:
            raise StoreUnavailable(str(error)) from error

    # Everything below runs on the worker thread.

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            _create_private(self.path)
            db = sqlite3.connect(self.path, timeout=START_BUSY_TIMEOUT_S, isolation_level=None)
            db.execute("PRAGMA auto_vacuum = INCREMENTAL")  # only takes on a new file
            db.execute("PRAGMA journal_mode = WAL")
            with _transaction(db):  # a write: it proves the file can be written
                columns = {row[1] for row in db.execute("PRAGMA table_info(responses)")}
                if columns and "previous_id" not in columns:
                    _script(db, _MIGRATION)
                if columns and "events" not in columns:
                    db.execute(_EVENTS_MIGRATION)
                _script(db, _SCHEMA)
                if not self.shared:
                    _fail_unfinished(db)
                total = int(db.execute("SELECT total(size) FROM responses").fetchone()[0])
                self._bytes = total - self._trim(db, total, exclude=None)
            db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            self._db = db
        return self._db

    def _insert(self, owner: str, record: NewResponse) -> None:
        response = json.dumps(record.response)
        db = self._connect()
        with _transaction(db):
            previous_id, items = record.previous_id, record.new_items
            if previous_id is not None and not _exists(db, previous_id):
                previous_id, items = None, [*record.history, *items]
            items_json = json.dumps(items)
            size = len(response) + len(items_json)  # ASCII JSON: characters are bytes
            if size > self.max_bytes:
                raise StoreUnavailable(f"the response is larger than {self.max_bytes} bytes")
            db.execute(
                "INSERT INTO responses (id, owner, created_at, response, input_items, "
                "previous_id, size) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (record.id, owner, record.response["created_at"], response, items_json)
                + (previous_id, size),
            )
            total = self._total_after(db, size)
            total -= self._trim(db, total, exclude=record.id)
        self._bytes = total

    def _update(
        self, owner: str, response_id: str, response: dict[str, Any], events: list[bytes] | None
    ) -> bool:
        text = json.dumps(response)
        events_text = None if events is None else (b"[" + b",".join(events) + b"]").decode()
        db = self._connect()
        with _transaction(db):
            row = db.execute(
                "SELECT size, length(input_items) FROM responses WHERE id = ? AND owner = ?",
                (response_id, owner),
            ).fetchone()
            if row is None:  # deleted (or expired) while it generated
                return False
            size = len(text) + row[1] + len(events_text or "")
            db.execute(
                "UPDATE responses SET response = ?, events = ?, size = ? WHERE id = ?",
                (text, events_text, size, response_id),
            )
            total = self._total_after(db, size - row[0])
            total -= self._trim(db, total, exclude=response_id)
        self._bytes = total
        return True

    def _load(self, owner: str, response_id: str) -> StoredResponse | None:
        rows = (
            self._connect()
            .execute(_CHAIN, (response_id, owner, self._oldest_alive(), owner))
            .fetchall()
        )
        if not rows:
            return None
        items: list[Item] = []
        for response, own_items, _ in rows[:-1]:
            items += [*json.loads(own_items), *json.loads(response)["output"]]
        response, own_items, events = rows[-1]
        return StoredResponse(
            response_id,
            json.loads(response),
            items + json.loads(own_items),
            None if events is None else json.loads(events),
        )

    def _load_items(self, owner: str, item_ids: list[str]) -> dict[str, Item]:
        db, marks = self._connect(), ", ".join("?" * len(item_ids))
        found: dict[str, Item] = {}
        for source in ("r.input_items", "r.response, '$.output'"):
            query = _ITEMS.format(source=source, marks=marks)
            for (value,) in db.execute(query, (owner, self._oldest_alive(), *item_ids)):
                item = json.loads(value)
                found[item["id"]] = item
        return found

    def _delete(self, owner: str, response_id: str) -> bool:
        db = self._connect()
        with _transaction(db):
            found = db.execute(
                "SELECT 1 FROM responses WHERE id = ? AND owner = ? AND created_at >= ?",
                (response_id, owner, self._oldest_alive()),
            ).fetchone()
            freed = self._remove(db, response_id) if found else 0
        self._bytes -= freed
        return found is not None

    def _total_after(self, db: sqlite3.Connection, change: int) -> int:
        """The rows' total size after a write that changed it by ``change``: counted
        here, or, shared, read in the write's transaction (other writers' rows too)."""
        if not self.shared:
            return self._bytes + change
        return int(db.execute("SELECT total(size) FROM responses").fetchone()[0])

    def _oldest_alive(self) -> float:
        return self._clock() - self.ttl_s

    def _trim(self, db: sqlite3.Connection, total: int, exclude: str | None) -> int:
        """Delete expired rows (newest first, so a dying chain is not re-linked row by
        row), then the oldest rows while ``total`` is over ``max_bytes``; returns the
        bytes freed. Runs inside the caller's transaction."""
        freed = 0
        expired = db.execute(
            "SELECT id FROM responses WHERE created_at < ? ORDER BY created_at DESC, rowid DESC",
            (self._oldest_alive(),),
        ).fetchall()
        for (row_id,) in expired:
            freed += self._remove(db, row_id)
        while total - freed > self.max_bytes:
            oldest = db.execute(
                "SELECT id FROM responses WHERE id IS NOT ? ORDER BY created_at, rowid LIMIT 1",
                (exclude,),
            ).fetchone()
            if oldest is None:
                break
            freed += self._remove(db, oldest[0])
        if freed:
            db.execute("PRAGMA incremental_vacuum")
        return freed

    def _remove(self, db: sqlite3.Connection, row_id: str) -> int:
        """Delete one row; the rows that continue it take its items in, so their
        conversations stay whole. Returns the bytes freed (net)."""
        previous_id, response, own_items, size = db.execute(
            "SELECT previous_id, response, input_items, size FROM responses WHERE id = ?",
            (row_id,),
        ).fetchone()
        children = db.execute(
            "SELECT id, input_items, size FROM responses WHERE previous_id = ?", (row_id,)
        ).fetchall()
        if children:
            prefix = [*json.loads(own_items), *json.loads(response)["output"]]
        for child_id, child_items, child_size in children:
            merged = json.dumps([*prefix, *json.loads(child_items)])
            grown = len(merged) - len(child_items)
            db.execute(
                "UPDATE responses SET previous_id = ?, input_items = ?, size = ? WHERE id = ?",
                (previous_id, merged, child_size + grown, child_id),
            )
            size -= grown
        db.execute("DELETE FROM responses WHERE id = ?", (row_id,))
        return size


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """A write transaction, taken at once (``IMMEDIATE``: waits out the busy timeout
    instead of failing half-way on an upgrade)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _fail_unfinished(db: sqlite3.Connection) -> None:
    """Mark every background response a stopped server left unfinished ``failed``, so a
    client polling it hears it ended instead of seeing ``in_progress`` forever. Runs in
    the opening transaction, before this server starts any of its own."""
    for row_id, text in db.execute(_UNFINISHED).fetchall():
        failed = json.dumps({**json.loads(text), "status": "failed", "error": RESTARTED_ERROR})
        log.warning("background response %s was left unfinished: marked failed", row_id)
        db.execute(
            "UPDATE responses SET response = ?, size = size + ? WHERE id = ?",
            (failed, len(failed) - len(text), row_id),
        )


def _exists(db: sqlite3.Connection, row_id: str) -> bool:
    return db.execute("SELECT 1 FROM responses WHERE id = ?", (row_id,)).fetchone() is not None


def _script(db: sqlite3.Connection, script: str) -> None:
    """Each statement of ``script`` (``executescript`` would commit the transaction)."""
    for statement in filter(str.strip, script.split(";")):
        db.execute(statement)


def _create_private(path: Path) -> None:
    """The folders we create are 0700, the file 0600; SQLite gives its -wal and -shm
    files the database file's mode. Files an older version left readable are tightened."""
    missing = []
    for folder in path.parents:
        if folder.exists():
            break
        missing.append(folder)
    for folder in reversed(missing):
        folder.mkdir(mode=0o700)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if file.exists() and file.stat().st_mode & 0o077 and file.stat().st_uid == os.getuid():
            file.chmod(0o600)


def open_store(
    setting: str | None,
    ttl_s: float = DEFAULT_TTL_S,
    max_bytes: int = DEFAULT_MAX_BYTES,
    shared: bool = False,
) -> ResponseStore:
    """``--response-store``: a file path, ``none``, or unset (a file in the cache dir).

    A file is opened here, at start: one that cannot be written raises ValueError
    before the server takes any request."""
    if setting == "none":
        return NoStore()
    if setting is None:
        from openai_frontend.default_model import cache_root

        path = cache_root() / "responses.sqlite3"
    else:
        path = Path(setting).expanduser()
    store = SQLiteResponseStore(path, ttl_s, max_bytes, shared=shared)
    store.open()
    return store
