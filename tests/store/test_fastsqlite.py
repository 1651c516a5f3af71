"""FastSQLiteStore against SQLiteStore: the same rows, the same answers, the same
errors; its own transactions, retries and concurrent claims."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from itertools import count
from pathlib import Path
from typing import Any

import pytest

import worker.store.fastsqlite
import worker.store.sql
from worker.errors import NotFoundError, StoreError
from worker.models import Event, EventStatus, Feed, FeedStatus
from worker.store.base import AlertRecord, PollIntent, StoryLink
from worker.store.fastsqlite import FastSQLiteStore
from worker.store.sql import SqlStore
from worker.store.sqlite import SQLiteStore

from .helpers import T0, alert, at, decision, feed, item, poll, story

TOKYO = timezone(timedelta(hours=9))


def _clock() -> Callable[[], datetime]:
    """A store's ``utcnow``: T0 + 1.5 s per call, so both stores see the same times."""
    ticks = count()
    return lambda: T0 + timedelta(seconds=1.5 * next(ticks))


@pytest.fixture
def pair(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[FastSQLiteStore, SQLiteStore]]:
    """The fast store and the SQLAlchemy store, each on its own migrated file."""
    monkeypatch.setattr(worker.store.fastsqlite, "utcnow", _clock())
    monkeypatch.setattr(worker.store.sql, "utcnow", _clock())
    fast = FastSQLiteStore(f"sqlite:///{tmp_path / 'fast.db'}")
    slow = SQLiteStore(f"sqlite:///{tmp_path / 'sqlalchemy.db'}")
    fast.migrate()
    slow.migrate()
    yield fast, slow
    assert fast.connections_in_use == 0
    fast.close()
    slow.close()


def _dump(path: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (FTS5 shadow tables included), in storage order."""
    conn = sqlite3.connect(path)
    try:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        tables: dict[str, list[tuple[Any, ...]]] = {}
        for name in names:
            try:
                rows = conn.execute(f'SELECT rowid, * FROM "{name}" ORDER BY rowid')
            except sqlite3.OperationalError:  # WITHOUT ROWID
                rows = conn.execute(f'SELECT * FROM "{name}" ORDER BY 1, 2')
            tables[name] = list(rows)
        # The full-text index as terms per document, whatever its segment layout.
        conn.execute(
            "CREATE VIRTUAL TABLE temp.vocab USING fts5vocab(main, items_fts, instance)"
        )
        tables["fts5vocab"] = list(
            conn.execute("SELECT * FROM temp.vocab ORDER BY 1, 2, 3, 4")
        )
        return tables
    finally:
        conn.close()


def _both(
    pair: tuple[FastSQLiteStore, SQLiteStore], call: Callable[[SqlStore], Any]
) -> Any:
    """Run ``call`` on both stores; the answers must be equal."""
    fast, slow = pair
    got = call(fast)  # type: ignore[arg-type]
    want = call(slow)
    assert got == want
    return got


def _both_fail(
    pair: tuple[FastSQLiteStore, SQLiteStore], call: Callable[[SqlStore], Any]
) -> str:
    """Run ``call`` on both stores; both must raise the same StoreError."""
    fast, slow = pair
    messages = []
    for store, path in ((fast, fast.display_url), (slow, slow.display_url)):
        with pytest.raises(StoreError) as info:
            call(store)  # type: ignore[arg-type]
        messages.append((type(info.value), str(info.value).replace(path, "DB")))
    assert messages[0] == messages[1]
    return messages[0][1]


def test_same_sequence_writes_identical_rows(
    pair: tuple[FastSQLiteStore, SQLiteStore],
) -> None:
    fast, slow = pair

    # Feeds: titles, tags, a non-UTC next check, a disabled one, a re-add.
    for n in range(1, 7):
        _both(
            pair,
            lambda s, n=n: s.add_feed(
                feed(
                    n,
                    title=None if n % 2 else f"Outlet «{n}»",
                    tags=("asia", "news") if n < 3 else (),
                    next_check_at=datetime(2024, 5, 1, 20, 0, n, tzinfo=TOKYO)
                    if n == 5
                    else None,
                    status=FeedStatus.DISABLED if n == 6 else FeedStatus.ACTIVE,
                )
            ),
        )
    _both(pair, lambda s: s.add_feed(feed(1, interval=300, tags=("東アジア",))))

    claimed = _both(pair, lambda s: s.claim_due_feeds("w1", T0, 3, 60))
    assert len(claimed) == 3
    _both(pair, lambda s: s.claim_due_feeds("w1", T0, 10, 60))
    _both(pair, lambda s: s.claim_due_feeds("w2", at(61), 2, 120, all_feeds=True))
    one, two, three, four, five = (
        _both(pair, lambda s, n=n: s.get_feed(feed(n).url)) for n in range(1, 6)
    )

    held = story("trilateral", "China, Japan, South Korea to revive summit", T0)
    quiet = story("quiet", "Weather", at(5), event=None)
    first_items = [
        item(1, title="Leaders' summit — “trilateral” ’", summary="<b>x</b>&amp;"),
        item(2, published=None, url=None, source=None, summary=""),
        item(
            3,
            title="中日韩领导人会议",
            published=datetime(2024, 4, 30, 9, 0, tzinfo=TOKYO),
        ),
        item(2, title="duplicate within the poll"),
    ]
    intents = [
        PollIntent(
            feed=one.model_copy(update={"etag": '"e1"', "body_hash": "ab" * 32}),
            items=first_items,
            decisions=[
                decision("guid:1", rules=("summit.trilateral", "summit.named")),
                decision("guid:3", rules=(), topics=()),
            ],
            story_links=[
                StoryLink(story=held, item_id="guid:1", feed_id=one.id or 0),
                StoryLink(story=quiet, item_id="guid:3", feed_id=one.id or 0),
            ],
            alerts=[
                AlertRecord(
                    alert=alert("a1", held, first_items[0]),
                    channels=["console", "webhook"],
                ),
                AlertRecord(
                    alert=alert("a1", held, first_items[0]), channels=["other"]
                ),
            ],
        ),
        PollIntent(
            feed=two.model_copy(update={"title": "Two", "next_check_at": at(900)})
        ),
        PollIntent(
            feed=three.model_copy(
                update={
                    "status": FeedStatus.ERROR,
                    "last_error": "HTTP 500",
                    "error_count": 2,
                }
            )
        ),
        PollIntent(
            feed=four.model_copy(update={"id": None, "last_checked_at": at(1)}),
            items=[item(n, source="Outlet B") for n in range(10, 40)],
        ),
    ]
    records = _both(pair, lambda s: s.record_polls(intents))
    assert [(r.new_items, r.new_alerts) for r in records] == [
        (3, 1),
        (0, 0),
        (0, 0),
        (30, 0),
    ]

    _both(
        pair,
        lambda s: s.known_item_ids_many(
            {one.id: ["guid:1", "guid:2", "guid:9"], four.id: ["guid:10"], 999: []}
        ),
    )
    _both(pair, lambda s: s.known_item_ids(one.id or 0, ["guid:3", "guid:4"]))
    _both(
        pair,
        lambda s: s.recent_item_counts([one.id, four.id, five.id, 12345], at(-3600)),
    )
    _both(pair, lambda s: s.recent_stories(T0 - timedelta(days=1)))

    # Second poll: duplicates, a decision for an earlier item, a later story state
    # without an event (the stored one is kept), a repeated and a new alert.
    later = story("trilateral", "A later title", T0, at(3600), event=None)
    moved = story(
        "quiet", "Weather", at(5), at(7200), event=Event(status=EventStatus.HELD)
    )
    second = [
        PollIntent(
            feed=one.model_copy(update={"etag": '"e2"', "last_checked_at": at(60)}),
            items=[*first_items, item(4)],
            decisions=[
                decision("guid:1"),
                decision("guid:4", rules=("visit.leader",), topics=("visit",)),
            ],
            story_links=[
                StoryLink(story=later, item_id="guid:4", feed_id=one.id or 0),
                StoryLink(story=moved, item_id="guid:10", feed_id=four.id or 0),
                StoryLink(story=later, item_id="guid:1", feed_id=one.id or 0),
            ],
            alerts=[
                AlertRecord(alert=alert("a1", later, item(4)), channels=["console"]),
                AlertRecord(
                    alert=alert(
                        "a2", later, item(4), created_at=at(60), rule="visit.leader"
                    ),
                    channels=["console", "file"],
                ),
            ],
        ),
        PollIntent(feed=two.model_copy(update={"title": None, "etag": '"t2"'})),
    ]
    records = _both(pair, lambda s: s.record_polls(second))
    assert [(r.new_items, r.alert_ids) for r in records] == [(1, ("a2",)), (0, ())]
    _both(
        pair,
        lambda s: s.record_poll(
            poll(five, [item(50)], st=story("s5"), alert_id="a5", channels=("c1",))
        ),
    )

    assert (
        _both(
            pair, lambda s: s.move_feed(one.id or 0, "http://127.0.0.1:8000/moved.xml")
        )
        is True
    )
    assert (
        _both(
            pair, lambda s: s.move_feed(two.id or 0, "http://127.0.0.1:8000/moved.xml")
        )
        is False
    )
    hubs = {
        one.id or 0: ("http://127.0.0.1:9/hub", "http://127.0.0.1:8000/moved.xml"),
        two.id or 0: ("http://127.0.0.1:9/hub", "t2"),
    }
    assert _both(pair, lambda s: s.record_hubs(hubs, at(10))) == 2
    assert _both(pair, lambda s: s.record_hubs(hubs, at(20))) == 0
    assert (
        _both(
            pair,
            lambda s: s.record_hubs(
                {two.id or 0: ("http://127.0.0.1:9/other", "t2")}, at(30)
            ),
        )
        == 1
    )
    _both(pair, lambda s: s.subscription_requested(one.id or 0, "secret", at(40)))
    _both(
        pair,
        lambda s: s.verify_subscription(
            one.id or 0, "http://127.0.0.1:8000/moved.xml", 3600, at(50)
        ),
    )
    assert _both(pair, lambda s: s.push_fed_feeds(at(60), at(0))) == {one.id}
    _both(
        pair,
        lambda s: s.update_feed_state(
            three.model_copy(update={"error_count": 0, "title": "Three"})
        ),
    )
    _both(pair, lambda s: s.remove_feed(feed(3).url))

    # Reads on both.
    _both(pair, lambda s: s.recent_stories(T0 - timedelta(days=1)))
    _both(pair, lambda s: s.story_alerts(["trilateral", "quiet", "s5", "none"]))
    assert _both(pair, lambda s: s.count_pending_deliveries()) == 5
    assert _both(pair, lambda s: s.count_items()) == 35
    _both(pair, lambda s: s.list_feeds())
    _both(pair, lambda s: s.feed_by_id(four.id or 0))
    _both(pair, lambda s: s.claim_due_feeds("w3", at(86400), 10, 60))
    _both(pair, lambda s: s.stories(T0 - timedelta(days=1)))
    _both(pair, lambda s: s.list_alerts())
    assert _both(pair, lambda s: s.schema_is_current()) is True
    _both(pair, lambda s: s.ping())

    fast_rows = _dump(fast.url.removeprefix("sqlite:///"))
    slow_rows = _dump(slow.url.removeprefix("sqlite:///"))
    assert fast_rows.keys() == slow_rows.keys()
    assert {
        "feeds",
        "items",
        "matches",
        "stories",
        "story_items",
        "alerts",
        "deliveries",
        "subscriptions",
        "items_fts_data",
    } <= fast_rows.keys()
    for name in fast_rows:
        assert fast_rows[name] == slow_rows[name], f"table {name} differs"
    assert len(fast_rows["fts5vocab"]) > 100


def test_same_errors(pair: tuple[FastSQLiteStore, SQLiteStore]) -> None:
    fd = _both(pair, lambda s: s.add_feed(feed(1)))
    naive = datetime(2024, 5, 1, 12, 0)
    message = _both_fail(
        pair,
        lambda s: s.update_feed_state(fd.model_copy(update={"next_check_at": naive})),
    )
    assert (
        message
        == "update_feed_state failed on DB: ValueError: naive datetime 2024-05-01T12:00:00 (expected UTC-aware)"
    )
    _both_fail(pair, lambda s: s.claim_due_feeds("w", naive, 10, 60))
    message = _both_fail(
        pair,
        lambda s: s.record_poll(
            PollIntent(feed=fd, items=[item(1)], decisions=[decision("guid:404")])
        ),
    )
    assert "guid:404" in message
    message = _both_fail(
        pair,
        lambda s: s.record_poll(
            poll(fd, [item(1)], st=story(), alert_id="a1", channels=("x", "x"))
        ),
    )
    assert message.startswith(
        "record_poll failed on DB: IntegrityError: UNIQUE constraint failed"
    )
    _both_fail(
        pair,
        lambda s: s.record_polls([PollIntent(feed=fd.model_copy(update={"id": 999}))]),
    )
    _both_fail(pair, lambda s: s.record_polls([PollIntent(feed=feed(9))]))
    _both_fail(pair, lambda s: s.move_feed(999, "http://127.0.0.1:8000/x.xml"))
    _both_fail(pair, lambda s: s.get_feed("http://127.0.0.1:8000/none.xml"))
    _both_fail(pair, lambda s: s.remove_feed("http://127.0.0.1:8000/none.xml"))
    assert _both(pair, lambda s: s.count_items()) == 0, "every failure rolled back"


def test_unmigrated_database_is_a_store_error(tmp_path: Path) -> None:
    with FastSQLiteStore(f"sqlite:///{tmp_path / 'empty.db'}") as store:
        assert store.schema_is_current() is False
        with pytest.raises(StoreError) as info:
            store.claim_due_feeds("w", T0, 10, 60)
        assert str(info.value) == (
            f"claim_due_feeds failed on sqlite:///{tmp_path / 'empty.db'}: "
            "OperationalError: no such table: feeds"
        )
        assert isinstance(info.value.__cause__, sqlite3.OperationalError)
        assert not isinstance(info.value, NotFoundError)


class _Traced(FastSQLiteStore):
    """Records every connection it opens and every statement they run."""

    def __init__(self, url: str, **kw: Any) -> None:
        self.statements: list[str] = []
        self.connections: list[sqlite3.Connection] = []
        super().__init__(url, **kw)

    def _connect(self) -> sqlite3.Connection:
        conn = super()._connect()
        self.connections.append(conn)
        conn.set_trace_callback(self.statements.append)
        return conn


@pytest.fixture
def traced(tmp_path: Path) -> Iterator[_Traced]:
    store = _Traced(
        f"sqlite:///{tmp_path / 'feedwatch.db'}",
        busy_timeout=0.01,
        retries=2,
        backoff=0.001,
    )
    store.migrate()
    yield store
    assert store.connections_in_use == 0
    store.close()


def test_connection_pragmas(traced: _Traced) -> None:
    traced.ping()
    conn = traced.connections[-1]
    pragmas = {
        name: conn.execute(f"PRAGMA {name}").fetchone()[0]
        for name in ("journal_mode", "foreign_keys", "synchronous", "busy_timeout")
    }
    assert pragmas == {
        "journal_mode": "wal",
        "foreign_keys": 1,
        "synchronous": 1,
        "busy_timeout": 10,
    }


def test_writes_begin_immediate_and_reads_deferred(traced: _Traced) -> None:
    traced.statements.clear()
    traced.add_feed(feed(1))
    traced.claim_due_feeds("w", T0, 10, 60)
    traced.list_feeds()
    traced.known_item_ids_many({1: ["a"]})
    begins = [s for s in traced.statements if s.startswith("BEGIN")]
    assert begins == [
        "BEGIN IMMEDIATE",
        "BEGIN IMMEDIATE",
        "BEGIN DEFERRED",
        "BEGIN DEFERRED",
    ]
    assert traced.statements.count("COMMIT") == 4


def test_connections_are_reused(traced: _Traced) -> None:
    for _ in range(20):
        traced.list_feeds()
    assert len(traced.connections) == 1


@pytest.fixture
def locker(traced: _Traced) -> Iterator[sqlite3.Connection]:
    """A second connection holding the database's write lock."""
    path = traced.url.removeprefix("sqlite:///")
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("BEGIN IMMEDIATE")
    yield conn
    if conn.in_transaction:
        conn.rollback()
    conn.close()


def test_locked_database_is_retried_then_reported(
    traced: _Traced, locker: sqlite3.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.WARNING, logger="worker.store.fastsqlite"),
        pytest.raises(StoreError) as info,
    ):
        traced.add_feed(feed(1))
    assert "add_feed failed on sqlite:///" in str(info.value)
    assert "database is locked" in str(info.value)
    retries = [r for r in caplog.records if "retry" in r.getMessage()]
    assert len(retries) == 2
    assert traced.list_feeds() == [], "reads do not wait for the writer"


def test_locked_database_succeeds_once_released(
    traced: _Traced, locker: sqlite3.Connection
) -> None:
    class ReleaseOnRetry(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "retry" in record.getMessage() and locker.in_transaction:
                locker.rollback()

    handler = ReleaseOnRetry(logging.WARNING)
    logger = logging.getLogger("worker.store.fastsqlite")
    logger.addHandler(handler)
    try:
        stored = traced.add_feed(feed(1))
    finally:
        logger.removeHandler(handler)
    assert stored.id is not None
    assert not locker.in_transaction


def test_cold_methods_go_through_sqlalchemy_on_the_same_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'feedwatch.db'}"
    with FastSQLiteStore(url) as store:
        store.migrate()
        assert store._sql_store is not None, "Alembic migrated the new file"
    with FastSQLiteStore(url) as store:
        store.migrate()
        fd = store.add_feed(feed(1))
        store.record_poll(poll(fd, [item(1)], st=story(), alert_id="a1"))
        assert store._sql_store is None, "the polling path never built it"
        [row] = store.list_alerts()
        assert row.alert.id == "a1" and len(row.deliveries) == 2
        assert isinstance(store._sql_store, SQLiteStore)
        assert store.engine is store._sql_store.engine
        assert isinstance(store, SqlStore)


def test_concurrent_claims_never_lease_a_feed_twice(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two fast stores and a SQLAlchemy store claim from one file at once."""
    url = f"sqlite:///{tmp_path / 'feedwatch.db'}"
    workers: list[SqlStore] = [
        FastSQLiteStore(url),
        FastSQLiteStore(url),
        SQLiteStore(url),
    ]  # type: ignore[list-item]
    workers[0].migrate()
    total = 300
    for n in range(total):
        workers[n % 3].add_feed(feed(n))
    got: list[list[int]] = [[] for _ in workers]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(workers))

    def run(index: int) -> None:
        try:
            workers[index].count_items()  # connect before the race starts
            barrier.wait(timeout=10)
            for _ in range(total):
                batch = workers[index].claim_due_feeds(f"w{index}", T0, 3, 600)
                if not batch:
                    return
                got[index].extend(f.id or 0 for f in batch)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(workers))]
    with caplog.at_level(logging.WARNING):
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    claimed = [fid for ids in got for fid in ids]
    assert len(claimed) == len(set(claimed)) == total, "a feed was leased twice"
    assert sum(1 for ids in got if ids) >= 2, "the workers did not race"
    # Claims wait for each other under BEGIN IMMEDIATE; none should fail and retry.
    assert [r.getMessage() for r in caplog.records if "retry" in r.getMessage()] == []
    for w in workers:
        w.close()


def test_in_process_feed_state_round_trip(tmp_path: Path) -> None:
    """What the fast store writes, the SQLAlchemy store reads back the same."""
    url = f"sqlite:///{tmp_path / 'feedwatch.db'}"
    with FastSQLiteStore(url) as fast, SQLiteStore(url) as slow:
        fast.migrate()
        when = datetime(2024, 5, 1, 21, 30, 15, 123456, tzinfo=TOKYO)
        original = Feed(
            url="http://127.0.0.1:8000/full.xml",
            title="Full",
            interval=120,
            tags=("a", "b"),
            status=FeedStatus.ERROR,
            etag='W/"x"',
            last_modified="Wed, 01 May 2024 12:00:00 GMT",
            body_hash="0" * 64,
            last_checked_at=when,
            next_check_at=at(120),
            last_error="HTTP 500",
            error_count=3,
        )
        stored = fast.add_feed(original)
        assert slow.get_feed(original.url) == stored
        assert stored.last_checked_at == when and stored.last_checked_at.tzinfo is UTC
