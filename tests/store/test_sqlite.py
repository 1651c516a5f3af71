"""What only the SQLite store does: pragmas, BEGIN IMMEDIATE, retries when locked."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import event

from worker.errors import StoreError
from worker.store.sqlite import SQLiteStore

from .helpers import T0, feed, item, poll, story


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "feedwatch.db"


@pytest.fixture
def sqlite_store(db_path: Path) -> Iterator[SQLiteStore]:
    store = SQLiteStore(
        f"sqlite:///{db_path}", busy_timeout=0.01, retries=2, backoff=0.001
    )
    store.migrate()
    yield store
    assert store.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    store.close()


def test_connection_pragmas(sqlite_store: SQLiteStore) -> None:
    with sqlite_store.engine.connect() as conn:
        pragmas = {
            name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "foreign_keys", "synchronous", "busy_timeout")
        }
    assert pragmas == {
        "journal_mode": "wal",
        "foreign_keys": 1,
        "synchronous": 1,
        "busy_timeout": 10,
    }


def test_writes_begin_immediate_and_reads_deferred(sqlite_store: SQLiteStore) -> None:
    seen: list[str] = []

    @event.listens_for(sqlite_store.engine, "before_cursor_execute")
    def record(conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.startswith("BEGIN"):
            seen.append(statement)

    sqlite_store.add_feed(feed(1))
    assert seen == ["BEGIN IMMEDIATE"]
    sqlite_store.list_feeds()
    assert seen == ["BEGIN IMMEDIATE", "BEGIN DEFERRED"]


@pytest.fixture
def locker(db_path: Path, sqlite_store: SQLiteStore) -> Iterator[sqlite3.Connection]:
    """A second connection holding the database's write lock."""
    conn = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
    conn.execute("BEGIN IMMEDIATE")
    yield conn
    if conn.in_transaction:
        conn.rollback()
    conn.close()


def test_locked_database_is_retried_then_reported(
    sqlite_store: SQLiteStore,
    locker: sqlite3.Connection,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with (
        caplog.at_level(logging.WARNING, logger="worker.store.sql"),
        pytest.raises(StoreError) as info,
    ):
        sqlite_store.add_feed(feed(1))
    assert "add_feed failed on sqlite:///" in str(info.value)
    assert "database is locked" in str(info.value)
    retries = [r for r in caplog.records if "retry" in r.getMessage()]
    assert len(retries) == 2


def test_locked_database_succeeds_once_released(
    sqlite_store: SQLiteStore, locker: sqlite3.Connection
) -> None:
    class ReleaseOnRetry(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "retry" in record.getMessage() and locker.in_transaction:
                locker.rollback()

    handler = ReleaseOnRetry(logging.WARNING)
    logger = logging.getLogger("worker.store.sql")
    logger.addHandler(handler)
    try:
        stored = sqlite_store.add_feed(feed(1))
    finally:
        logger.removeHandler(handler)
    assert stored.id is not None
    assert not locker.in_transaction


def test_foreign_keys_cascade(sqlite_store: SQLiteStore) -> None:
    fd = sqlite_store.add_feed(feed(1))
    sqlite_store.record_poll(poll(fd, [item(1)], st=story(), alert_id="a1"))
    with sqlite_store.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM alerts")
        assert conn.exec_driver_sql("SELECT count(*) FROM deliveries").scalar() == 0


def test_in_memory_store_is_shared_across_threads() -> None:
    with SQLiteStore("sqlite://") as store:
        store.migrate()
        fd = store.add_feed(feed(1))
        errors: list[BaseException] = []

        def claim() -> None:
            try:
                store.claim_due_feeds("w", T0, 10, 60)
                store.list_feeds()
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=claim) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert errors == []
        assert [f.id for f in store.list_feeds()] == [fd.id]
