"""Store stage: ``SQLiteStore``, the embedded default on one SQLite file.

Input: a ``sqlite:///path`` URL; output: a Store whose writes are serialised with
``BEGIN IMMEDIATE`` (one writer at a time), readers running alongside under WAL.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Integer,
    Select,
    Table,
    column,
    create_engine,
    event,
    func,
    literal_column,
    select,
    table,
)
from sqlalchemy.dialects.sqlite import Insert, insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool
from sqlalchemy.sql.expression import ColumnClause

from worker.store.fts import index_items_after
from worker.store.schema import FTS_TABLE, items
from worker.store.sql import SearchQuery, SqlStore

__all__ = ["SQLiteStore"]

_BEGIN_OPTION = "feedwatch_sqlite_begin"


def _on_connect(
    dbapi_connection: sqlite3.Connection,
    connection_record: ConnectionPoolEntry,
    *,
    busy_timeout_ms: int,
    memory: bool,
) -> None:
    # SQLAlchemy emits BEGIN itself (see _on_begin): sqlite3's legacy transaction
    # control would not begin before SELECTs and breaks BEGIN IMMEDIATE.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms:d}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _on_begin(conn: Connection) -> None:
    mode = conn.get_execution_options().get(_BEGIN_OPTION, "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


class SQLiteStore(SqlStore):
    """The Store on one SQLite file (WAL, busy timeout, foreign keys on).

    Every write transaction starts with ``BEGIN IMMEDIATE``, so a claim's SELECT and
    UPDATE run under the database's single write lock and two workers never lease the
    same row; read transactions start deferred and do not block writers.
    """

    def __init__(
        self,
        url: str,
        *,
        busy_timeout: float = 5.0,
        retries: int = 5,
        backoff: float = 0.05,
    ) -> None:
        sa_url = make_url(url)
        if sa_url.get_backend_name() != "sqlite":
            raise ValueError(f"not a sqlite URL: {url!r}")
        database = sa_url.database or ""
        self._memory = database in ("", ":memory:")
        self._lock = threading.RLock()
        engine_args: dict[str, Any] = {}
        if self._memory:
            # One shared connection, or every checkout would see a new empty database.
            engine_args.update(
                poolclass=StaticPool, connect_args={"check_same_thread": False}
            )
        else:
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            engine_args["connect_args"] = {"timeout": busy_timeout}
        engine = create_engine(sa_url, **engine_args)
        busy_ms = int(busy_timeout * 1000)
        memory = self._memory

        def on_connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
            _on_connect(
                dbapi_connection, record, busy_timeout_ms=busy_ms, memory=memory
            )

        event.listen(engine, "connect", on_connect)
        event.listen(engine, "begin", _on_begin)
        super().__init__(url, engine, retries=retries, backoff=backoff)

    def _insert(self, table: Table) -> Insert:
        return insert(table)

    def _index_items(self, conn: Connection, row_ids: Sequence[int]) -> None:
        # Write transactions begin IMMEDIATE: every row from the first id this one
        # inserted upwards is its own.
        if row_ids:
            index_items_after(conn.exec_driver_sql, min(row_ids) - 1)

    def _search_statement(
        self, query: SearchQuery, text: str, limit: int
    ) -> Select[Any]:
        # FTS5 MATCH on the external-content table; bm25() is lower for better hits.
        fts = table(FTS_TABLE, column("rowid", Integer))
        fts_name: ColumnClause[Any] = literal_column(FTS_TABLE)
        return (
            select(items)
            .join(fts, fts.c.rowid == items.c.id)
            .where(fts_name.op("MATCH")(query.fts5()))
            .order_by(func.bm25(fts_name), items.c.first_seen.desc(), items.c.id.desc())
            .limit(limit)
        )

    def _transaction_options(self, write: bool) -> dict[str, Any]:
        return {_BEGIN_OPTION: "IMMEDIATE" if write else "DEFERRED"}

    def _guard(self) -> contextlib.AbstractContextManager[object]:
        # An in-memory database is one connection: transactions must take turns.
        return self._lock if self._memory else contextlib.nullcontext()

    def _is_transient(self, error: DBAPIError) -> bool:
        if super()._is_transient(error):
            return True
        message = str(error.orig).lower()
        return isinstance(error.orig, sqlite3.OperationalError) and (
            "database is locked" in message or "database is busy" in message
        )
