"""What only the PostgreSQL store does: transient-error retries, concurrent migrations."""

from __future__ import annotations

import logging
import threading

import pytest
from pg import PgDatabases
from sqlalchemy import Connection, text

from worker.errors import StoreError
from worker.store import open_store
from worker.store.postgres import PostgresStore

pytestmark = pytest.mark.external_service

RAISE_SERIALIZATION_FAILURE = text(
    "DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$"
)
RAISE_UNIQUE_VIOLATION = text(
    "DO $$ BEGIN RAISE EXCEPTION 'dup' USING ERRCODE = '23505'; END $$"
)


def test_serialization_failure_is_retried(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    calls = 0

    def work(conn: Connection) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            conn.execute(RAISE_SERIALIZATION_FAILURE)
        return int(conn.execute(text("SELECT 42")).scalar_one())

    with (
        PostgresStore(
            pg_url.replace("postgresql://", "postgresql+psycopg://")
        ) as store,
        caplog.at_level(logging.WARNING, logger="worker.store.sql"),
    ):
        assert store._run("probe", work) == 42
    assert calls == 2
    assert any("retry 1 of" in r.getMessage() for r in caplog.records)


def test_other_errors_are_not_retried(pg_url: str) -> None:
    calls = 0

    def work(conn: Connection) -> None:
        nonlocal calls
        calls += 1
        conn.execute(RAISE_UNIQUE_VIOLATION)

    store = open_store(pg_url)
    assert isinstance(store, PostgresStore)
    match = r"probe failed on .*UniqueViolation: dup"
    with store, pytest.raises(StoreError, match=match):
        store._run("probe", work)
    assert calls == 1


def test_concurrent_migrations_serialise(pg_databases: PgDatabases) -> None:
    url = pg_databases.create()
    stores = [open_store(url) for _ in range(3)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(stores))

    def migrate(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            stores[index].migrate()
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=migrate, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    try:
        assert errors == []
        assert stores[0].list_feeds() == []
    finally:
        for store in stores:
            store.close()
