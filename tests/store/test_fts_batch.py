"""SQLite's full-text index written once per transaction (migration 0007): every
item a poll inserts is indexed exactly once, by both SQLite stores, on a fresh, an
upgraded and a downgraded database; PostgreSQL is left as it was."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from pg import PgDatabases

from worker.errors import StoreError
from worker.models import Feed, Item
from worker.store import open_store
from worker.store.base import PollIntent
from worker.store.fastsqlite import FastSQLiteStore
from worker.store.schema import include_name, metadata
from worker.store.sql import MIGRATIONS_DIR, SqlStore
from worker.store.sqlite import SQLiteStore

from .helpers import decision, feed, item

BEFORE = "0006_stale_work"
WORDS = ("aubergine", "bassoon", "cobalt", "dirigible", "eucalyptus", "falconry")


def _item(f: int, j: int) -> Item:
    """Item ``j`` of feed ``f``: the feed's word in the title, its own in the summary."""
    return item(
        100 * f + j,
        title=f"{WORDS[f]} report number {j}",
        summary=f"Summary code{f}x{j} of the day.",
    )


def _open(kind: str, path: Path) -> SqlStore:
    url = f"sqlite:///{path}"
    return FastSQLiteStore(url) if kind == "fast" else SQLiteStore(url)  # type: ignore[return-value]


def _close(store: SqlStore) -> None:
    if isinstance(store, FastSQLiteStore):
        assert store.connections_in_use == 0, "a connection leaked"
    store.close()


@pytest.fixture(params=["fast", "sqlalchemy"])
def kind(request: pytest.FixtureRequest) -> str:
    """Which SQLite store: FastSQLiteStore (sqlite3) or SQLiteStore (SQLAlchemy)."""
    return str(request.param)


@pytest.fixture
def store(kind: str, tmp_path: Path) -> Iterator[SqlStore]:
    """The store under test on a migrated file."""
    opened = _open(kind, tmp_path / "feedwatch.db")
    opened.migrate()
    yield opened
    _close(opened)


def _path(store: SqlStore) -> str:
    return store.url.removeprefix("sqlite:///")


def _alembic(store: SqlStore, action: Callable[[Config, str], None], rev: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with store.engine.begin() as conn:
        config.attributes["connection"] = conn
        action(config, rev)


def _index_state(conn: sqlite3.Connection) -> tuple[Any, ...]:
    """What the index holds, whatever its segment layout: every term instance, the
    totals bm25 ranks with (document count, tokens per column), each document's size."""
    conn.execute(
        "CREATE VIRTUAL TABLE IF NOT EXISTS temp.vocab "
        "USING fts5vocab(main, items_fts, instance)"
    )
    return (
        list(conn.execute("SELECT * FROM temp.vocab ORDER BY 1, 2, 3, 4")),
        conn.execute("SELECT block FROM items_fts_data WHERE id = 1").fetchone(),
        list(conn.execute("SELECT * FROM items_fts_docsize ORDER BY id")),
    )


def _check_index(path: str) -> int:
    """The index passes FTS5's integrity-check and holds exactly what a rebuild
    from ``items`` holds (SQLite 3.40's check does not compare an external-content
    index with its table: a missing or doubled row passes it); the number of
    indexed items."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("INSERT INTO items_fts(items_fts) VALUES ('integrity-check')")
        rebuilt = sqlite3.connect(":memory:", isolation_level=None)
        try:
            conn.backup(rebuilt)
            rebuilt.execute("INSERT INTO items_fts(items_fts) VALUES ('rebuild')")
            assert _index_state(conn) == _index_state(rebuilt), "index != items"
        finally:
            rebuilt.close()
        [(docs,)] = conn.execute("SELECT count(*) FROM items_fts_docsize")
        [(stored,)] = conn.execute("SELECT count(*) FROM items")
        assert docs == stored
        return int(docs)
    finally:
        conn.close()


def _segments(path: str) -> int:
    conn = sqlite3.connect(path)
    try:
        [(n,)] = conn.execute("SELECT count(DISTINCT segid) FROM items_fts_idx")
        return int(n)
    finally:
        conn.close()


def _fts_schema(path: str) -> list[tuple[str, ...]]:
    """The search index's DDL: the FTS5 table, its shadow tables, the triggers."""
    conn = sqlite3.connect(path)
    try:
        return list(
            conn.execute(
                "SELECT type, name, tbl_name, sql FROM sqlite_master "
                "WHERE type = 'trigger' OR name LIKE 'items_fts%' ORDER BY type, name"
            )
        )
    finally:
        conn.close()


def _found(store: SqlStore, q: str) -> list[str]:
    return [i.id for i in store.search_items(q, 50)]


def _feeds(store: SqlStore, n: int) -> list[Feed]:
    return [store.add_feed(feed(f)) for f in range(n)]


def _poll(fd: Feed, f: int, js: range | list[int]) -> PollIntent:
    return PollIntent(feed=fd, items=[_item(f, j) for j in js])


# -- polls -----------------------------------------------------------------------------


def test_one_record_polls_indexes_its_items_once_in_one_segment(
    store: SqlStore,
) -> None:
    fds = _feeds(store, 4)
    records = store.record_polls(
        [
            _poll(fds[0], 0, range(5)),
            _poll(fds[1], 1, range(3)),
            PollIntent(feed=fds[2]),  # state only
            _poll(fds[3], 3, range(7)),
        ]
    )
    assert [r.new_items for r in records] == [5, 3, 0, 7]
    path = _path(store)
    assert _check_index(path) == 15
    assert _segments(path) == 1, "one index segment per transaction, not per feed"
    assert sorted(_found(store, "bassoon")) == ["guid:100", "guid:101", "guid:102"]
    assert _found(store, "code3x6") == ["guid:306"]
    assert _found(store, "cobalt") == []
    # Porter stemming and the summary column, as before.
    assert len(_found(store, "reports")) == 15

    [record] = store.record_polls([_poll(fds[2], 2, range(2))])
    assert record.new_items == 2
    assert _check_index(path) == 17
    assert _segments(path) == 2
    assert sorted(_found(store, "cobalt")) == ["guid:200", "guid:201"]


def test_record_poll_indexes_what_it_inserts(store: SqlStore) -> None:
    fds = _feeds(store, 2)
    assert store.record_poll(_poll(fds[0], 0, range(3))).new_items == 3
    assert store.record_poll(_poll(fds[1], 1, range(2))).new_items == 2
    assert store.record_poll(_poll(fds[1], 1, range(2))).new_items == 0
    assert store.record_poll(PollIntent(feed=fds[0])).new_items == 0
    path = _path(store)
    assert _check_index(path) == 5
    assert _segments(path) == 2
    assert sorted(_found(store, "aubergine")) == ["guid:0", "guid:1", "guid:2"]
    assert _found(store, "code1x1") == ["guid:101"]


def test_items_already_stored_are_not_indexed_again(store: SqlStore) -> None:
    fds = _feeds(store, 3)
    store.record_polls([_poll(fds[f], f, range(4)) for f in range(3)])
    path = _path(store)
    assert _check_index(path) == 12

    # Known items around new ones: all known (feed 0), new at the end (feed 1),
    # new between known ones (feed 2); then the same again, all conflicts.
    again = [
        _poll(fds[0], 0, range(4)),
        _poll(fds[1], 1, [0, 1, 2, 3, 4, 5]),
        _poll(fds[2], 2, [0, 9, 1, 8, 3]),
    ]
    assert [r.new_items for r in store.record_polls(again)] == [0, 2, 2]
    assert _check_index(path) == 16
    assert [r.new_items for r in store.record_polls(again)] == [0, 0, 0]
    assert store.record_poll(again[2]).new_items == 0
    assert _check_index(path) == 16
    assert store.count_items() == 16

    # Each item found once, old and new.
    assert sorted(_found(store, "bassoon")) == [f"guid:10{j}" for j in range(6)]
    assert sorted(_found(store, "cobalt")) == [
        "guid:200",
        "guid:201",
        "guid:202",
        "guid:203",
        "guid:208",
        "guid:209",
    ]
    assert _found(store, "code0x2") == ["guid:2"]


def test_a_failed_poll_leaves_nothing_in_the_index(store: SqlStore) -> None:
    fds = _feeds(store, 2)
    store.record_polls([_poll(fds[0], 0, range(2))])
    broken = PollIntent(
        feed=fds[1], items=[_item(1, 0)], decisions=[decision("guid:not-stored")]
    )
    with pytest.raises(StoreError, match="neither stored nor in the poll"):
        store.record_polls([_poll(fds[0], 0, range(2, 4)), broken])
    assert store.count_items() == 2
    assert _check_index(_path(store)) == 2
    assert _found(store, "bassoon") == []
    assert _found(store, "code0x3") == []


# -- migrations -----------------------------------------------------------------------


def test_a_0006_database_upgraded_keeps_its_index_and_indexes_new_items(
    kind: str, tmp_path: Path
) -> None:
    fresh = _open(kind, tmp_path / "fresh.db")
    fresh.migrate()
    old = _open(kind, tmp_path / "old.db")
    try:
        _alembic(old, command.upgrade, BEFORE)
        # A database of the previous release: items indexed by the insert trigger
        # (the store leaves them to it).
        fds = _feeds(old, 3)
        old.record_polls([_poll(fds[f], f, range(4)) for f in range(2)])
        old.record_poll(_poll(fds[2], 2, range(3)))
        assert "items_fts_ai" in {r[1] for r in _fts_schema(_path(old))}
        assert _check_index(_path(old)) == 11
        assert not old.schema_is_current()

        old.migrate()
        assert old.schema_is_current()
        assert _fts_schema(_path(old)) == _fts_schema(_path(fresh))
        assert "items_fts_ai" not in {r[1] for r in _fts_schema(_path(old))}
        with old.engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"include_name": include_name}
            )
            assert compare_metadata(context, metadata) == []
        assert _check_index(_path(old)) == 11
        assert sorted(_found(old, "cobalt")) == ["guid:200", "guid:201", "guid:202"]

        old.record_polls([_poll(fds[f], f, range(6)) for f in range(3)])
        assert _check_index(_path(old)) == 18
        assert sorted(_found(old, "cobalt")) == [f"guid:20{j}" for j in range(6)]
        assert _found(old, "code0x5") == ["guid:5"]
    finally:
        _close(old)
        _close(fresh)


def test_downgrade_to_0006_restores_the_trigger_and_a_whole_index(
    kind: str, tmp_path: Path
) -> None:
    fresh_0006 = SQLiteStore(f"sqlite:///{tmp_path / 'fresh-0006.db'}")
    _alembic(fresh_0006, command.upgrade, BEFORE)
    fresh_0006.close()
    store = _open(kind, tmp_path / "feedwatch.db")
    try:
        store.migrate()
        fds = _feeds(store, 2)
        store.record_polls([_poll(fds[f], f, range(3)) for f in range(2)])
        # A row some other writer stored without indexing it: the rebuild adds it.
        conn = sqlite3.connect(_path(store), isolation_level=None)
        try:
            conn.execute(
                "INSERT INTO items (feed_id, item_id, title, summary, first_seen) "
                "VALUES (?, 'guid:stray', 'dirigible sighting', 'stray', "
                "'2024-05-01 12:00:00.000000')",
                (fds[0].id,),
            )
        finally:
            conn.close()
        assert _found(store, "dirigible") == []

        _alembic(store, command.downgrade, BEFORE)
        assert _fts_schema(_path(store)) == _fts_schema(str(tmp_path / "fresh-0006.db"))
        assert _check_index(_path(store)) == 7
        assert _found(store, "dirigible") == ["guid:stray"]
        assert sorted(_found(store, "bassoon")) == [f"guid:10{j}" for j in range(3)]

        # At 0006 the trigger indexes new items, and the store adds nothing.
        store.record_polls([_poll(fds[f], f, range(5)) for f in range(2)])
        store.record_poll(_poll(fds[1], 1, range(6)))
        assert _check_index(_path(store)) == 12
        assert _found(store, "code1x5") == ["guid:105"]

        store.migrate()
        store.record_polls([_poll(fds[0], 0, range(7))])
        assert _check_index(_path(store)) == 14
        assert _found(store, "code0x6") == ["guid:6"]
    finally:
        _close(store)


@pytest.mark.external_service
def test_0007_leaves_postgres_search_as_it_was(pg_databases: PgDatabases) -> None:
    with open_store(pg_databases.create()) as store:
        assert isinstance(store, SqlStore)
        store.migrate()
        fds = _feeds(store, 2)
        store.record_polls([_poll(fds[f], f, range(3)) for f in range(2)])
        _alembic(store, command.downgrade, BEFORE)
        assert sorted(_found(store, "bassoon")) == [f"guid:10{j}" for j in range(3)]
        store.migrate()
        assert store.schema_is_current()
        store.record_polls([_poll(fds[0], 0, range(4))])
        assert _found(store, "code0x3") == ["guid:3"]
        assert sorted(_found(store, "bassoon")) == [f"guid:10{j}" for j in range(3)]
