"""Fixtures for the store tests: one suite over SQLite (a file in tmp_path) and
PostgreSQL (a database created for the session on 127.0.0.1:5432, dropped after)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from pg import PgDatabases

from worker.store import open_store
from worker.store.schema import metadata
from worker.store.sql import SqlStore


@pytest.fixture(scope="session")
def pg_url(pg_databases: PgDatabases) -> str:
    """A migrated database shared by the session (tests truncate it first)."""
    url = pg_databases.create()
    with open_store(url) as store:
        store.migrate()
    return url


def _truncate(store: SqlStore) -> None:
    names = ", ".join(t.name for t in metadata.sorted_tables)
    with store.engine.begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.external_service)]
)
def store_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """The URL of an empty, migrated database of each kind."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("db") / "sub" / "feedwatch.db"
        url = f"sqlite:///{path}"
        with open_store(url) as store:
            store.migrate()
        return url
    url = str(request.getfixturevalue("pg_url"))
    with open_store(url) as store:
        assert isinstance(store, SqlStore)
        _truncate(store)
    return url


@pytest.fixture
def open_stores(store_url: str) -> Iterator[Callable[[], SqlStore]]:
    """Open more stores on the same database (other workers); closed and checked
    for leaked connections at the end."""
    opened: list[SqlStore] = []

    def opener() -> SqlStore:
        store = open_store(store_url)
        assert isinstance(store, SqlStore)
        opened.append(store)
        return store

    yield opener
    for store in opened:
        assert store.engine.pool.checkedout() == 0, "a pooled connection leaked"  # type: ignore[attr-defined]
        store.close()


@pytest.fixture
def store(open_stores: Callable[[], SqlStore]) -> SqlStore:
    """The store under test, on a migrated and empty database."""
    return open_stores()
