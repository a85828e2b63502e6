"""Files and batches, in the same SQLite file (and on the same worker thread) as the
stored responses.

Why the same store: one file to back up, one place for ownership (every row carries the
``owner_of`` hash of the key that created it, and every API read or delete filters by
it, so another key's file or batch is a 404), and one thread that owns the connection.
Each batch line's result is written as it finishes (``batch_lines``), so a restart
resumes a batch without rerunning a line that already has a result. Rows older than the
store's TTL (``--responses-ttl``) are 404s and are deleted at the next upload.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from openai_frontend.responses.store import SQLiteResponseStore, _script, _transaction

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    filename TEXT NOT NULL,
    purpose TEXT NOT NULL,
    content BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS files_by_owner ON files (owner, created_at);
CREATE TABLE IF NOT EXISTS batches (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    status TEXT NOT NULL,
    batch TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS batches_by_owner ON batches (owner, created_at);
CREATE TABLE IF NOT EXISTS batch_lines (
    batch_id TEXT NOT NULL,
    line INTEGER NOT NULL,
    ok INTEGER NOT NULL,
    result TEXT NOT NULL,
    PRIMARY KEY (batch_id, line)
);
"""

#: Statuses a batch can still leave: the runner resumes these at start.
UNFINISHED = ("validating", "in_progress", "finalizing", "cancelling")


class FilesFull(Exception):
    """An upload that would take the files past the store's ``max_bytes``
    (``--responses-max-bytes``): refused, never made room for by deleting a file a
    batch may still read."""


@dataclass(frozen=True)
class StoredFile:
    id: str
    created_at: int
    filename: str
    purpose: str
    bytes: int

    def body(self) -> dict[str, Any]:
        """OpenAI's ``OpenAIFile``."""
        return {
            "id": self.id,
            "object": "file",
            "bytes": self.bytes,
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
        }


@dataclass(frozen=True)
class LineResult:
    """One finished input line: ``ok`` (2xx) lines go to the output file, the others
    to the error file; ``result`` is the whole JSONL line."""

    line: int
    ok: bool
    result: str


class BatchStore:
    """Files, batches and per-line results over a :class:`SQLiteResponseStore`."""

    def __init__(self, store: SQLiteResponseStore) -> None:
        self._store = store

    async def _call(self, function: Any, *args: object) -> Any:
        return await self._store._call(function, *args)

    def _db(self) -> sqlite3.Connection:
        db = self._store._connect()
        if not getattr(self._store, "_batch_tables", False):
            with _transaction(db):
                _script(db, _SCHEMA)
            self._store._batch_tables = True  # type: ignore[attr-defined]
        return db

    def _oldest_alive(self) -> float:
        return self._store._oldest_alive()

    # Files.

    async def save_file(self, owner: str, file: StoredFile, content: bytes) -> None:
        await self._call(self._save_file, owner, file, content)

    def _save_file(self, owner: str, file: StoredFile, content: bytes) -> None:
        db = self._db()
        with _transaction(db):
            self._trim(db)
            held = db.execute("SELECT total(length(content)) FROM files").fetchone()[0]
            if held + len(content) > self._store.max_bytes:
                raise FilesFull(f"files hold {int(held)} of {self._store.max_bytes} bytes")
            db.execute(
                "INSERT INTO files VALUES (?, ?, ?, ?, ?, ?)",
                (file.id, owner, file.created_at, file.filename, file.purpose, content),
            )

    def _trim(self, db: sqlite3.Connection) -> None:
        """Expired files and finished batches go (an unfinished one is kept: it ends as
        ``expired`` by its own window first)."""
        oldest = self._oldest_alive()
        db.execute("DELETE FROM files WHERE created_at < ?", (oldest,))
        old = f"created_at < ? AND status NOT IN ({', '.join('?' * len(UNFINISHED))})"
        db.execute(
            f"DELETE FROM batch_lines WHERE batch_id IN (SELECT id FROM batches WHERE {old})",
            (oldest, *UNFINISHED),
        )
        db.execute(f"DELETE FROM batches WHERE {old}", (oldest, *UNFINISHED))

    async def get_file(self, owner: str, file_id: str) -> StoredFile | None:
        return await self._call(self._get_file, owner, file_id)

    def _get_file(self, owner: str, file_id: str) -> StoredFile | None:
        row = self._file_row("id, created_at, filename, purpose, length(content)", owner, file_id)
        return None if row is None else StoredFile(*row)

    def _file_row(self, columns: str, owner: str, file_id: str) -> tuple | None:
        """``columns`` of ``owner``'s live file ``file_id``: one place for the rule that
        another key's file, or an expired one, does not exist."""
        return (
            self._db()
            .execute(
                f"SELECT {columns} FROM files WHERE id = ? AND owner = ? AND created_at >= ?",
                (file_id, owner, self._oldest_alive()),
            )
            .fetchone()
        )

    async def file_content(self, owner: str, file_id: str) -> bytes | None:
        return await self._call(self._file_content, owner, file_id)

    def _file_content(self, owner: str, file_id: str) -> bytes | None:
        row = self._file_row("content", owner, file_id)
        return None if row is None else bytes(row[0])

    async def delete_file(self, owner: str, file_id: str) -> bool:
        return await self._call(self._delete_file, owner, file_id)

    def _delete_file(self, owner: str, file_id: str) -> bool:
        db = self._db()
        with _transaction(db):
            gone = db.execute(
                "DELETE FROM files WHERE id = ? AND owner = ? AND created_at >= ?",
                (file_id, owner, self._oldest_alive()),
            ).rowcount
        return gone > 0

    async def list_files(
        self, owner: str, purpose: str | None, after: str | None, limit: int
    ) -> tuple[list[StoredFile], bool]:
        return await self._call(self._list_files, owner, purpose, after, limit)

    def _list_files(
        self, owner: str, purpose: str | None, after: str | None, limit: int
    ) -> tuple[list[StoredFile], bool]:
        """Newest first, as OpenAI lists them; ``after`` is the last id of a page."""
        where, args = "owner = ? AND created_at >= ?", [owner, self._oldest_alive()]
        if purpose is not None:
            where += " AND purpose = ?"
            args.append(purpose)
        if after is not None:
            where += " AND rowid < (SELECT rowid FROM files WHERE id = ?)"
            args.append(after)
        rows = (
            self._db()
            .execute(
                "SELECT id, created_at, filename, purpose, length(content) FROM files "
                f"WHERE {where} ORDER BY rowid DESC LIMIT ?",
                (*args, limit + 1),
            )
            .fetchall()
        )
        return [StoredFile(*row) for row in rows[:limit]], len(rows) > limit

    # Batches. The ``batch`` column is OpenAI's Batch object without request_counts,
    # which are counted from ``batch_lines`` on every read (one source of truth).

    async def create_batch(self, owner: str, batch: dict[str, Any]) -> None:
        await self._call(self._create_batch, owner, batch)

    def _create_batch(self, owner: str, batch: dict[str, Any]) -> None:
        db = self._db()
        with _transaction(db):
            db.execute(
                "INSERT INTO batches VALUES (?, ?, ?, ?, ?)",
                (batch["id"], owner, batch["created_at"], batch["status"], json.dumps(batch)),
            )

    async def get_batch(self, owner: str | None, batch_id: str) -> dict[str, Any] | None:
        """``owner`` None: the runner's own read, whoever owns it."""
        return await self._call(self._get_batch, owner, batch_id)

    def _get_batch(self, owner: str | None, batch_id: str) -> dict[str, Any] | None:
        db = self._db()
        row = db.execute(
            "SELECT batch FROM batches WHERE id = ? AND (? IS NULL OR owner = ?) "
            "AND created_at >= ?",
            (batch_id, owner, owner, self._oldest_alive()),
        ).fetchone()
        return None if row is None else self._counted(db, json.loads(row[0]))

    def _counted(self, db: sqlite3.Connection, batch: dict[str, Any]) -> dict[str, Any]:
        done, ok = db.execute(
            "SELECT count(*), total(ok) FROM batch_lines WHERE batch_id = ?", (batch["id"],)
        ).fetchone()
        batch["request_counts"] = {
            "total": batch.pop("_total", 0),
            "completed": int(ok),
            "failed": done - int(ok),
        }
        return batch

    async def list_batches(
        self, owner: str, after: str | None, limit: int
    ) -> tuple[list[dict[str, Any]], bool]:
        return await self._call(self._list_batches, owner, after, limit)

    def _list_batches(
        self, owner: str, after: str | None, limit: int
    ) -> tuple[list[dict[str, Any]], bool]:
        """Newest first; ``after`` is the last id of the previous page."""
        db = self._db()
        where, args = "owner = ? AND created_at >= ?", [owner, self._oldest_alive()]
        if after is not None:
            where += " AND rowid < (SELECT rowid FROM batches WHERE id = ?)"
            args.append(after)
        rows = db.execute(
            f"SELECT batch FROM batches WHERE {where} ORDER BY rowid DESC LIMIT ?",
            (*args, limit + 1),
        ).fetchall()
        batches = [self._counted(db, json.loads(row[0])) for row in rows[:limit]]
        return batches, len(rows) > limit

    async def update_batch(
        self, batch_id: str, changes: dict[str, Any], only_from: tuple[str, ...] = ()
    ) -> dict[str, Any] | None:
        """Apply ``changes`` (None if ``only_from`` is given and the status is not in it:
        a cancel and the runner's own moves never overwrite each other)."""
        return await self._call(self._update_batch, None, batch_id, changes, only_from)

    async def cancel_batch(self, owner: str, batch_id: str) -> dict[str, Any] | None:
        """Mark ``owner``'s batch cancelling if it is still running; the batch as it is
        (None: no such batch)."""
        changes = {"status": "cancelling", "cancelling_at": int(time.time())}
        return await self._call(
            self._update_batch, owner, batch_id, changes, ("validating", "in_progress")
        )

    def _update_batch(
        self,
        owner: str | None,
        batch_id: str,
        changes: dict[str, Any],
        only_from: tuple[str, ...],
    ) -> dict[str, Any] | None:
        db = self._db()
        with _transaction(db):
            batch = self._apply(db, owner, batch_id, changes, only_from)
        return None if batch is None else self._counted(db, batch)

    def _apply(
        self,
        db: sqlite3.Connection,
        owner: str | None,
        batch_id: str,
        changes: dict[str, Any],
        only_from: tuple[str, ...],
    ) -> dict[str, Any] | None:
        """``_update_batch`` inside the caller's transaction."""
        row = db.execute(
            "SELECT batch FROM batches WHERE id = ? AND (? IS NULL OR owner = ?)",
            (batch_id, owner, owner),
        ).fetchone()
        if row is None:
            return None
        batch = json.loads(row[0])
        if not only_from or batch["status"] in only_from:
            batch.update(changes)
            db.execute(
                "UPDATE batches SET status = ?, batch = ? WHERE id = ?",
                (batch["status"], json.dumps(batch), batch_id),
            )
        elif owner is None:
            return None
        return batch

    async def unfinished(self) -> list[tuple[str, str]]:
        """(owner, batch id) of every batch a restart must resume, oldest first."""
        return await self._call(self._unfinished)

    def _unfinished(self) -> list[tuple[str, str]]:
        marks = ", ".join("?" * len(UNFINISHED))
        return (
            self._db()
            .execute(
                f"SELECT owner, id FROM batches WHERE status IN ({marks}) ORDER BY rowid",
                UNFINISHED,
            )
            .fetchall()
        )

    # Per-line results.

    async def save_line(self, batch_id: str, result: LineResult) -> None:
        await self._call(self._save_line, batch_id, result)

    def _save_line(self, batch_id: str, result: LineResult) -> None:
        db = self._db()
        with _transaction(db):
            db.execute(
                "INSERT OR REPLACE INTO batch_lines VALUES (?, ?, ?, ?)",
                (batch_id, result.line, int(result.ok), result.result),
            )

    async def lines(self, batch_id: str) -> list[LineResult]:
        return await self._call(self._lines, batch_id)

    def _lines(self, batch_id: str) -> list[LineResult]:
        rows = self._db().execute(
            "SELECT line, ok, result FROM batch_lines WHERE batch_id = ? ORDER BY line",
            (batch_id,),
        )
        return [LineResult(line, bool(ok), result) for line, ok, result in rows]

    async def finish(
        self,
        owner: str,
        batch_id: str,
        changes: dict[str, Any],
        files: list[tuple[StoredFile, bytes]],
    ) -> dict[str, Any] | None:
        """Write the output and error files and the batch's final status at once, so a
        restart never sees a finished batch without its files (or the reverse)."""
        return await self._call(self._finish, owner, batch_id, changes, files)

    def _finish(
        self,
        owner: str,
        batch_id: str,
        changes: dict[str, Any],
        files: list[tuple[StoredFile, bytes]],
    ) -> dict[str, Any] | None:
        db = self._db()
        with _transaction(db):
            for file, content in files:
                db.execute(
                    "INSERT INTO files VALUES (?, ?, ?, ?, ?, ?)",
                    (file.id, owner, file.created_at, file.filename, file.purpose, content),
                )
            batch = self._apply(db, None, batch_id, changes, ())
        return None if batch is None else self._counted(db, batch)
