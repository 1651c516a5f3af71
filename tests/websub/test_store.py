"""The subscription methods of the SQL store, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from worker.errors import NotFoundError
from worker.models import Feed
from worker.store.base import SubscriptionState
from worker.store.sql import SqlStore

T0 = datetime(2026, 5, 1, 12, tzinfo=UTC)
HUB = "https://hub.example/"
TOPIC = "https://wire.example/feed"
S = SubscriptionState


def _feed(store: SqlStore, n: int = 1) -> int:
    stored = store.add_feed(Feed(url=f"https://wire.example/{n}.xml"))
    assert stored.id is not None
    return stored.id


def test_record_hubs_inserts_keeps_and_resets(store: SqlStore) -> None:
    a, b = _feed(store, 1), _feed(store, 2)
    assert store.record_hubs({a: (HUB, TOPIC), b: (HUB, TOPIC + "/b")}, T0) == 2
    assert [s.feed_id for s in store.list_subscriptions()] == [a, b]
    store.subscription_requested(a, "secret-a", T0)
    assert store.verify_subscription(a, TOPIC, 3600, T0)
    # the same pair again changes nothing: the verified subscription stays
    assert store.record_hubs({a: (HUB, TOPIC)}, T0 + timedelta(hours=1)) == 0
    kept = store.get_subscription(a)
    assert (kept.state, kept.secret) == (S.VERIFIED, "secret-a")
    # a new hub starts over
    later = T0 + timedelta(hours=2)
    assert store.record_hubs({a: ("https://hub2.example/", TOPIC)}, later) == 1
    moved = store.get_subscription(a)
    assert (moved.hub, moved.state, moved.secret) == (
        "https://hub2.example/",
        S.DISCOVERED,
        None,
    )
    assert moved.lease_expires_at is None and moved.created_at == T0
    assert moved.updated_at == later


def test_request_verify_deny_and_expire(store: SqlStore) -> None:
    fid = _feed(store)
    store.record_hubs({fid: (HUB, TOPIC)}, T0)
    # nothing asked yet: no verification, no denial
    assert not store.verify_subscription(fid, TOPIC, 3600, T0)
    assert not store.deny_subscription(fid, TOPIC, "no", T0)
    sub = store.subscription_requested(fid, "k", T0)
    assert (sub.state, sub.secret, sub.requested_at) == (S.PENDING, "k", T0)
    assert not store.verify_subscription(fid, TOPIC + "/other", 3600, T0)
    t1 = T0 + timedelta(minutes=1)
    assert store.verify_subscription(fid, TOPIC, 3600, t1)
    sub = store.get_subscription(fid)
    assert sub.state == S.VERIFIED and sub.requested_at is None
    assert (sub.lease_seconds, sub.lease_expires_at) == (3600, t1 + timedelta(hours=1))
    assert not store.verify_subscription(fid, TOPIC, 3600, t1)  # answered already
    # a renewal keeps it verified while it waits
    t2 = T0 + timedelta(minutes=50)
    assert store.subscription_requested(fid, "k", t2).state == S.VERIFIED
    store.subscription_failed(fid, "hub said 503", t2)
    assert store.get_subscription(fid).last_error == "hub said 503"
    assert store.expire_subscriptions(t1 + timedelta(minutes=59)) == 0
    assert store.expire_subscriptions(t1 + timedelta(hours=1)) == 1
    assert store.get_subscription(fid).state == S.EXPIRED
    # the renewal still awaited is verified late: live again
    t3 = t1 + timedelta(hours=2)
    assert store.verify_subscription(fid, TOPIC, 60, t3)
    assert store.get_subscription(fid).state == S.VERIFIED
    store.subscription_requested(fid, "k", t3)
    assert store.deny_subscription(fid, TOPIC, "topic gone", t3)
    denied = store.get_subscription(fid)
    assert denied.state == S.DENIED and denied.requested_at is None
    assert denied.last_error == "denied by the hub: topic gone"


def test_push_fed_feeds_live_and_not_silent(store: SqlStore) -> None:
    a, b, c = _feed(store, 1), _feed(store, 2), _feed(store, 3)
    store.record_hubs({a: (HUB, "ta"), b: (HUB, "tb"), c: (HUB, "tc")}, T0)
    for fid, topic in ((a, "ta"), (b, "tb")):
        store.subscription_requested(fid, "k", T0)
        assert store.verify_subscription(fid, topic, 10 * 86400, T0)
    store.record_push(b, T0 + timedelta(days=3))
    day = timedelta(days=1)
    # at T0+1h: both live (verified just now)
    assert store.push_fed_feeds(T0 + timedelta(hours=1), T0 - day) == {a, b}
    # two days on: a never pushed (silent), b pushed a day ago
    now = T0 + timedelta(days=4)
    assert store.push_fed_feeds(now, now - day) == {b}
    # past the lease: nobody
    now = T0 + timedelta(days=11)
    assert store.push_fed_feeds(now, T0) == set()


def test_claim_feed(store: SqlStore) -> None:
    fid = _feed(store)
    got = store.claim_feed(fid, "w1", T0, 60)
    assert got is not None and got.id == fid
    assert store.claim_feed(fid, "w2", T0 + timedelta(seconds=30), 60) is None
    assert store.claim_feed(fid, "w2", T0 + timedelta(seconds=61), 60) is not None
    store.update_feed_state(got)  # frees the lease
    assert store.claim_feed(fid, "w3", T0, 60) is not None
    with pytest.raises(NotFoundError):
        store.claim_feed(fid + 100, "w1", T0, 60)


def test_unknown_and_removed(store: SqlStore) -> None:
    fid = _feed(store)
    with pytest.raises(NotFoundError, match="no subscription"):
        store.get_subscription(fid)
    with pytest.raises(NotFoundError):
        store.subscription_requested(fid, "k", T0)
    with pytest.raises(NotFoundError):
        store.record_push(fid, T0)
    store.record_hubs({fid: (HUB, TOPIC)}, T0)
    store.remove_feed("https://wire.example/1.xml")
    assert store.list_subscriptions() == []
