"""FastSQLiteStore against SQLiteStore: the same rows, the same answers, the same
errors; its own transactions, retries and concurrent claims."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from itertools import count
from pathlib import Path
from typing import Any, cast

import pytest

import worker.store.fastsqlite
import worker.store.sql
from worker.channels.base import Channel, ChannelPolicy
from worker.channels.file import FileChannel
from worker.config import DeliverySettings, QuietHours, RateLimit
from worker.deliver import DrainResult, drain_outbox
from worker.errors import NotFoundError, StoreError
from worker.models import Event, EventStatus, Feed, FeedStatus
from worker.store.base import (
    AlertRecord,
    DeliveryOutcome,
    Lease,
    PollIntent,
    StoryLink,
)
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


def _same_tables(
    pair: tuple[FastSQLiteStore, SQLiteStore],
) -> dict[str, list[tuple[Any, ...]]]:
    """Both files hold the same rows in every table; the fast store's rows."""
    fast, slow = pair
    fast_rows = _dump(fast.url.removeprefix("sqlite:///"))
    slow_rows = _dump(slow.url.removeprefix("sqlite:///"))
    assert fast_rows.keys() == slow_rows.keys()
    for name in fast_rows:
        assert fast_rows[name] == slow_rows[name], f"table {name} differs"
    return fast_rows


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

    fast_rows = _same_tables(pair)
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
    assert len(fast_rows["fts5vocab"]) > 100


def _enqueue(
    pair: tuple[FastSQLiteStore, SQLiteStore],
    alerts: Sequence[tuple[str, datetime, tuple[str, ...]]],
) -> None:
    """One feed, and per ``(alert id, created_at, channels)`` a poll raising it."""
    fd = _both(pair, lambda s: s.add_feed(feed(1)))
    for n, (alert_id, created, channels) in enumerate(alerts, start=1):
        intent = poll(
            fd,
            [item(n)],
            st=story(f"s{n}"),
            alert_id=alert_id,
            channels=channels,
            created_at=created,
        )

        def write(s: SqlStore, intent: PollIntent = intent) -> Any:
            return s.record_poll(intent)

        _both(pair, write)


def test_same_outbox_sequence_writes_identical_rows(
    pair: tuple[FastSQLiteStore, SQLiteStore],
) -> None:
    """Claims, leases (live, expired, at the boundary) and every kind of outcome:
    the same claimed deliveries, the same rows, the same delivery times."""
    # A row falls due when its alert was created: a2 first, a3 only at at(30).
    _enqueue(
        pair,
        [
            ("a1", at(0), ("mail", "hook", "file")),
            ("a2", at(-30), ("mail", "hook")),
            ("a3", at(30), ("mail", "hook")),
        ],
    )

    def claim(worker: str, now: datetime, limit: int = 10) -> list[tuple[str, str]]:
        got = _both(pair, lambda s: s.claim_deliveries(worker, now, limit, 60))
        return [(c.alert.id, c.delivery.channel) for c in got]

    def record(outcome: DeliveryOutcome) -> None:
        _both(pair, lambda s: s.record_delivery(outcome))

    assert claim("w1", at(10), 0) == []
    first = _both(pair, lambda s: s.claim_deliveries("w1", at(10), 2, 60))
    assert [(c.alert.id, c.delivery.channel) for c in first] == [
        ("a2", "mail"),
        ("a2", "hook"),
    ]
    assert first[0].alert == alert("a2", story("s2"), item(2), created_at=at(-30))
    second = _both(pair, lambda s: s.claim_deliveries("w2", at(20), 10, 60))
    assert [(c.alert.id, c.delivery.channel) for c in second] == [
        ("a1", "mail"),
        ("a1", "hook"),
        ("a1", "file"),
    ]
    assert claim("w3", at(25)) == [], "every due row is leased, a3 is not due"
    ids = {(c.alert.id, c.delivery.channel): c.delivery.id or 0 for c in first + second}

    record(DeliveryOutcome(ids["a2", "mail"], ok=True, attempted_at=at(21)))
    retry_at = datetime(2024, 5, 1, 21, 1, 40, tzinfo=TOKYO)  # at(100), not in UTC
    record(
        DeliveryOutcome(
            ids["a2", "hook"],
            ok=False,
            attempted_at=at(22),
            error="HTTP 503",
            retry_at=retry_at,
        )
    )
    record(
        DeliveryOutcome(
            ids["a1", "file"], ok=False, attempted_at=at(23), error="HTTP 400"
        )
    )
    record(DeliveryOutcome(ids["a1", "mail"], ok=False, attempted_at=at(24), held=True))
    record(
        DeliveryOutcome(
            ids["a1", "hook"],
            ok=False,
            attempted_at=at(25),
            error="not an attempt: not stored",
            defer_until=at(200),
        )
    )
    _same_tables(pair)

    # a3 is leased until at(100); the retry of a2/hook is due at(100) too.
    assert claim("w3", at(40)) == [("a3", "mail"), ("a3", "hook")]
    assert claim("w4", at(99)) == []
    assert claim("w4", at(100)) == [("a3", "mail"), ("a3", "hook"), ("a2", "hook")]
    third = _both(pair, lambda s: s.get_alert("a3"))
    a3 = {d.channel: d.id or 0 for d in third.deliveries}
    record(DeliveryOutcome(ids["a2", "hook"], ok=True, attempted_at=at(101)))
    record(
        DeliveryOutcome(
            a3["mail"],
            ok=False,
            attempted_at=at(102),
            error="timeout",
            retry_at=at(300),
        )
    )
    record(DeliveryOutcome(a3["hook"], ok=False, attempted_at=at(103), error="gone"))
    # A digest release is a delivery, but not a send the rate limit counts.
    assert _both(pair, lambda s: s.release_held("mail", ["a1"], "dg_1", at(50))) == 1

    assert _both(pair, lambda s: s.delivered_times("mail", at(0))) == [at(21)]
    assert _both(pair, lambda s: s.delivered_times("hook", at(0))) == [at(101)]
    assert _both(pair, lambda s: s.delivered_times("hook", at(101))) == [at(101)]
    assert _both(pair, lambda s: s.delivered_times("hook", at(102))) == []
    assert _both(pair, lambda s: s.delivered_times("file", at(0))) == []
    assert _both(pair, lambda s: s.count_pending_deliveries()) == 2
    [a2_row] = [r for r in _both(pair, lambda s: s.list_alerts()) if r.alert.id == "a2"]
    hook = {d.channel: d for d in a2_row.deliveries}["hook"]
    assert (hook.attempts, hook.last_error, hook.delivered_at) == (2, None, at(101))

    # Rows made pending again by the SQLAlchemy side are claimed the same way.
    assert _both(pair, lambda s: s.redeliver("a1", at(350))) == 3
    assert claim("w5", at(400)) == [
        ("a3", "mail"),
        ("a1", "mail"),
        ("a1", "hook"),
        ("a1", "file"),
    ]
    a1 = {
        d.channel: d.id or 0
        for d in _both(pair, lambda s: s.get_alert("a1")).deliveries
    }
    record(
        DeliveryOutcome(
            a3["mail"],
            ok=False,
            attempted_at=at(401),
            error="HTTP 502",
            retry_at=at(900),
        )
    )
    record(DeliveryOutcome(a1["file"], ok=True, attempted_at=at(402)))
    record(
        DeliveryOutcome(a1["hook"], ok=False, attempted_at=at(403), error="HTTP 410")
    )
    rows = {r.alert.id: r for r in _both(pair, lambda s: s.list_alerts())}
    mail = {d.channel: d for d in rows["a3"].deliveries}["mail"]
    assert (mail.attempts, mail.last_error) == (2, "HTTP 502")
    _same_tables(pair)


def test_drain_outbox_writes_identical_rows_without_sqlalchemy(
    pair: tuple[FastSQLiteStore, SQLiteStore], tmp_path: Path
) -> None:
    """A drain with quiet hours, a rate limit and a dead channel, as ``poll --once``
    runs it after an alert: same results and rows, nothing forwarded."""
    _enqueue(
        pair,
        [(f"a{n}", at(n), ("desk", "night", "limited", "broken")) for n in range(1, 4)],
    )
    results: list[DrainResult] = []
    written: list[dict[str, list[str]]] = []
    broken = tmp_path / "a-directory"  # not a file: appends fail, the rows are dead
    broken.mkdir()
    # A store of its own: migrating the new file built the fixture's SQLiteStore.
    fast = FastSQLiteStore(pair[0].url)
    for store in (fast, pair[1]):
        out = tmp_path / type(store).__name__
        out.mkdir()
        channels: dict[str, FileChannel] = {
            name: FileChannel(name, out / f"{name}.jsonl")
            for name in ("desk", "night", "limited")
        }
        channels["broken"] = FileChannel("broken", broken)
        # T0 is 12:00 UTC.
        channels["night"].policy = ChannelPolicy(
            quiet_hours=QuietHours(start="11:00", end="13:00")
        )
        channels["limited"].policy = ChannelPolicy(rate_limit=RateLimit(count=1))
        results.append(
            asyncio.run(
                drain_outbox(
                    store,
                    cast(dict[str, Channel], channels),
                    DeliverySettings(batch=5),
                    worker_id="w",
                    now=lambda: at(60),
                )
            )
        )
        written.append(
            {
                p.name: sorted(p.read_text().splitlines())
                for p in sorted(out.glob("*.jsonl"))
            }
        )
    assert (
        results[0] == results[1] == DrainResult(delivered=4, dead=3, held=3, deferred=2)
    )
    assert written[0] == written[1]
    assert [len(lines) for lines in written[0].values()] == [3, 1]
    _same_tables(pair)
    assert fast._sql_store is None, "the drain went through SQLAlchemy"
    assert fast.connections_in_use == 0
    fast.close()


def test_same_outbox_errors(pair: tuple[FastSQLiteStore, SQLiteStore]) -> None:
    _enqueue(pair, [("a1", at(0), ("mail",))])
    naive = datetime(2024, 5, 1, 12, 0)
    message = _both_fail(pair, lambda s: s.claim_deliveries("w", naive, 10, 60))
    assert message == (
        "claim_deliveries failed on DB: ValueError: naive datetime "
        "2024-05-01T12:00:00 (expected UTC-aware)"
    )
    _both_fail(pair, lambda s: s.delivered_times("mail", naive))
    [claimed] = _both(pair, lambda s: s.claim_deliveries("w", at(1), 10, 60))
    did = claimed.delivery.id or 0
    for outcome in (
        DeliveryOutcome(did, ok=True, attempted_at=naive),
        DeliveryOutcome(did, ok=False, attempted_at=at(2), retry_at=naive),
        DeliveryOutcome(did, ok=False, attempted_at=at(2), defer_until=naive),
    ):

        def record(s: SqlStore, o: DeliveryOutcome = outcome) -> None:
            s.record_delivery(o)

        message = _both_fail(pair, record)
        assert message.startswith("record_delivery failed on DB: ValueError: naive")
    message = _both_fail(
        pair,
        lambda s: s.record_delivery(DeliveryOutcome(999, ok=True, attempted_at=at(2))),
    )
    assert message == "no delivery 999"
    _same_tables(pair)  # nothing written: the lease is still w's
    # A payload that is no longer a valid alert.
    for store in pair:
        conn = sqlite3.connect(store.url.removeprefix("sqlite:///"))
        with conn:
            conn.execute('UPDATE alerts SET payload = \'{"id": "a1"}\'')
        conn.close()
    message = _both_fail(pair, lambda s: s.claim_deliveries("w", at(3600), 10, 60))
    assert message.startswith("claim_deliveries on DB: a stored row is not valid: ")


def test_concurrent_claims_never_lease_a_delivery_twice(tmp_path: Path) -> None:
    """Two fast stores and a SQLAlchemy store drain one outbox at once."""
    url = f"sqlite:///{tmp_path / 'feedwatch.db'}"
    workers = [
        cast(SqlStore, FastSQLiteStore(url)),
        cast(SqlStore, FastSQLiteStore(url)),
        SQLiteStore(url),
    ]
    workers[0].migrate()
    fd = workers[0].add_feed(feed(1))
    st = story()
    workers[0].record_poll(
        PollIntent(
            feed=fd,
            items=[item(n) for n in range(100)],
            alerts=[
                AlertRecord(alert=alert(f"a{n}", st, item(n)), channels=["x", "y", "z"])
                for n in range(100)
            ],
        )
    )
    total = 300
    got: list[list[int]] = [[] for _ in workers]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(workers))

    def run(index: int) -> None:
        try:
            workers[index].count_items()  # connect before the race starts
            barrier.wait(timeout=10)
            for _ in range(total):
                batch = workers[index].claim_deliveries(f"w{index}", at(10), 3, 600)
                if not batch:
                    return
                time.sleep(0.001)  # let the others in, even on a loaded machine
                for c in batch:
                    got[index].append(c.delivery.id or 0)
                    workers[index].record_delivery(
                        DeliveryOutcome(
                            c.delivery.id or 0, ok=True, attempted_at=at(11)
                        )
                    )
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(workers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    claimed = [did for ids in got for did in ids]
    assert len(claimed) == len(set(claimed)) == total, "a delivery was leased twice"
    assert sum(1 for ids in got if ids) >= 2, "the workers did not race"
    assert workers[0].count_pending_deliveries() == 0
    for w in workers:
        w.close()


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
    fd = traced.add_feed(feed(1))
    traced.claim_due_feeds("w", T0, 10, 60)
    traced.list_feeds()
    traced.known_item_ids_many({1: ["a"]})
    traced.record_poll(poll(fd, [item(1)], st=story(), alert_id="a1"))
    [claimed, _] = traced.claim_deliveries("w", at(1), 10, 60)
    traced.record_delivery(
        DeliveryOutcome(claimed.delivery.id or 0, ok=True, attempted_at=at(2))
    )
    traced.delivered_times("console", at(0))
    begins = [s for s in traced.statements if s.startswith("BEGIN")]
    assert begins == [
        "BEGIN IMMEDIATE",
        "BEGIN IMMEDIATE",
        "BEGIN DEFERRED",
        "BEGIN DEFERRED",
        "BEGIN IMMEDIATE",
        "BEGIN IMMEDIATE",
        "BEGIN IMMEDIATE",
        "BEGIN DEFERRED",
    ]
    assert traced.statements.count("COMMIT") == 8


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
                time.sleep(0.001)  # let the others in, even on a loaded machine
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


def test_same_stale_poll_and_config_feed_sequence_writes_identical_rows(
    pair: tuple[FastSQLiteStore, SQLiteStore],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Config feeds: added, one moved (301), synced again under its old URL.
    _both(pair, lambda s: s.add_config_feeds([feed(1, title="One"), feed(2)]))
    _both(pair, lambda s: s.move_feed(1, "http://127.0.0.1:8000/moved.xml"))
    _both(
        pair,
        lambda s: s.add_config_feeds([feed(1, interval=60), feed(2), feed(3)]),
    )
    # Worker a's claim runs out; b claims (a non-UTC now) and records.
    [a1, a2, a3] = _both(pair, lambda s: s.claim_due_feeds("a", T0, 10, 30))
    b_at = datetime(2024, 5, 1, 21, 0, 31, 250, tzinfo=TOKYO)
    [b1, b2] = _both(pair, lambda s: s.claim_due_feeds("b", b_at, 2, 30))
    lease_b = Lease("b", b_at)
    _both(
        pair,
        lambda s: s.record_polls(
            [
                PollIntent(b1.model_copy(update={"etag": '"b1"'}), lease=lease_b),
                PollIntent(
                    b2.model_copy(update={"etag": '"b2"'}),
                    items=[item(1)],
                    lease=lease_b,
                ),
            ]
        ),
    )
    # a records late: feeds 1 and 2 are stale, feed 3 is still a's.
    lease_a = Lease("a", T0)
    with caplog.at_level(logging.WARNING):
        records = _both(
            pair,
            lambda s: s.record_polls(
                [
                    PollIntent(a1.model_copy(update={"etag": '"a1"'}), lease=lease_a),
                    PollIntent(
                        a2.model_copy(update={"etag": '"a2"'}),
                        items=[item(1), item(2)],
                        lease=lease_a,
                    ),
                    PollIntent(a3.model_copy(update={"etag": '"a3"'}), lease=lease_a),
                ]
            ),
        )
    assert [(r.stale, r.new_items) for r in records] == [
        (True, 0),
        (True, 1),
        (False, 0),
    ]
    stale = [r for r in caplog.records if "outlived its lease" in r.getMessage()]
    assert {r.name for r in stale} == {"worker.store.fastsqlite", "worker.store.sql"}
    assert len(stale) == 4  # two feeds, each store
    assert [f.etag for f in _both(pair, lambda s: s.list_feeds())] == [
        '"b1"',
        '"b2"',
        '"a3"',
    ]
    _same_tables(pair)
