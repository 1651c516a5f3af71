"""Work that outlived its worker, over every store: a poll recorded after its lease
was lost, a scheduled digest run whose sender died, a config feed that moved."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import func, insert, inspect, select

from worker.errors import NotFoundError
from worker.models import Feed, FeedStatus
from worker.store.base import DigestRun, Lease, PollIntent
from worker.store.schema import (
    alerts,
    deliveries,
    digest_runs,
    feeds,
    include_name,
    metadata,
)
from worker.store.sql import MIGRATIONS_DIR, SqlStore

from .helpers import T0, at, feed, item, poll, story

A, B = "host-a:1", "host-b:1"
STALE = "outlived its lease"


def _count(store: SqlStore, table: object) -> int:
    with store.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(table)) or 0)  # type: ignore[arg-type]


def _state(fd: Feed, tag: str, when: float) -> Feed:
    """The feed as a poll at ``at(when)`` leaves it, marked by ``tag``."""
    return fd.model_copy(
        update={
            "status": FeedStatus.ACTIVE,
            "etag": f'"{tag}"',
            "last_modified": f"modified {tag}",
            "body_hash": f"hash-{tag}",
            "last_checked_at": at(when),
            "next_check_at": at(when + 900),
            "last_error": None,
            "error_count": 0,
        }
    )


def _record(store: SqlStore, intent: PollIntent, batched: bool) -> bool:
    """Record one intent, alone or through the batched path; True if stale."""
    if batched:
        [record] = store.record_polls([intent])
    else:
        record = store.record_poll(intent)
    return record.stale


@pytest.mark.parametrize("batched", [False, True], ids=["record_poll", "record_polls"])
def test_a_poll_recorded_after_another_claim_keeps_the_newer_state(
    open_stores: Callable[[], SqlStore],
    batched: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    worker_a, worker_b = open_stores(), open_stores()
    fd = worker_a.add_feed(feed(1))
    # A claims with a short lease; its poll is slow.
    [claimed_a] = worker_a.claim_due_feeds(A, T0, 10, 30)
    # The lease expires; B claims the feed, polls it and records at once.
    [claimed_b] = worker_b.claim_due_feeds(B, at(31), 10, 30)
    newer = _state(claimed_b, "b", 31)
    assert not _record(worker_b, PollIntent(newer, lease=Lease(B, at(31))), batched)

    # A records its older poll afterwards, with an item B did not see.
    older = _state(claimed_a, "a", 0).model_copy(
        update={"status": FeedStatus.ERROR, "last_error": "slow", "error_count": 3}
    )
    late = PollIntent(older, items=[item(1)], lease=Lease(A, T0))
    with caplog.at_level(logging.WARNING):
        assert _record(worker_a, late, batched)

    stored = worker_b.get_feed(fd.url)
    assert stored == newer.model_copy(update={"id": fd.id})
    assert worker_b.count_items() == 1, "the stale poll's items are kept"
    [warning] = [r for r in caplog.records if STALE in r.getMessage()]
    assert warning.levelno == logging.WARNING
    assert fd.url in warning.getMessage() and "released" in warning.getMessage()


@pytest.mark.parametrize("batched", [False, True], ids=["record_poll", "record_polls"])
def test_a_poll_recorded_while_another_holds_the_feed_changes_nothing_of_it(
    store: SqlStore, batched: bool
) -> None:
    fd = store.add_feed(feed(1))
    [claimed_a] = store.claim_due_feeds(A, T0, 10, 30)
    [claimed_b] = store.claim_due_feeds(B, at(31), 10, 30)
    assert _record(
        store, PollIntent(_state(claimed_a, "a", 0), lease=Lease(A, T0)), batched
    )
    # A's record neither wrote its state nor released B's lease.
    assert store.claim_due_feeds(A, at(32), 10, 30, all_feeds=True) == []
    assert store.get_feed(fd.url).etag is None
    newer = _state(claimed_b, "b", 31)
    assert not _record(store, PollIntent(newer, lease=Lease(B, at(31))), batched)
    assert store.get_feed(fd.url).etag == '"b"'


def test_the_same_worker_claiming_again_is_another_claim(store: SqlStore) -> None:
    # A poll outlives its lease; the same worker takes the feed again (a WebSub
    # push): the first poll's record must not undo the second's claim.
    fd = store.add_feed(feed(1))
    assert fd.id is not None
    [first] = store.claim_due_feeds(A, T0, 10, 30)
    second = store.claim_feed(fd.id, A, at(40), 30)
    assert second is not None
    late = store.record_poll(PollIntent(_state(first, "first", 0), lease=Lease(A, T0)))
    assert late.stale
    assert store.claim_feed(fd.id, B, at(41), 30) is None, "still the push's"
    push = PollIntent(_state(second, "push", 40), lease=Lease(A, at(40)))
    assert not store.record_poll(push).stale
    assert store.get_feed(fd.url).etag == '"push"'


def test_a_lease_that_ran_out_unclaimed_still_records(store: SqlStore) -> None:
    fd = store.add_feed(feed(1))
    [claimed] = store.claim_due_feeds(A, T0, 10, 30)
    late = PollIntent(_state(claimed, "a", 0), lease=Lease(A, T0))
    assert not store.record_polls([late])[0].stale
    assert store.get_feed(fd.url).etag == '"a"'
    assert store.claim_due_feeds(B, T0, 10, 30, all_feeds=True) != [], "released"


def test_a_stale_poll_stores_nothing_twice(store: SqlStore) -> None:
    fd = store.add_feed(feed(1))
    st = story()
    [claimed_a] = store.claim_due_feeds(A, T0, 10, 30)
    [claimed_b] = store.claim_due_feeds(B, at(31), 10, 30)
    # Both polls saw item 1 and raised the same alert for it; A also saw item 2.
    b = poll(claimed_b, [item(1)], st=st, alert_id="alert-1")
    store.record_poll(
        PollIntent(_state(b.feed, "b", 31), *_rest(b), lease=Lease(B, at(31)))
    )
    a = poll(claimed_a, [item(1), item(2)], st=st, alert_id="alert-1")
    records = store.record_polls(
        [PollIntent(_state(a.feed, "a", 0), *_rest(a), lease=Lease(A, T0))]
    )
    assert [(r.stale, r.new_items, r.new_alerts) for r in records] == [(True, 1, 0)]
    assert store.count_items() == 2
    assert _count(store, alerts) == 1
    assert _count(store, deliveries) == 2  # one per channel, once
    assert store.get_feed(fd.url).etag == '"b"'


def _rest(intent: PollIntent) -> tuple[object, ...]:
    return (intent.items, intent.decisions, intent.story_links, intent.alerts)


def test_a_leased_record_of_an_unknown_feed_is_not_found(store: SqlStore) -> None:
    ghost = Feed(id=404, url="http://127.0.0.1:9/ghost.xml")
    with pytest.raises(NotFoundError, match="ghost"):
        store.record_poll(PollIntent(ghost, lease=Lease(A, T0)))
    with pytest.raises(NotFoundError):
        store.record_polls([PollIntent(ghost, lease=Lease(A, T0))])


# -- scheduled digest runs ------------------------------------------------------------


def test_unsent_digest_runs_are_the_stale_unsent_ones_in_the_horizon(
    store: SqlStore,
) -> None:
    def claim(name: str, run: str, when: float, end: float) -> None:
        assert store.claim_digest_run(
            name, run, A, at(when), since=at(end - 86400), until=at(end)
        )

    claim("daily", "dead", 0, 0)  # claimed at the fire time, never sent
    claim("daily", "sent", 0, -3600)
    store.finish_digest_run("daily", "sent", at(60))
    claim("daily", "fresh", 3100, 3100)  # claimed within the lease
    claim("daily", "ancient", -2 * 86400, -2 * 86400)  # past the horizon
    store.claim_digest_run("hourly", "no-period", A, at(0))  # from before 0006

    runs = store.unsent_digest_runs(at(3600 - 600), at(3600 - 86400))
    assert [(r.schedule, r.digest_id) for r in runs] == [("daily", "dead")]
    [run] = runs
    assert (run.worker_id, run.claimed_at) == (A, T0)
    assert (run.since, run.until) == (at(-86400), T0)
    # A takeover keeps the period and starts a new lease.
    assert store.claim_digest_run("daily", "dead", B, at(3600), lease_seconds=600)
    taken = [
        r for r in store.unsent_digest_runs(at(3600), at(0)) if r.digest_id == "dead"
    ]
    assert taken == [
        DigestRun(
            schedule="daily",
            digest_id="dead",
            worker_id=B,
            claimed_at=at(3600),
            since=at(-86400),
            until=T0,
        )
    ]


# -- config feeds -------------------------------------------------------------------


def test_a_moved_config_feed_is_matched_by_its_configured_url(
    store: SqlStore,
) -> None:
    configured = feed(1, interval=600, title="Wire")
    assert store.add_config_feeds([configured]) == 1
    [stored] = store.list_feeds()
    assert stored.id is not None
    moved = "http://127.0.0.1:8000/moved.xml"
    assert store.move_feed(stored.id, moved)

    # The next start lists the old URL again, with a new interval.
    assert store.add_config_feeds([feed(1, interval=300, title=None), feed(2)]) == 2
    one, two = store.list_feeds()
    assert (one.id, one.url, one.interval, one.title) == (stored.id, moved, 300, "Wire")
    assert two.url == feed(2).url
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(feeds.c.url, feeds.c.config_url).order_by(feeds.c.id)
        ).all()
    assert [tuple(r) for r in rows] == [
        (moved, feed(1).url),
        (feed(2).url, feed(2).url),
    ]


def test_a_feed_already_at_the_configured_url_becomes_the_configured_one(
    store: SqlStore,
) -> None:
    by_hand = store.add_feed(feed(1, interval=60))
    store.update_feed_state(by_hand.model_copy(update={"etag": '"kept"'}))
    # Listed twice: the last entry's settings win, as with one add per entry.
    store.add_config_feeds([feed(1, interval=120), feed(1, interval=900, tags=("a",))])
    [stored] = store.list_feeds()
    assert (stored.id, stored.interval, stored.tags) == (by_hand.id, 900, ("a",))
    assert stored.etag == '"kept"', "poll state is kept"
    assert stored.id is not None
    store.move_feed(stored.id, "http://127.0.0.1:8000/moved.xml")
    store.add_config_feeds([feed(1)])
    assert [f.id for f in store.list_feeds()] == [by_hand.id]
    assert store.add_config_feeds([]) == 0


# -- migration 0006 on a database of the previous revision ---------------------------


def test_upgrade_from_0005_keeps_rows_and_matches_moved_config_feeds(
    store: SqlStore,
) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with store.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0005_digest_runs")
        assert "config_url" not in {
            c["name"] for c in inspect(conn).get_columns("feeds")
        }
    # A database of the previous release: a config feed, its item, a digest run.
    old = feed(1, title="Wire")
    stored = store.add_feed(old)
    store.record_poll(PollIntent(stored, items=[item(1)]))
    with store.engine.begin() as conn:
        conn.execute(
            insert(digest_runs).values(
                schedule="daily", digest_id="dg_1", worker_id=A, claimed_at=T0
            )
        )
    assert not store.schema_is_current()

    store.migrate()
    assert store.schema_is_current()
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": include_name})
        assert compare_metadata(context, metadata) == []
    [kept] = store.list_feeds()
    assert kept == stored
    assert store.count_items() == 1
    assert store.unsent_digest_runs(at(3600), at(-86400)) == [], "no period: skipped"

    # The first sync marks the feed at the configured URL; after a move, the
    # next sync still finds it.
    store.add_config_feeds([old])
    assert kept.id is not None
    store.move_feed(kept.id, "http://127.0.0.1:8000/moved.xml")
    store.add_config_feeds([old])
    assert [(f.id, f.url) for f in store.list_feeds()] == [
        (kept.id, "http://127.0.0.1:8000/moved.xml")
    ]
