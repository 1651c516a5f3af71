"""open_store: which store a URL gets, and clear errors for the ones it cannot open."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from worker.errors import StoreError
from worker.store import open_store
from worker.store.postgres import PostgresStore
from worker.store.sqlite import SQLiteStore


def test_sqlite_url_creates_the_directory(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "feedwatch.db"
    with open_store(f"sqlite:///{path}") as store:
        assert isinstance(store, SQLiteStore)
        assert path.parent.is_dir()
        store.migrate()
        assert store.list_feeds() == []
    assert path.is_file()


@pytest.mark.parametrize(
    "url",
    ["postgresql://u:secret@127.0.0.1:5432/db", "postgres://u:secret@127.0.0.1/db"],
)
def test_postgres_url_uses_psycopg_and_hides_the_password(url: str) -> None:
    store = open_store(url)
    try:
        assert isinstance(store, PostgresStore)
        assert store.engine.url.drivername == "postgresql+psycopg"
        assert "secret" not in store.display_url and "secret" not in repr(store)
    finally:
        store.close()


@pytest.mark.parametrize(
    "url",
    ["mysql://root@127.0.0.1/db", "postgresql+psycopg2://127.0.0.1/db", "not a url"],
)
def test_unsupported_url_is_a_store_error(url: str) -> None:
    with pytest.raises(StoreError) as info:
        open_store(url)
    assert "URL" in str(info.value)


def test_postgres_without_psycopg_says_which_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(StoreError, match=r"feedwatch\[postgres\]"):
        open_store("postgresql://postgres@127.0.0.1:5432/test")


def test_sqlite_does_not_import_psycopg(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from worker.store import open_store\n"
        f"s = open_store('sqlite:///{tmp_path / 'x.db'}'); s.migrate(); s.list_feeds()\n"
        "assert 'psycopg' not in sys.modules, 'psycopg imported'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr


def test_unreachable_postgres_is_a_store_error() -> None:
    store = open_store("postgresql://postgres@127.0.0.1:1/nowhere")
    with store, pytest.raises(StoreError) as info:
        store.list_feeds()
    assert (
        "list_feeds failed on postgresql+psycopg://postgres@127.0.0.1:1/nowhere"
        in str(info.value)
    )
