"""Store stage: Alembic environment for feedwatch's migrations.

Input: the connection ``SqlStore.migrate`` puts in ``config.attributes`` (or, from the
alembic command line, ``sqlalchemy.url``); output: the schema upgraded in place.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from worker.store.schema import include_name, metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things; batch mode copies tables instead.
        render_as_batch=connection.dialect.name == "sqlite",
        # The full-text index is DDL the metadata does not describe.
        include_name=include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations() -> None:
    """Upgrade through the given connection, or one opened from the config's URL."""
    connection = context.config.attributes.get("connection")
    if isinstance(connection, Connection):
        _run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("feedwatch migrations need a connection or sqlalchemy.url")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


run_migrations()
