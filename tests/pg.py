"""A throwaway PostgreSQL for the tests: fresh databases on the local server, dropped at
the end. Without a server the tests skip, or fail when ``CI`` is set (dramatiq's habit).
"""

from __future__ import annotations

import os
import uuid
from typing import NoReturn

import psycopg
import pytest
from psycopg import sql

PG_ADMIN_URL = os.environ.get(
    "FEEDWATCH_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)


def unavailable(reason: str) -> NoReturn:
    """Skip locally, fail under CI: a missing PostgreSQL must not pass CI silently."""
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL is required under CI: {reason}")
    pytest.skip(f"PostgreSQL unavailable: {reason}")


class PgDatabases:
    """Creates uniquely named databases on the test server; drops them all at the end."""

    def __init__(self, admin: psycopg.Connection[tuple[object, ...]]) -> None:
        self.admin = admin
        self.names: list[str] = []

    def create(self) -> str:
        """A new empty database; returns its ``postgresql://`` URL."""
        name = f"feedwatch_test_{uuid.uuid4().hex[:12]}"
        self.admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self.names.append(name)
        info = self.admin.info
        return f"postgresql://{info.user}@{info.host}:{info.port}/{name}"

    def drop_all(self) -> None:
        for name in self.names:
            self.admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)
                )
            )


def connect_admin() -> psycopg.Connection[tuple[object, ...]]:
    """An autocommit connection to the server's admin database (or skip/fail)."""
    try:
        return psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.Error as e:
        unavailable(str(e).strip())
