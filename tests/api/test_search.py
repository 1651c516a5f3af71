"""Full-text search (migration 0002) on SQLite FTS5 and PostgreSQL tsvector, through
the store and through /api/items."""

from __future__ import annotations

from datetime import timedelta

import pytest
from alembic import command
from alembic.config import Config
from pg import PgDatabases
from sqlalchemy import text

from worker.models import Feed, Item, utcnow
from worker.store import open_store
from worker.store.base import PollIntent
from worker.store.sql import MIGRATIONS_DIR, SearchQuery, SqlStore, parse_search

from .conftest import running_api
from .data import SUMMARY_WORD, SUMMIT_TITLE


def _ids(items: list[Item]) -> list[str]:
    return [i.id for i in items]


def _store_items(store: SqlStore, *items: Item) -> Feed:
    feed = store.add_feed(Feed(url="http://127.0.0.1:9/search.xml"))
    store.record_poll(PollIntent(feed=feed, items=list(items)))
    return feed


VISIT = Item(
    id="v",
    title="Kishida visits China for the Asian Games",
    summary="The prime minister met Xi Jinping in Hangzhou on Saturday.",
)
SUMMIT = Item(
    id="s",
    title="Foreign ministers agree on a leaders' summit",
    summary="China, Japan and South Korea will hold the trilateral meeting in Seoul.",
)
OTHER = Item(id="o", title="Typhoon nears Okinawa", summary="Heavy rain expected.")


def test_search_finds_a_word_of_the_summary_only_where_it_is(store: SqlStore) -> None:
    _store_items(store, VISIT, SUMMIT, OTHER)
    assert _ids(store.search_items("Hangzhou", 10)) == ["v"]
    assert _ids(store.search_items("hangzhou", 10)) == ["v"]
    assert store.search_items("volcano", 10) == []


def test_search_language(store: SqlStore) -> None:
    _store_items(store, VISIT, SUMMIT, OTHER)
    # English stemming: "visit" finds "visits", "meetings" finds "meeting".
    assert _ids(store.search_items("visit", 10)) == ["v"]
    assert _ids(store.search_items("meetings", 10)) == ["s"]
    # Every word must appear, in the title or the summary.
    assert _ids(store.search_items("China Seoul", 10)) == ["s"]
    assert set(_ids(store.search_items("China", 10))) == {"v", "s"}
    # A quoted phrase keeps its word order.
    assert _ids(store.search_items('"prime minister"', 10)) == ["v"]
    assert store.search_items('"minister prime"', 10) == []
    # or, and -exclusion.
    assert set(_ids(store.search_items("Hangzhou or Okinawa", 10))) == {"v", "o"}
    assert _ids(store.search_items("China -Seoul", 10)) == ["v"]
    assert _ids(store.search_items("China", 1)) in (["v"], ["s"])


@pytest.mark.parametrize(
    "q",
    [
        '"',
        '"unterminated phrase',
        "AND",
        "OR",
        "NOT China",
        "NEAR(China Japan)",
        "China*",
        "title:China",
        "^China",
        "'; DROP TABLE items; --",
        "!!! ??? ...",
        "-",
        "-China",
        "   ",
        "中国 日本",
        "a" * 2000,
    ],
)
def test_hostile_queries_never_fail(store: SqlStore, q: str) -> None:
    _store_items(store, VISIT, SUMMIT, OTHER)
    found = store.search_items(q, 10)
    assert {i.id for i in found} <= {"v", "s", "o"}
    assert len(store.list_feeds()) == 1


def test_search_results_are_whole_items(store: SqlStore) -> None:
    published = utcnow() - timedelta(hours=1)
    item = VISIT.model_copy(
        update={
            "url": "https://example.com/v",
            "published": published,
            "source": "Kyodo News",
        }
    )
    feed = _store_items(store, item)
    (found,) = store.search_items("Kishida", 5)
    assert found == item.model_copy(update={"feed_url": feed.url})


def test_deleted_items_leave_the_index(store: SqlStore) -> None:
    _store_items(store, VISIT, OTHER)
    assert store.delete_items_before(utcnow() + timedelta(seconds=1)) == 2
    assert store.search_items("Hangzhou", 10) == []
    _store_items(store, VISIT.model_copy(update={"id": "v2"}))
    assert _ids(store.search_items("Hangzhou", 10)) == ["v2"]


def test_items_stored_before_the_migration_are_found(store_url: str) -> None:
    with open_store(store_url) as store:
        with store.engine.begin() as conn:
            # Back to the schema before search, as a database of the first release.
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS_DIR))
            config.attributes["connection"] = conn
            command.downgrade(config, "0001")
        _store_items(store, VISIT, OTHER)
        store.migrate()
        assert _ids(store.search_items("Hangzhou", 10)) == ["v"]


def test_parse_search() -> None:
    assert parse_search('summit "Xi  Jinping" or Kishida -rumour') == SearchQuery(
        groups=(("summit",), ("Xi Jinping", "Kishida")), excluded=("rumour",)
    )
    assert parse_search("or a or") == SearchQuery(groups=(("a",),))
    assert parse_search('-"state visit" b') == SearchQuery(
        groups=(("b",),), excluded=("state visit",)
    )
    assert parse_search("!!! -") == SearchQuery()
    assert (
        SearchQuery(groups=(("a", 'x"y'), ("b",)), excluded=("c",)).fts5()
        == '(("a" OR "x""y") AND ("b")) NOT ("c")'
    )


@pytest.mark.external_service
def test_postgres_search_uses_the_gin_index(pg_databases: PgDatabases) -> None:
    url = pg_databases.create()
    with open_store(url) as store:
        store.migrate()
        _store_items(store, VISIT, SUMMIT, OTHER)
        statement = store._search_statement(parse_search("Hangzhou"), "Hangzhou", 10)
        with store.engine.begin() as conn:
            conn.execute(text("SET LOCAL enable_seqscan = off"))
            sql = statement.compile(
                dialect=conn.dialect, compile_kwargs={"literal_binds": True}
            )
            plan = conn.execute(text(f"EXPLAIN {sql}")).scalars()
            assert "ix_items_search" in "\n".join(plan)


@pytest.mark.external_service
def test_api_search_on_postgres(pg_databases: PgDatabases) -> None:
    with running_api(pg_databases.create()) as served:
        found = served.get("/api/items", params={"q": SUMMARY_WORD}).json()["items"]
        assert [i["title"] for i in found] == [SUMMIT_TITLE]
        assert served.get("/api/items", params={"q": "volcano"}).json()["items"] == []
        assert served.get("/readyz", auth=False).json()["checks"]["database"] == "ok"
        depth = served.get("/metrics").text
        assert "feedwatch_outbox_depth 1.0" in depth
