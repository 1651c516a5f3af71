"""open_store: which store a URL gets, and clear errors for the ones it cannot open."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from worker.errors import StoreError
from worker.store import FastSQLiteStore, open_store
from worker.store.fastsqlite import sqlite_file_url
from worker.store.postgres import PostgresStore
from worker.store.sqlite import SQLiteStore


def test_sqlite_url_creates_the_directory(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "feedwatch.db"
    with open_store(f"sqlite:///{path}") as store:
        assert isinstance(store, FastSQLiteStore)
        assert path.parent.is_dir()
        store.migrate()
        assert store.list_feeds() == []
    assert path.is_file()


@pytest.mark.parametrize(
    "url", ["sqlite://", "sqlite:///:memory:", "sqlite+pysqlite:///:memory:"]
)
def test_in_memory_sqlite_keeps_the_sqlalchemy_store(url: str) -> None:
    with open_store(url) as store:
        assert type(store) is SQLiteStore
        store.migrate()
        assert store.list_feeds() == []


def test_sqlite_url_with_options_keeps_the_sqlalchemy_store(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 'x.db'}?timeout=3") as store:
        assert type(store) is SQLiteStore


@pytest.mark.parametrize(
    "path",
    [
        "/tmp/plain/feedwatch.db",
        "relative/feedwatch.db",
        "/tmp/with space/a+b%20c/ünï.db",
        "~/feedwatch.db",
        "/tmp/semi;colon#hash.db",
    ],
)
@pytest.mark.parametrize("scheme", ["sqlite", "sqlite+pysqlite"])
def test_sqlite_file_urls_read_as_sqlalchemy_reads_them(scheme: str, path: str) -> None:
    from sqlalchemy.engine import make_url

    url = f"{scheme}:///{path}"
    parsed = sqlite_file_url(url)
    sa_url = make_url(url)
    assert parsed == (sa_url.database, sa_url.render_as_string(hide_password=True))


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


def test_sqlite_poll_path_does_not_import_sqlalchemy(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    with open_store(url) as store:
        store.migrate()
    code = (
        "import sys\n"
        "from datetime import UTC, datetime\n"
        "from worker.models import Feed, Item\n"
        "from worker.store import open_store\n"
        "from worker.store.base import PollIntent\n"
        "now = datetime.now(UTC)\n"
        f"s = open_store({url!r}); s.migrate()\n"
        "s.add_feed(Feed(url='http://127.0.0.1:1/f.xml'))\n"
        "[f] = s.claim_due_feeds('w', now, 10, 60)\n"
        "s.known_item_ids_many({f.id: ['a']}); s.recent_item_counts([f.id], now)\n"
        "s.push_fed_feeds(now, now)\n"
        "s.record_polls([PollIntent(feed=f, items=[Item(id='a', title='t')])])\n"
        "s.move_feed(f.id, 'http://127.0.0.1:1/g.xml')\n"
        "s.recent_stories(now); s.story_alerts(['x']); s.count_pending_deliveries()\n"
        "s.record_hubs({f.id: ('http://127.0.0.1:1/hub', 'http://127.0.0.1:1/g.xml')}, now)\n"
        "s.close()\n"
        "assert 'sqlalchemy' not in sys.modules, 'sqlalchemy imported'\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


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
