"""Store methods of outbox routing (quiet hours, rate limits) and of the status-change
policy, over every backend: held deliveries, their release by a digest, delivery
times per channel, and the alerts of a story."""

from __future__ import annotations

from worker.models import DeliveryStatus
from worker.store.base import DeliveryOutcome
from worker.store.sql import SqlStore

from .helpers import at, feed, item, poll, story


def _two_alerts(store: SqlStore) -> tuple[str, str]:
    fd = store.add_feed(feed())
    store.record_poll(
        poll(fd, [item(1)], st=story("s1"), alert_id="a1", channels=("mail", "hook"))
    )
    store.record_poll(
        poll(fd, [item(2)], st=story("s2"), alert_id="a2", channels=("mail",))
    )
    return "a1", "a2"


def _claim_all(store: SqlStore) -> dict[tuple[str, str], int]:
    claimed = store.claim_deliveries("w1", at(10), 10, 60)
    out: dict[tuple[str, str], int] = {}
    for c in claimed:
        assert c.delivery.id is not None
        out[(c.alert.id, c.delivery.channel)] = c.delivery.id
    return out


def test_held_deliveries_wait_for_a_digest_then_are_released(store: SqlStore) -> None:
    _two_alerts(store)
    ids = _claim_all(store)
    for (_alert, channel), did in ids.items():
        if channel == "mail":
            store.record_delivery(
                DeliveryOutcome(
                    delivery_id=did, ok=False, attempted_at=at(11), held=True
                )
            )
    assert [a.id for a in store.held_alerts("mail")] == ["a1", "a2"]
    assert store.held_alerts("hook") == []
    # held rows are not handed out again, and a held row is not an attempt
    assert all(
        c.delivery.channel != "mail"
        for c in store.claim_deliveries("w2", at(99), 10, 60)
    )
    mail = {d.channel: d for d in store.get_alert("a1").deliveries}["mail"]
    assert mail.status is DeliveryStatus.HELD and mail.attempts == 0

    # a digest that carried a1 only releases a1
    assert store.release_held("mail", ["a1", "nope"], "dg_1", at(20)) == 1
    assert [a.id for a in store.held_alerts("mail")] == ["a2"]
    mail = {d.channel: d for d in store.get_alert("a1").deliveries}["mail"]
    assert mail.status is DeliveryStatus.DELIVERED and mail.delivered_at == at(20)
    # a digest release is not a send: rate limits do not count it
    assert store.delivered_times("mail", at(0)) == []
    # releasing twice changes nothing
    assert store.release_held("mail", ["a1"], "dg_2", at(30)) == 0
    # redeliver makes a held or released row pending again
    assert store.redeliver("a2", at(40)) == 1
    assert store.held_alerts("mail") == []


def test_deferred_delivery_is_not_an_attempt_and_comes_back_then(
    store: SqlStore,
) -> None:
    _two_alerts(store)
    ids = _claim_all(store)
    did = ids[("a1", "hook")]
    store.record_delivery(
        DeliveryOutcome(
            delivery_id=did, ok=False, attempted_at=at(11), defer_until=at(500)
        )
    )
    hook = {d.channel: d for d in store.get_alert("a1").deliveries}["hook"]
    assert hook.status is DeliveryStatus.PENDING
    assert hook.attempts == 0 and hook.next_attempt_at == at(500)
    # not due before, due then
    later = [c.delivery.id for c in store.claim_deliveries("w2", at(499), 10, 60)]
    assert did not in later
    assert did in [c.delivery.id for c in store.claim_deliveries("w3", at(500), 10, 60)]


def test_delivered_times_per_channel_oldest_first(store: SqlStore) -> None:
    _two_alerts(store)
    ids = _claim_all(store)
    store.record_delivery(
        DeliveryOutcome(delivery_id=ids[("a2", "mail")], ok=True, attempted_at=at(15))
    )
    store.record_delivery(
        DeliveryOutcome(delivery_id=ids[("a1", "mail")], ok=True, attempted_at=at(12))
    )
    store.record_delivery(
        DeliveryOutcome(delivery_id=ids[("a1", "hook")], ok=True, attempted_at=at(13))
    )
    assert store.delivered_times("mail", at(0)) == [at(12), at(15)]
    assert store.delivered_times("mail", at(13)) == [at(15)]
    assert store.delivered_times("hook", at(0)) == [at(13)]
    assert store.delivered_times("other", at(0)) == []


def test_story_alerts_groups_alerts_by_story(store: SqlStore) -> None:
    _two_alerts(store)
    found = store.story_alerts(["s1", "s2", "s3"])
    assert {k: [a.id for a in v] for k, v in found.items()} == {
        "s1": ["a1"],
        "s2": ["a2"],
    }
    assert store.story_alerts([]) == {}
