"""Fixtures for the store tests: one suite over SQLite (a file in tmp_path; the
sqlite3 store ``open_store`` picks and the SQLAlchemy ``SQLiteStore`` behind it) and
PostgreSQL (a database created for the session on 127.0.0.1:5432, dropped after)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from pg import PgDatabases

from worker.store import FastSQLiteStore, open_store
from worker.store.schema import metadata
from worker.store.sql import SqlStore
from worker.store.sqlite import SQLiteStore


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
    params=[
        "sqlite",
        "sqlite-sqlalchemy",
        pytest.param("postgres", marks=pytest.mark.external_service),
    ]
)
def backend(request: pytest.FixtureRequest) -> str:
    """Which store: ``sqlite`` (FastSQLiteStore), ``sqlite-sqlalchemy``
    (SQLiteStore) or ``postgres`` (PostgresStore)."""
    return str(request.param)


@pytest.fixture
def store_url(
    backend: str,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> str:
    """The URL of an empty, migrated database of each kind."""
    if backend.startswith("sqlite"):
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
def open_stores(store_url: str, backend: str) -> Iterator[Callable[[], SqlStore]]:
    """Open more stores on the same database (other workers); closed and checked
    for leaked connections at the end."""
    opened: list[SqlStore] = []

    def opener() -> SqlStore:
        if backend == "sqlite-sqlalchemy":
            store: SqlStore = SQLiteStore(store_url)
        else:
            store = open_store(store_url)  # type: ignore[assignment]
            if backend == "sqlite":
                assert type(store) is FastSQLiteStore
        assert isinstance(store, SqlStore)
        opened.append(store)
        return store

    yield opener
    for store in opened:
        if isinstance(store, FastSQLiteStore):
            assert store.connections_in_use == 0, "a connection leaked"
        assert store.engine.pool.checkedout() == 0, "a pooled connection leaked"  # type: ignore[attr-defined]
        store.close()


@pytest.fixture
def store(open_stores: Callable[[], SqlStore]) -> SqlStore:
    """The store under test, on a migrated and empty database."""
    return open_stores()
