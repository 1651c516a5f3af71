"""Store stage: pick the Store implementation for a database URL.

Input: a SQLAlchemy URL (``sqlite:///path`` or ``postgresql://...``); output: an
unmigrated :class:`Store` (call ``store.migrate()`` before use).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from worker.errors import StoreError
from worker.store.base import Store
from worker.store.fastsqlite import FastSQLiteStore, sqlite_file_url

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

    from worker.store.sql import SqlStore

__all__ = ["FastSQLiteStore", "SqlStore", "Store", "open_store"]

_POSTGRES_DRIVERS = frozenset({"postgresql", "postgresql+psycopg", "postgres"})


def __getattr__(name: str) -> Any:
    # ``SqlStore`` imports SQLAlchemy (~0.35 s): only for callers that name it.
    if name == "SqlStore":
        from worker.store.sql import SqlStore

        return SqlStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _parse(url: str) -> URL:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url)
    except ArgumentError as e:
        raise StoreError(f"database URL {url!r} is not a SQLAlchemy URL: {e}") from e


def open_store(url: str) -> SqlStore | FastSQLiteStore:
    """Open the store for ``url``: SQLite (file's directory created) or PostgreSQL.

    A ``sqlite:///path`` file gets :class:`FastSQLiteStore`, which imports
    SQLAlchemy only when a method off the polling path first needs it; in-memory
    and other SQLite URLs get the SQLAlchemy ``SQLiteStore``. Both also answer
    ``feed_by_id``, ``update_feed_state``, ``item_count_by_feed``,
    ``delete_items_before`` and ``engine``.

    ``postgresql://`` is rewritten to ``postgresql+psycopg://``; psycopg is imported
    only here, so the base install works without the ``postgres`` extra.
    """
    if sqlite_file_url(url) is not None:
        try:
            return FastSQLiteStore(url)
        except OSError as e:
            raise StoreError(
                f"cannot create the database directory for {url}: {e}"
            ) from e
    sa_url = _parse(url)
    scheme = sa_url.drivername
    if scheme in ("sqlite", "sqlite+pysqlite"):
        from worker.store.sqlite import SQLiteStore

        try:
            return SQLiteStore(url)
        except OSError as e:
            raise StoreError(
                f"cannot create the database directory for {url}: {e}"
            ) from e
    if scheme in _POSTGRES_DRIVERS:
        try:
            import psycopg  # noqa: F401
        except ImportError as e:
            raise StoreError(
                f"{sa_url.render_as_string(hide_password=True)}: PostgreSQL needs "
                "psycopg; install feedwatch[postgres]"
            ) from e
        from worker.store.postgres import PostgresStore

        rewritten = sa_url.set(drivername="postgresql+psycopg")
        return PostgresStore(rewritten.render_as_string(hide_password=False))
    raise StoreError(
        f"unsupported database URL {sa_url.render_as_string(hide_password=True)!r}: "
        "expected sqlite:///path or postgresql://user@host/db"
    )
