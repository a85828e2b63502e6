"""The SQLite response store on its own: chained history, TTL, the byte cap, file modes,
a locked database, and its own worker thread. The HTTP behaviour around it is in
tests/test_responses_store.py (real server)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import stat
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from openai_frontend.responses.store import (
    NewResponse,
    SQLiteResponseStore,
    StoreUnavailable,
    open_store,
    owner_of,
)

OWNER = owner_of("key-a")
T0 = 1_800_000_000


class Clock:
    def __init__(self) -> None:
        self.now = float(T0)

    def __call__(self) -> float:
        return self.now


def message(role: str, text: str) -> dict:
    return {"type": "message", "id": f"msg_{role}_{text}", "role": role, "content": text}


def turn(number: int, previous: str | None, created_at: int = T0) -> NewResponse:
    """Response ``resp_{number}``: one new user item in, one assistant item out."""
    response = {
        "id": f"resp_{number}",
        "created_at": created_at,
        "output": [message("assistant", f"answer {number}")],
    }
    return NewResponse(response["id"], response, [message("user", f"q {number}")], previous)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> SQLiteResponseStore:
    opened = SQLiteResponseStore(tmp_path / "responses.sqlite3", ttl_s=100, clock=clock)
    opened.open()
    yield opened
    opened.close()


def run(coroutine):
    return asyncio.run(coroutine)


def rows(path: Path) -> dict[str, tuple]:
    with sqlite3.connect(path) as db:
        found = db.execute("SELECT id, previous_id, input_items FROM responses").fetchall()
    return {row_id: (previous, json.loads(items)) for row_id, previous, items in found}


async def save_chain(store: SQLiteResponseStore, length: int) -> None:
    for number in range(length):
        await store.save(OWNER, turn(number, f"resp_{number - 1}" if number else None))


def conversation_until(number: int) -> list[dict]:
    items = []
    for earlier in range(number):
        items += [message("user", f"q {earlier}"), message("assistant", f"answer {earlier}")]
    return [*items, message("user", f"q {number}")]


def test_a_chain_stores_each_item_once_and_loads_whole(store):
    run(save_chain(store, 12))
    stored = rows(store.path)
    for number in range(12):
        previous, items = stored[f"resp_{number}"]
        assert previous == (f"resp_{number - 1}" if number else None)
        assert items == [message("user", f"q {number}")]
    loaded = run(store.load(OWNER, "resp_11"))
    assert loaded.input_items == conversation_until(11)
    assert loaded.response["output"] == [message("assistant", "answer 11")]
    assert run(store.load(owner_of("key-b"), "resp_11")) is None


def test_deleting_a_turn_keeps_the_conversations_that_continue_it(store):
    run(save_chain(store, 4))
    assert run(store.delete(OWNER, "resp_1"))
    assert run(store.load(OWNER, "resp_1")) is None
    assert run(store.load(OWNER, "resp_3")).input_items == conversation_until(3)
    assert run(store.load(OWNER, "resp_2")).input_items == conversation_until(2)
    assert rows(store.path)["resp_2"][0] == "resp_0"  # re-linked past the deleted turn
    assert not run(store.delete(owner_of("key-b"), "resp_3"))


def test_a_follow_up_whose_previous_turn_went_while_it_ran_keeps_its_history(store):
    """Read turn 0, generate (turn 0 is deleted meanwhile), save turn 1: the link would
    lead nowhere, so turn 1 keeps the history it was given."""
    run(store.save(OWNER, turn(0, None)))
    history = run(store.load(OWNER, "resp_0")).conversation()
    assert run(store.delete(OWNER, "resp_0"))
    follow = turn(1, "resp_0")
    run(
        store.save(
            OWNER, NewResponse(follow.id, follow.response, follow.new_items, "resp_0", history)
        )
    )
    assert run(store.load(OWNER, "resp_1")).input_items == conversation_until(1)
    assert rows(store.path)["resp_1"][0] is None


def test_a_response_past_its_ttl_is_gone(store, clock):
    run(store.save(OWNER, turn(0, None)))
    clock.now = T0 + 100
    assert run(store.load(OWNER, "resp_0")) is not None
    clock.now = T0 + 101
    assert run(store.load(OWNER, "resp_0")) is None
    assert not run(store.delete(OWNER, "resp_0"))
    run(store.save(OWNER, turn(1, None, created_at=T0 + 101)))  # a write purges
    assert set(rows(store.path)) == {"resp_1"}


def test_an_expired_turn_leaves_its_live_followers_whole(store, clock):
    run(store.save(OWNER, turn(0, None)))
    run(store.save(OWNER, turn(1, "resp_0", created_at=T0 + 50)))
    clock.now = T0 + 120
    run(store.save(OWNER, turn(2, None, created_at=T0 + 120)))
    assert set(rows(store.path)) == {"resp_1", "resp_2"}
    assert run(store.load(OWNER, "resp_1")).input_items == conversation_until(1)


def test_over_the_byte_cap_the_oldest_go_first(tmp_path, clock):
    path = tmp_path / "capped.sqlite3"
    one_row = len(json.dumps(turn(0, None).response)) + len(json.dumps(turn(0, None).new_items))
    store = SQLiteResponseStore(path, max_bytes=3 * one_row + 2, clock=clock)
    store.open()
    for number in range(10):
        run(store.save(OWNER, turn(number, None, created_at=T0 + number)))
    store.close()
    assert set(rows(path)) == {"resp_7", "resp_8", "resp_9"}
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT sum(size) FROM responses").fetchone()[0] <= 3 * one_row + 2
    reopened = SQLiteResponseStore(path, max_bytes=one_row + 2, clock=clock)
    reopened.open()  # a smaller cap at start trims at once
    reopened.close()
    assert set(rows(path)) == {"resp_9"}


def test_a_response_larger_than_the_cap_is_refused_not_half_kept(tmp_path):
    store = SQLiteResponseStore(tmp_path / "tiny.sqlite3", max_bytes=10)
    store.open()
    with pytest.raises(StoreUnavailable):
        run(store.save(OWNER, turn(0, None)))
    store.close()


def test_files_are_private_and_new_folders_too(tmp_path):
    path = tmp_path / "new" / "folder" / "responses.sqlite3"
    store = SQLiteResponseStore(path)
    store.open()
    run(store.save(OWNER, turn(0, None)))
    files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
    modes = {file.name: stat.S_IMODE(file.stat().st_mode) for file in files}
    store.close()
    assert modes == {file.name: 0o600 for file in files}
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700


def test_an_old_world_readable_file_is_tightened(tmp_path):
    path = tmp_path / "old.sqlite3"
    sqlite3.connect(path).close()
    path.chmod(0o644)
    open_store(str(path)).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_store_that_cannot_be_written_fails_at_start(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(ValueError, match="--response-store .* cannot be written"):
        open_store(str(blocker / "responses.sqlite3"))


def test_rows_from_before_chaining_still_load(tmp_path):
    """The earlier schema kept the whole history in each row, with no link."""
    path = tmp_path / "old.sqlite3"
    old = turn(0, None)
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE responses (id TEXT PRIMARY KEY, owner TEXT NOT NULL, "
            "created_at INTEGER NOT NULL, response TEXT NOT NULL, input_items TEXT NOT NULL)"
        )
        db.execute(
            "INSERT INTO responses VALUES (?, ?, ?, ?, ?)",
            (old.id, OWNER, T0, json.dumps(old.response), json.dumps(old.new_items)),
        )
    store = SQLiteResponseStore(path, clock=Clock())
    store.open()
    run(store.save(OWNER, turn(1, "resp_0")))
    assert run(store.load(OWNER, "resp_1")).input_items == conversation_until(1)
    store.close()


def test_a_locked_database_is_given_up_on_not_waited_for(store):
    """Another connection holds the write lock: the save fails (StoreUnavailable), and
    reads still answer (WAL)."""
    run(store.save(OWNER, turn(0, None)))
    holder = sqlite3.connect(store.path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreUnavailable):
            run(store.save(OWNER, turn(1, "resp_0")))
        assert run(store.load(OWNER, "resp_0")) is not None
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    run(store.save(OWNER, turn(2, "resp_0")))
    assert set(rows(store.path)) == {"resp_0", "resp_2"}


def test_the_store_does_not_use_the_default_executor(store):
    """Tokenization shares the loop's default executor: a store call must not wait for
    a free thread there, nor hold one."""
    release = threading.Event()

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        busy = ThreadPoolExecutor(max_workers=1)
        loop.set_default_executor(busy)
        blocked = loop.run_in_executor(None, release.wait)
        try:
            await asyncio.wait_for(store.save(OWNER, turn(0, None)), timeout=60)
            assert await store.load(OWNER, "resp_0") is not None
        finally:
            release.set()
            await blocked

    run(scenario())


def test_the_ttl_and_cap_flags_reach_the_config_and_refuse_nonsense(capsys):
    from openai_frontend.cli import build_parser

    args = build_parser().parse_args(
        ["serve", "--responses-ttl", "3600", "--responses-max-bytes", "1000000"]
    )
    assert (args.responses_ttl, args.responses_max_bytes) == (3600.0, 1_000_000)
    for flag, value in [
        ("--responses-ttl", "0"),
        ("--responses-ttl", "-5"),
        ("--responses-ttl", "inf"),
        ("--responses-ttl", "a day"),
        ("--responses-max-bytes", "0"),
    ]:
        with pytest.raises(SystemExit):
            build_parser().parse_args(["serve", flag, value])
        assert flag in capsys.readouterr().err


def test_shared_stores_keep_the_byte_cap_over_all_writers(tmp_path, clock):
    """Two API processes (--api-server-count) write one file: each write counts the
    other's rows, so the cap holds over both; alone, each would count its own only."""
    path = tmp_path / "shared.sqlite3"
    one_row = len(json.dumps(turn(0, None).response)) + len(json.dumps(turn(0, None).new_items))
    writers = [
        SQLiteResponseStore(path, max_bytes=3 * one_row + 2, clock=clock, shared=True)
        for _ in range(2)
    ]
    for writer in writers:
        writer.open()
    for number in range(8):
        run(writers[number % 2].save(OWNER, turn(number, None, created_at=T0 + number)))
    for writer in writers:
        writer.close()
    assert set(rows(path)) == {"resp_5", "resp_6", "resp_7"}
