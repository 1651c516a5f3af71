"""Store stage: pick the Store implementation for a database URL.

Input: a SQLAlchemy URL (``sqlite:///path`` or ``postgresql://...``); output: an
unmigrated :class:`Store` (call ``store.migrate()`` before use).
"""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from worker.errors import StoreError
from worker.store.base import Store
from worker.store.sql import SqlStore

__all__ = ["SqlStore", "Store", "open_store"]

_POSTGRES_DRIVERS = frozenset({"postgresql", "postgresql+psycopg", "postgres"})


def _parse(url: str) -> URL:
    try:
        return make_url(url)
    except ArgumentError as e:
        raise StoreError(f"database URL {url!r} is not a SQLAlchemy URL: {e}") from e


def open_store(url: str) -> SqlStore:
    """Open the store for ``url``: SQLite (file's directory created) or PostgreSQL.

    The result satisfies :class:`Store`; its type is the concrete ``SqlStore`` so
    callers also reach ``feed_by_id``, ``update_feed_state``, ``item_count_by_feed``
    and ``delete_items_before``.

    ``postgresql://`` is rewritten to ``postgresql+psycopg://``; psycopg is imported
    only here, so the base install works without the ``postgres`` extra.
    """
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
