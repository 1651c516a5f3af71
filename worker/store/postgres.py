"""Store stage: ``PostgresStore``, the Store several workers share.

Input: a ``postgresql+psycopg://`` URL; output: a Store whose claims take rows with
``SELECT ... FOR UPDATE SKIP LOCKED``, so concurrent workers never lease one row twice.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import (
    Connection,
    Select,
    Table,
    create_engine,
    func,
    literal_column,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import Insert, insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.expression import ColumnClause

from worker.store.schema import SEARCH_CONFIG, SEARCH_VECTOR, items
from worker.store.sql import SearchQuery, SqlStore

__all__ = ["PostgresStore"]

T = TypeVar("T")

# SQLSTATEs worth running the transaction again for: serialization_failure,
# deadlock_detected, and the connection-exception class (08xxx).
_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01"})

# Any constant works; it only has to be the same for every feedwatch process.
_MIGRATE_LOCK_KEY = 0x66656564_77617463


class PostgresStore(SqlStore):
    """The Store on PostgreSQL (psycopg 3), for several workers sharing one database."""

    def __init__(
        self,
        url: str,
        *,
        retries: int = 5,
        backoff: float = 0.05,
        pool_size: int = 5,
        connect_timeout: float = 10.0,
    ) -> None:
        engine = create_engine(
            url,
            pool_pre_ping=True,
            pool_size=pool_size,
            connect_args={"connect_timeout": max(1, int(connect_timeout))},
        )
        super().__init__(url, engine, retries=retries, backoff=backoff)

    def _insert(self, table: Table) -> Insert:
        return insert(table)

    def _lock_for_claim(self, stmt: Select[T]) -> Select[T]:
        return stmt.with_for_update(skip_locked=True)

    def _search_statement(
        self, query: SearchQuery, text: str, limit: int
    ) -> Select[Any]:
        # The same expression as the GIN index of migration 0002, so the index is used.
        vector: ColumnClause[Any] = literal_column(SEARCH_VECTOR)
        tsquery = func.websearch_to_tsquery(
            literal_column(f"'{SEARCH_CONFIG}'::regconfig"), text
        )
        return (
            select(items)
            .where(vector.op("@@")(tsquery))
            .order_by(
                func.ts_rank(vector, tsquery).desc(),
                items.c.first_seen.desc(),
                items.c.id.desc(),
            )
            .limit(limit)
        )

    def _is_transient(self, error: DBAPIError) -> bool:
        if super()._is_transient(error):
            return True
        sqlstate = getattr(error.orig, "sqlstate", None)
        return isinstance(sqlstate, str) and (
            sqlstate in _TRANSIENT_SQLSTATES or sqlstate.startswith("08")
        )

    def _before_migrate(self, conn: Connection) -> None:
        # Two workers starting together must not both create the tables.
        conn.execute(
            text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATE_LOCK_KEY}
        )
