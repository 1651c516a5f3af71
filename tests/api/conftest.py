"""Fixtures for the API tests: a real store (SQLite in tmp_path, or PostgreSQL on
127.0.0.1:5432), the app served by uvicorn on 127.0.0.1:0 in a thread, and httpx."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from apiserver import serving
from pg import PgDatabases
from starlette.applications import Starlette

from worker.api import create_app
from worker.config import Settings
from worker.core import Feedwatch, make_feedwatch
from worker.store.schema import metadata
from worker.store.sql import SqlStore

from .data import Dataset, populate

TOKEN = "s3cret-token"


def settings_for(url: str, token: str | None = TOKEN) -> Settings:
    """Settings on database ``url``, the API token set (or none: an open API)."""
    api: dict[str, Any] = {"enabled": True, "port": 0}
    if token is not None:
        api["token"] = token
    return Settings(database=url, api=api, channels=[])


@dataclass
class Api:
    """A served app, an httpx client on it (token sent unless ``auth=False``)."""

    url: str
    app: Starlette
    fw: Feedwatch
    data: Dataset | None

    def request(
        self, method: str, path: str, *, auth: bool = True, **kw: Any
    ) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        if auth:
            headers.setdefault("Authorization", f"Bearer {TOKEN}")
        with httpx.Client(base_url=self.url, timeout=10) as client:
            return client.request(method, path, headers=headers, **kw)

    def get(self, path: str, *, auth: bool = True, **kw: Any) -> httpx.Response:
        return self.request("GET", path, auth=auth, **kw)


@contextlib.contextmanager
def running_api(
    url: str,
    *,
    token: str | None = TOKEN,
    fill: bool = True,
    migrate: bool = True,
    **app_kw: Any,
) -> Iterator[Api]:
    """A Feedwatch on ``url`` (filled with the data set) served by its API."""
    fw = make_feedwatch(settings_for(url, token), migrate=migrate)
    try:
        assert isinstance(fw.store, SqlStore)
        data = populate(fw.store) if fill else None
        app = create_app(fw, **app_kw)
        with serving(app) as base:
            yield Api(url=base, app=app, fw=fw, data=data)
    finally:
        fw.close()


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """One filled SQLite database and its API (token required), shared by a module's
    read-only tests."""
    path = tmp_path_factory.mktemp("api") / "feedwatch.db"
    with running_api(f"sqlite:///{path}") as served:
        yield served


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite database file (not created until opened)."""
    return f"sqlite:///{tmp_path / 'feedwatch.db'}"


# -- PostgreSQL ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def api_pg_shared(pg_databases: PgDatabases) -> str:
    """One migrated PostgreSQL database for the session (tests empty it first)."""
    url = pg_databases.create()
    with make_feedwatch(settings_for(url)):
        pass
    return url


def truncate(store: SqlStore) -> None:
    """Empty every feedwatch table of a PostgreSQL store."""
    names = ", ".join(t.name for t in metadata.sorted_tables)
    with store.engine.begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.external_service)]
)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty, migrated database of each kind."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'feedwatch.db'}"
        with make_feedwatch(settings_for(url)):
            pass
        return url
    url = str(request.getfixturevalue("api_pg_shared"))
    with make_feedwatch(settings_for(url), migrate=False) as fw:
        assert isinstance(fw.store, SqlStore)
        truncate(fw.store)
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[SqlStore]:
    """The store under test on an empty database; checked for leaked connections."""
    with make_feedwatch(settings_for(store_url), migrate=False) as fw:
        assert isinstance(fw.store, SqlStore)
        yield fw.store
        assert fw.store.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
