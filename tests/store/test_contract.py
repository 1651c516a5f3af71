"""The Store contract, run against every implementation (SQLite and PostgreSQL)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from worker.errors import NotFoundError, StoreError
from worker.models import DeliveryStatus, Event, EventStatus, Feed, FeedStatus
from worker.store import Store
from worker.store.base import AlertRecord, DeliveryOutcome, PollIntent, StoryLink
from worker.store.schema import (
    deliveries,
    include_name,
    matches,
    metadata,
    stories,
    story_items,
)
from worker.store.sql import MIGRATIONS_DIR, SqlStore

from .helpers import T0, alert, at, decision, feed, item, poll, story

W1, W2 = "worker-1", "worker-2"
# What a StoreError wraps: SQLAlchemy's error, or sqlite3's own (FastSQLiteStore).
DRIVER_ERRORS = (SQLAlchemyError, sqlite3.Error)


def _count(store: SqlStore, table: object) -> int:
    with store.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(table)) or 0)  # type: ignore[arg-type]


# -- lifecycle ------------------------------------------------------------------------


def test_is_a_store(store: SqlStore) -> None:
    assert isinstance(store, Store)


def test_migrate_is_idempotent(store: SqlStore) -> None:
    store.migrate()
    store.migrate()
    with store.engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    heads = ScriptDirectory(str(MIGRATIONS_DIR)).get_heads()
    assert heads == [current]
    assert store.list_feeds() == []


def test_migrated_schema_matches_metadata(store: SqlStore) -> None:
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": include_name})
        diffs = compare_metadata(context, metadata)
    assert diffs == []


# -- feeds ----------------------------------------------------------------------------


def test_add_get_list_remove_feed(store: SqlStore) -> None:
    a = store.add_feed(feed(1, interval=600, tags=("news",)))
    b = store.add_feed(feed(2))
    assert a.id is not None and b.id is not None and a.id != b.id
    assert store.get_feed(a.url) == a
    assert store.feed_by_id(a.id) == a
    assert [f.url for f in store.list_feeds()] == [a.url, b.url]

    store.update_feed_state(a.model_copy(update={"etag": '"e1"', "title": "Outlet"}))
    again = store.add_feed(feed(1, interval=300, tags=("asia", "news")))
    assert again.id == a.id
    assert (again.interval, again.tags) == (300, ("asia", "news"))
    assert again.etag == '"e1"', "re-adding keeps poll state"
    assert again.title == "Outlet", "re-adding without a title keeps the known one"

    store.remove_feed(a.url)
    with pytest.raises(NotFoundError) as info:
        store.get_feed(a.url)
    assert a.url in str(info.value)
    with pytest.raises(NotFoundError):
        store.remove_feed(a.url)
    with pytest.raises(NotFoundError):
        store.feed_by_id(a.id)
    with pytest.raises(NotFoundError):
        store.update_feed_state(a)
    assert [f.url for f in store.list_feeds()] == [b.url]


def test_claim_due_feeds_leases_until_expiry(store: SqlStore) -> None:
    a = store.add_feed(feed(1))
    b = store.add_feed(feed(2))
    claimed = store.claim_due_feeds(W1, T0, 10, 60)
    assert [f.id for f in claimed] == [a.id, b.id]
    assert store.claim_due_feeds(W2, at(30), 10, 60) == []
    assert store.claim_due_feeds(W2, at(59), 10, 60, all_feeds=True) == []
    after = store.claim_due_feeds(W2, at(61), 10, 60)
    assert [f.id for f in after] == [a.id, b.id]


def test_claim_due_feeds_respects_schedule_status_and_limit(store: SqlStore) -> None:
    later = store.add_feed(feed(1, next_check_at=at(600)))
    soon = store.add_feed(feed(2, next_check_at=at(-60)))
    never = store.add_feed(feed(3))
    store.add_feed(feed(4, status=FeedStatus.DISABLED))

    first = store.claim_due_feeds(W1, T0, 1, 60)
    assert [f.id for f in first] == [never.id], "never-checked feeds come first"
    second = store.claim_due_feeds(W1, T0, 10, 60)
    assert [f.id for f in second] == [soon.id], "a live lease blocks its owner too"
    assert store.claim_due_feeds(W2, T0, 10, 60) == []
    forced = store.claim_due_feeds(W2, T0, 10, 60, all_feeds=True)
    assert [f.id for f in forced] == [later.id], "all_feeds skips leases and disabled"
    assert store.claim_due_feeds(W2, T0, 0, 60) == []


def test_update_feed_state_releases_lease(store: SqlStore) -> None:
    fd = store.add_feed(feed(1))
    [claimed] = store.claim_due_feeds(W1, T0, 10, 600)
    store.update_feed_state(
        claimed.model_copy(
            update={
                "status": FeedStatus.ERROR,
                "last_error": "timeout",
                "error_count": 1,
                "last_checked_at": T0,
                "next_check_at": at(-1),
            }
        )
    )
    [again] = store.claim_due_feeds(W2, T0, 10, 600)
    assert again.id == fd.id
    assert (again.status, again.last_error, again.error_count) == (
        FeedStatus.ERROR,
        "timeout",
        1,
    )


# -- poll -----------------------------------------------------------------------------


def test_record_poll_writes_once(store: SqlStore) -> None:
    fd = store.add_feed(feed(1))
    [claimed] = store.claim_due_feeds(W1, T0, 10, 600)
    items = [item(n) for n in range(3)]
    intent = poll(claimed, items, st=story(), alert_id="alert-1")

    record = store.record_poll(intent)
    assert (record.new_items, record.new_alerts, record.alert_ids) == (
        3,
        1,
        ("alert-1",),
    )
    assert store.count_items() == 3
    assert store.known_item_ids(fd.id or 0, ["guid:0", "guid:2", "guid:9"]) == {
        "guid:0",
        "guid:2",
    }
    row = store.get_alert("alert-1")
    assert sorted(d.channel for d in row.deliveries) == ["console", "webhook"]
    assert all(d.status is DeliveryStatus.PENDING for d in row.deliveries)
    assert all(d.next_attempt_at == T0 for d in row.deliveries)
    assert row.alert == intent.alerts[0].alert

    stored = store.get_feed(fd.url)
    assert stored.etag == '"v2"'
    assert store.claim_due_feeds(W2, T0, 10, 600) != [], "record_poll frees the lease"

    repeat = store.record_poll(intent)
    assert (repeat.new_items, repeat.new_alerts, repeat.alert_ids) == (0, 0, ())
    assert store.count_items() == 3
    assert len(store.get_alert("alert-1").deliveries) == 2
    assert _count(store, deliveries) == 2
    assert _count(store, matches) == 1
    assert _count(store, story_items) == 1


def test_record_poll_of_a_thousand_items(store: SqlStore) -> None:
    fd = store.add_feed(feed(1))
    items = [item(n) for n in range(1000)]
    intent = PollIntent(
        feed=fd,
        items=items,
        decisions=[decision(i.id) for i in items[:200]],
    )
    assert store.record_poll(intent).new_items == 1000
    more = PollIntent(feed=fd, items=[item(n) for n in range(990, 1010)])
    assert store.record_poll(more).new_items == 10
    assert store.count_items() == 1010
    assert store.item_count_by_feed() == {fd.url: 1010}


def test_decision_for_an_earlier_item_is_linked(store: SqlStore) -> None:
    fd = store.add_feed(feed(1))
    store.record_poll(PollIntent(feed=fd, items=[item(1)]))
    st = story()
    later = PollIntent(
        feed=fd,
        decisions=[decision("guid:1")],
        story_links=[StoryLink(story=st, item_id="guid:1", feed_id=fd.id or 0)],
        alerts=[AlertRecord(alert=alert("a1", st, item(1)), channels=["console"])],
    )
    assert store.record_poll(later).new_alerts == 1
    [row] = store.stories(at(-3600))
    assert [s.item_id for s in row.story.sources] == ["guid:1"]


def test_alert_routed_to_two_channels_makes_two_deliveries(store: SqlStore) -> None:
    fd = store.add_feed(feed(1))
    store.record_poll(poll(fd, [item(1)], st=story(), alert_id="a1"))
    claimed = store.claim_deliveries(W1, T0, 10, 60)
    assert sorted(c.delivery.channel for c in claimed) == ["console", "webhook"]
    assert {c.alert.id for c in claimed} == {"a1"}


def test_failed_poll_leaves_nothing_half_written(store: SqlStore) -> None:
    fd = store.add_feed(feed(1))
    [claimed] = store.claim_due_feeds(W1, T0, 10, 600)
    bad = poll(
        claimed, [item(1), item(2)], st=story(), alert_id="a1", channels=("x", "x")
    )
    with pytest.raises(StoreError) as info:
        store.record_poll(bad)
    assert "record_poll" in str(info.value)
    assert isinstance(info.value.__cause__, DRIVER_ERRORS)

    assert store.count_items() == 0
    assert store.list_alerts() == []
    assert store.stories(at(-3600)) == []
    assert store.get_feed(fd.url).etag is None, "feed state rolled back"
    assert store.claim_due_feeds(W2, T0, 10, 600) == [], "lease still held"


def test_decision_for_unknown_item_is_refused(store: SqlStore) -> None:
    fd = store.add_feed(feed(1))
    intent = PollIntent(feed=fd, items=[item(1)], decisions=[decision("guid:404")])
    with pytest.raises(StoreError, match="guid:404"):
        store.record_poll(intent)
    assert store.count_items() == 0


def test_naive_datetime_is_refused_with_a_store_error(store: SqlStore) -> None:
    naive = datetime(2024, 5, 1, 12, 0)
    fd = store.add_feed(feed(1))
    with pytest.raises(StoreError, match="naive datetime"):
        store.update_feed_state(fd.model_copy(update={"next_check_at": naive}))


def test_datetimes_come_back_aware_utc(store: SqlStore) -> None:
    tokyo = timezone(timedelta(hours=9))
    when = datetime(2024, 5, 1, 21, 30, 15, 123456, tzinfo=tokyo)
    fd = store.add_feed(feed(1, next_check_at=when, last_checked_at=when))
    got = store.get_feed(fd.url)
    assert got.next_check_at == when
    assert got.next_check_at is not None and got.next_check_at.tzinfo is UTC
    assert got.next_check_at.hour == 12

    store.record_poll(
        poll(
            fd,
            [item(1, published=when)],
            st=story(first=when),
            alert_id="a1",
            created_at=when,
        )
    )
    [st] = store.recent_stories(T0 - timedelta(days=1))
    assert st.first_seen.tzinfo is UTC and st.first_seen == when
    published = st.sources[0].published
    assert published is not None and published.tzinfo is UTC and published == when
    [row] = store.list_alerts()
    assert row.alert.created_at == when
    assert all(
        d.next_attempt_at and d.next_attempt_at.tzinfo is UTC for d in row.deliveries
    )


# -- outbox ---------------------------------------------------------------------------


def test_claim_and_record_delivery_ok_retry_dead(store: SqlStore) -> None:
    fd = store.add_feed(feed(1))
    intent = poll(fd, [item(1)], st=story(), alert_id="a1", channels=("c1", "c2", "c3"))
    store.record_poll(intent)

    claimed = store.claim_deliveries(W1, T0, 10, 60)
    assert [c.delivery.channel for c in claimed] == ["c1", "c2", "c3"]
    assert claimed[0].alert == intent.alerts[0].alert
    ok, retry, dead = (c.delivery.id or 0 for c in claimed)
    assert store.claim_deliveries(W2, T0, 10, 60) == [], "leased"

    store.record_delivery(DeliveryOutcome(ok, True, at(1)))
    store.record_delivery(DeliveryOutcome(retry, False, at(1), "HTTP 503", at(300)))
    store.record_delivery(DeliveryOutcome(dead, False, at(1), "HTTP 404"))

    by_channel = {d.channel: d for d in store.get_alert("a1").deliveries}
    assert by_channel["c1"].status is DeliveryStatus.DELIVERED
    assert by_channel["c1"].delivered_at == at(1)
    assert (by_channel["c2"].status, by_channel["c2"].last_error) == (
        DeliveryStatus.PENDING,
        "HTTP 503",
    )
    assert by_channel["c2"].next_attempt_at == at(300)
    assert (by_channel["c3"].status, by_channel["c3"].last_error) == (
        DeliveryStatus.DEAD,
        "HTTP 404",
    )
    assert {d.attempts for d in by_channel.values()} == {1}

    assert store.claim_deliveries(W2, at(299), 10, 60) == [], "retry not due yet"
    [again] = store.claim_deliveries(W2, at(300), 10, 60)
    assert again.delivery.channel == "c2" and again.delivery.attempts == 1
    store.record_delivery(DeliveryOutcome(retry, True, at(301)))
    assert store.get_alert("a1").deliveries[1].attempts == 2

    with pytest.raises(NotFoundError):
        store.record_delivery(DeliveryOutcome(999_999, True, at(1)))


def test_delivery_lease_expires(store: SqlStore) -> None:
    fd = store.add_feed(feed(1))
    store.record_poll(poll(fd, [item(1)], st=story(), alert_id="a1", channels=("c1",)))
    [first] = store.claim_deliveries(W1, T0, 10, 60)
    assert store.claim_deliveries(W2, at(59), 10, 60) == []
    [second] = store.claim_deliveries(W2, at(60), 10, 60)
    assert second.delivery.id == first.delivery.id


def test_redeliver_and_failed_only(store: SqlStore) -> None:
    fd = store.add_feed(feed(1))
    store.record_poll(
        poll(fd, [item(1)], st=story("s1"), alert_id="a1", channels=("c1", "c2"))
    )
    store.record_poll(
        poll(
            fd,
            [item(2)],
            st=story("s2"),
            alert_id="a2",
            channels=("c1",),
            created_at=at(5),
        )
    )
    claimed = {
        (c.delivery.alert_id, c.delivery.channel): c
        for c in store.claim_deliveries(W1, at(10), 10, 60)
    }
    for (aid, channel), c in claimed.items():
        ok = (aid, channel) != ("a1", "c2")
        store.record_delivery(
            DeliveryOutcome(c.delivery.id or 0, ok, at(11), None if ok else "boom")
        )

    assert [r.alert.id for r in store.list_alerts()] == ["a2", "a1"]
    [failed] = store.list_alerts(failed_only=True)
    assert failed.alert.id == "a1"
    assert {d.channel: d.status for d in failed.deliveries} == {
        "c1": DeliveryStatus.DELIVERED,
        "c2": DeliveryStatus.DEAD,
    }

    assert store.redeliver("a1", at(20)) == 2
    row = store.get_alert("a1")
    assert all(
        (d.status, d.attempts, d.next_attempt_at) == (DeliveryStatus.PENDING, 0, at(20))
        for d in row.deliveries
    )
    assert store.list_alerts(failed_only=True) == []
    assert len(store.claim_deliveries(W2, at(20), 10, 60)) == 2
    with pytest.raises(NotFoundError):
        store.redeliver("nope", at(20))
    with pytest.raises(NotFoundError):
        store.get_alert("nope")


def test_list_alerts_since_and_limit(store: SqlStore) -> None:
    fd = store.add_feed(feed(1))
    for n in range(5):
        store.record_poll(
            poll(
                fd,
                [item(n)],
                st=story(f"s{n}"),
                alert_id=f"a{n}",
                created_at=at(n * 60),
            )
        )
    assert [r.alert.id for r in store.list_alerts(limit=2)] == ["a4", "a3"]
    assert [r.alert.id for r in store.list_alerts(at(120))] == ["a4", "a3", "a2"]


def test_concurrent_delivery_claims_never_overlap(
    store: SqlStore,
    open_stores: Callable[[], SqlStore],
    caplog: pytest.LogCaptureFixture,
) -> None:
    fd = store.add_feed(feed(1))
    channels = tuple(f"c{n}" for n in range(20))
    for n in range(6):
        store.record_poll(
            poll(fd, [item(n)], st=story(f"s{n}"), alert_id=f"a{n}", channels=channels)
        )
    total = 6 * len(channels)
    workers = [open_stores(), open_stores()]
    got: list[list[int]] = [[], []]
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def run(index: int) -> None:
        try:
            workers[index].count_items()  # connect before the race starts
            barrier.wait(timeout=10)
            for _ in range(total):
                batch = workers[index].claim_deliveries(f"w{index}", T0, 3, 600)
                if not batch:
                    return
                got[index].extend(c.delivery.id or 0 for c in batch)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert not set(got[0]) & set(got[1]), "two workers claimed the same delivery"
    assert len(got[0]) + len(got[1]) == total
    # Claims wait for each other (BEGIN IMMEDIATE, SKIP LOCKED); none should fail.
    assert [r.getMessage() for r in caplog.records if "retry" in r.getMessage()] == []


def test_concurrent_feed_claims_never_overlap(
    store: SqlStore, open_stores: Callable[[], SqlStore]
) -> None:
    for n in range(60):
        store.add_feed(feed(n))
    workers = [open_stores(), open_stores()]
    got: list[list[int]] = [[], []]
    barrier = threading.Barrier(2)

    def run(index: int) -> None:
        workers[index].count_items()  # connect before the race starts
        barrier.wait(timeout=10)
        for _ in range(60):
            batch = workers[index].claim_due_feeds(f"w{index}", T0, 2, 600)
            if not batch:
                return
            got[index].extend(f.id or 0 for f in batch)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not set(got[0]) & set(got[1])
    assert len(got[0]) + len(got[1]) == 60


# -- stories and queries --------------------------------------------------------------


def test_stories_with_sources_from_two_outlets(store: SqlStore) -> None:
    one = store.add_feed(feed(1))
    two = store.add_feed(feed(2))
    st = story("trilateral", "China, Japan, South Korea to revive summit", T0)
    store.record_poll(poll(one, [item(1, source="Outlet A")], st=st, alert_id="a1"))

    update = story(
        "trilateral",
        "A different later title",
        T0,
        at(3600),
        event=Event(status=EventStatus.HELD),
    )
    second = PollIntent(
        feed=two,
        items=[item(2, source="Outlet B")],
        decisions=[decision("guid:2", rules=("visit.leader",), topics=("visit",))],
        story_links=[StoryLink(story=update, item_id="guid:2", feed_id=two.id or 0)],
    )
    store.record_poll(second)

    [row] = store.stories(T0 - timedelta(hours=1))
    assert row.story.title == st.title, "first title kept"
    assert (row.story.first_seen, row.story.last_seen) == (T0, at(3600))
    assert row.story.event is not None and row.story.event.status is EventStatus.HELD
    assert [(s.item_id, s.source, s.feed_url) for s in row.story.sources] == [
        ("guid:1", "Outlet A", one.url),
        ("guid:2", "Outlet B", two.url),
    ]
    assert row.topics == ("summit", "visit")
    assert row.rules == ("summit.trilateral", "visit.leader")
    assert [a.id for a in row.alerts] == ["a1"]

    stale = story("trilateral", "x", T0, at(10))
    store.record_poll(
        PollIntent(
            feed=two,
            story_links=[StoryLink(story=stale, item_id="guid:2", feed_id=two.id or 0)],
        )
    )
    assert store.recent_stories(at(3600))[0].last_seen == at(3600), (
        "last_seen never goes back"
    )

    assert store.stories(at(7200)) == []
    assert store.stories(T0 - timedelta(days=2), T0 - timedelta(days=1)) == []
    [recent] = store.recent_stories(at(-60))
    assert recent.id == "trilateral" and len(recent.sources) == 2


def test_remove_feed_keeps_items_and_sources(store: SqlStore) -> None:
    fd = store.add_feed(feed(1))
    store.record_poll(poll(fd, [item(1), item(2)], st=story(), alert_id="a1"))
    store.remove_feed(fd.url)
    assert store.count_items() == 2
    assert store.item_count_by_feed() == {}
    [st] = store.recent_stories(at(-60))
    assert st.sources[0].feed_url == fd.url
    assert store.get_alert("a1").alert.id == "a1"


def test_delete_items_before_keeps_alerted_stories(store: SqlStore) -> None:
    fd = store.add_feed(feed(1))
    store.record_poll(poll(fd, [item(1), item(2)], st=story("alerted"), alert_id="a1"))
    quiet = story("quiet")
    store.record_poll(
        PollIntent(
            feed=fd,
            items=[item(3)],
            story_links=[StoryLink(story=quiet, item_id="guid:3", feed_id=fd.id or 0)],
        )
    )
    assert store.item_count_by_feed() == {fd.url: 3}
    deleted = store.delete_items_before(datetime.now(UTC) + timedelta(minutes=1))
    assert deleted == 2, "guid:1 is the alerted story's source"
    assert store.count_items() == 1
    assert [s.id for s in store.recent_stories(T0 - timedelta(days=1))] == ["alerted"]
    assert _count(store, stories) == 1
    assert store.delete_items_before(T0) == 0


def test_store_error_wraps_driver_errors(
    store_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from worker.store import open_store

    if store_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path_factory.mktemp('empty') / 'unmigrated.db'}"
    else:
        # A search_path naming no schema: the tables are not there.
        url = store_url + "?options=-csearch_path%3Dnowhere"
    with open_store(url) as unmigrated, pytest.raises(StoreError) as info:
        unmigrated.list_feeds()
    assert "list_feeds failed on" in str(info.value)
    assert isinstance(info.value.__cause__, DRIVER_ERRORS)
    assert not isinstance(info.value, NotFoundError)


def test_feed_model_round_trips(store: SqlStore) -> None:
    original = Feed(
        url="http://127.0.0.1:8000/full.xml",
        title="Full",
        interval=120,
        tags=("a", "b"),
        status=FeedStatus.ERROR,
        etag='W/"x"',
        last_modified="Wed, 01 May 2024 12:00:00 GMT",
        body_hash="0" * 64,
        last_checked_at=T0,
        next_check_at=at(120),
        last_error="HTTP 500",
        error_count=3,
    )
    stored = store.add_feed(original)
    assert stored == original.model_copy(update={"id": stored.id})


# -- batched poll writes (fetching at scale) ---------------------------------------


def test_known_item_ids_many_answers_per_feed(store: SqlStore) -> None:
    a = store.add_feed(feed(1))
    b = store.add_feed(feed(2))
    store.record_poll(PollIntent(feed=a, items=[item(1), item(2)]))
    store.record_poll(PollIntent(feed=b, items=[item(2)]))
    assert a.id is not None and b.id is not None
    found = store.known_item_ids_many(
        {a.id: ["guid:1", "guid:2", "guid:3"], b.id: ["guid:1", "guid:2"], 999: []}
    )
    assert found == {a.id: {"guid:1", "guid:2"}, b.id: {"guid:2"}, 999: set()}


def test_record_polls_writes_many_feeds_in_order(store: SqlStore) -> None:
    store.add_feed(feed(1))
    store.add_feed(feed(2))
    store.add_feed(feed(3, title="Kept"))
    claimed = store.claim_due_feeds(W1, T0, 10, 600)
    by_url = {f.url: f for f in claimed}
    one, two, three = (by_url[feed(n).url] for n in (1, 2, 3))
    intents = [
        poll(one, [item(1), item(2)], st=story(), alert_id="alert-1"),
        PollIntent(
            feed=two.model_copy(
                update={"etag": '"e2"', "next_check_at": at(60), "title": "Two"}
            )
        ),
        PollIntent(
            feed=three.model_copy(
                update={
                    "status": FeedStatus.ERROR,
                    "last_error": "boom",
                    "error_count": 2,
                }
            )
        ),
    ]
    records = store.record_polls(intents)
    assert [(r.new_items, r.new_alerts) for r in records] == [(2, 1), (0, 0), (0, 0)]
    assert store.get_feed(two.url).etag == '"e2"'
    assert store.get_feed(two.url).next_check_at == at(60)
    assert store.get_feed(two.url).title == "Two"
    kept = store.get_feed(three.url)
    assert (kept.title, kept.status, kept.last_error, kept.error_count) == (
        "Kept",
        FeedStatus.ERROR,
        "boom",
        2,
    )
    # every lease is released
    assert len(store.claim_due_feeds(W2, T0, 10, 600, all_feeds=True)) == 3
    assert store.record_polls([]) == []


def test_record_polls_is_all_or_nothing(store: SqlStore) -> None:
    good = store.add_feed(feed(1))
    bad = store.add_feed(feed(2))
    intents = [
        PollIntent(feed=good, items=[item(1)]),
        PollIntent(feed=bad, items=[item(2)], decisions=[decision("guid:404")]),
    ]
    with pytest.raises(StoreError):
        store.record_polls(intents)
    assert store.count_items() == 0


def test_move_feed(store: SqlStore) -> None:
    a = store.add_feed(feed(1))
    b = store.add_feed(feed(2))
    assert a.id is not None and b.id is not None
    assert store.move_feed(a.id, "http://127.0.0.1:8000/moved.xml") is True
    assert store.get_feed("http://127.0.0.1:8000/moved.xml").id == a.id
    with pytest.raises(NotFoundError):
        store.get_feed(a.url)
    assert store.move_feed(a.id, b.url) is False  # taken: nothing changes
    assert store.get_feed("http://127.0.0.1:8000/moved.xml").id == a.id
    with pytest.raises(NotFoundError):
        store.move_feed(12345, "http://127.0.0.1:8000/x.xml")


def test_recent_item_counts(store: SqlStore) -> None:
    a = store.add_feed(feed(1))
    b = store.add_feed(feed(2))
    assert a.id is not None and b.id is not None
    old = [item(n, published=at(-30 * 86400)) for n in range(3)]
    new = [item(10 + n, published=at(-3600)) for n in range(4)]
    undated = [item(20, published=None)]  # first seen now, so recent
    store.record_poll(PollIntent(feed=a, items=[*old, *new, *undated]))
    counts = store.recent_item_counts([a.id, b.id], at(-7 * 86400))
    assert counts == {a.id: 5, b.id: 0}


# -- scheduled digest runs ------------------------------------------------------------


def test_claim_digest_run_goes_to_the_first_claimer_only(store: SqlStore) -> None:
    assert store.claim_digest_run("daily", "dg_1", W1, T0) is True
    assert store.claim_digest_run("daily", "dg_1", W2, at(1)) is False
    assert store.claim_digest_run("daily", "dg_1", W1, at(2)) is False
    # another period, another schedule: separate runs
    assert store.claim_digest_run("daily", "dg_2", W2, at(3)) is True
    assert store.claim_digest_run("weekly", "dg_1", W2, at(4)) is True


def test_unsent_digest_run_is_taken_over_after_its_lease(store: SqlStore) -> None:
    assert store.claim_digest_run("daily", "dg_1", W1, T0, lease_seconds=600)
    assert not store.claim_digest_run("daily", "dg_1", W2, at(599), lease_seconds=600)
    assert store.claim_digest_run("daily", "dg_1", W2, at(600), lease_seconds=600)
    # the taker's claim is fresh: the first worker cannot take it back at once
    assert not store.claim_digest_run("daily", "dg_1", W1, at(601), lease_seconds=600)
    store.finish_digest_run("daily", "dg_1", at(700))
    # sent: never claimed again, however old the claim
    assert not store.claim_digest_run("daily", "dg_1", W1, at(86400))


def test_finish_digest_run_of_an_unclaimed_run_is_not_found(store: SqlStore) -> None:
    store.claim_digest_run("daily", "dg_1", W1, T0)
    with pytest.raises(NotFoundError, match="digest run"):
        store.finish_digest_run("daily", "dg_other", at(1))


def test_concurrent_digest_run_claims_have_one_winner(
    store: SqlStore, open_stores: Callable[[], SqlStore]
) -> None:
    workers = [open_stores() for _ in range(4)]
    got: list[bool] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(workers))

    def run(index: int) -> None:
        try:
            workers[index].count_items()  # connect before the race starts
            barrier.wait(timeout=10)
            got.append(
                workers[index].claim_digest_run("daily", "dg_1", f"w{index}", T0)
            )
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(workers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert sorted(got) == [False, False, False, True]


def test_concurrent_takeovers_of_a_dead_claim_have_one_winner(
    store: SqlStore, open_stores: Callable[[], SqlStore]
) -> None:
    assert store.claim_digest_run("daily", "dg_1", "dead", T0)
    workers = [open_stores() for _ in range(4)]
    got: list[bool] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(workers))

    def run(index: int) -> None:
        try:
            workers[index].count_items()
            barrier.wait(timeout=10)
            got.append(
                workers[index].claim_digest_run("daily", "dg_1", f"w{index}", at(3600))
            )
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(workers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert sorted(got) == [False, False, False, True]
