"""WebSub end to end: a real feed server, a real hub and the real API on 127.0.0.1,
a real store: discover -> subscribe -> verify -> push -> one alert; renewal, denial,
bad signatures, and polling that slows while the hub pushes and resumes when it is
silent."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from feedserver import FeedServer

from worker.api import create_app
from worker.core import make_feedwatch
from worker.models import Feed, FeedStatus, utcnow
from worker.poll import poll_once
from worker.store.base import SubscriptionState
from worker.websub import push_fed, sync_subscriptions

from .conftest import SUMMIT, WEATHER, Site, atom, settings_for, wait_until
from .hub import Hub

S = SubscriptionState
SiteFactory = Callable[..., contextlib.AbstractContextManager[Site]]
PATH = "/news.xml"


def publish_feed(server: FeedServer, hub: Hub, where: str) -> str:
    """Serve a feed naming ``hub`` in its Link header or in the document."""
    url = server.url(PATH)
    if where == "header":
        link = f'<{hub.url}>; rel="hub", <{PATH}>; rel="self"'
        server.set(PATH, atom(WEATHER), "application/atom+xml", headers={"Link": link})
    else:
        links = f'<link rel="hub" href="{hub.url}"/><link rel="self" href="{url}"/>'
        server.set(PATH, atom(WEATHER, links=links), "application/atom+xml")
    return url


async def subscribed(site: Site) -> int:
    """Poll (discovering the hub), subscribe, and return the verified feed id."""
    await poll_once(site.fw, all_feeds=True)
    report = await sync_subscriptions(site.fw, callback_base=site.api)
    [fid] = report.requested
    sub = site.fw.store.get_subscription(fid)
    assert sub.state == S.VERIFIED, sub
    return fid


@pytest.mark.parametrize("where", ["header", "document"])
async def test_discover_subscribe_verify_and_push_alerts_once(
    where: str,
    store_url: str,
    feed_server: FeedServer,
    hub: Hub,
    site_factory: SiteFactory,
) -> None:
    feed_url = publish_feed(feed_server, hub, where)
    with site_factory(feed_url, url=store_url) as site:
        store = site.fw.store
        first = await poll_once(site.fw, all_feeds=True)
        assert (first.new_items, first.alerts) == (1, 0)
        [sub] = store.list_subscriptions()
        assert (sub.hub, sub.topic, sub.state) == (hub.url, feed_url, S.DISCOVERED)

        report = await sync_subscriptions(site.fw, callback_base=site.api + "/")
        assert (report.requested, report.failed) == ({sub.feed_id: "subscribe"}, {})
        [form] = hub.requests
        assert form["hub.mode"] == "subscribe" and form["hub.topic"] == feed_url
        assert form["hub.callback"] == f"{site.api}/websub/{sub.feed_id}"
        assert int(form["hub.lease_seconds"]) == 7 * 86400
        assert len(form["hub.secret"]) >= 32
        [(_, status, _)] = hub.verifications  # the challenge came back
        assert status == 200
        sub = store.get_subscription(sub.feed_id)
        assert (sub.state, sub.secret) == (S.VERIFIED, form["hub.secret"])
        assert sub.lease_seconds == 7 * 86400 and sub.requested_at is None

        body = atom(SUMMIT, WEATHER)
        [answer] = hub.publish(feed_url, body)
        assert answer.status_code == 202
        site.wait_processed(1)
        [row] = store.list_alerts()
        assert row.alert.item.title == SUMMIT[1]
        assert [d.channel for d in row.deliveries] == ["all"]
        assert store.count_items() == 2

        [answer] = hub.publish(feed_url, body)  # the same content again
        assert answer.status_code == 202
        site.wait_processed(2)
        assert len(store.list_alerts()) == 1 and store.count_items() == 2
        assert store.get_subscription(sub.feed_id).last_push_at is not None

        feed = store.get_feed(feed_url)
        assert feed.status == FeedStatus.ACTIVE and feed.next_check_at is not None
        # still polled, but at poll.max_interval (6 h), not every 10 minutes
        assert feed.next_check_at - utcnow() > timedelta(hours=5)


async def test_polling_slows_while_the_hub_pushes_and_resumes_when_silent(
    feed_server: FeedServer, hub: Hub, site_factory: SiteFactory
) -> None:
    feed_url = publish_feed(feed_server, hub, "header")
    with site_factory(feed_url) as site:
        fid = await subscribed(site)
        now = utcnow()
        await poll_once(site.fw, all_feeds=True, now=now)
        feed = site.fw.store.get_feed(feed_url)
        assert feed.next_check_at is not None
        assert feed.next_check_at - now > timedelta(hours=5)

        # Two days on, the lease (7 days) still runs but nothing was pushed: the
        # hub is taken for silent and the feed polled every 10 minutes again.
        later = now + timedelta(days=2)
        assert await push_fed(site.fw, later) == frozenset()
        await poll_once(site.fw, all_feeds=True, now=later)
        feed = site.fw.store.get_feed(feed_url)
        assert feed.next_check_at is not None
        assert feed.next_check_at - later < timedelta(seconds=700)

        # A push makes the hub live again.
        hub.publish(feed_url, atom(SUMMIT))
        site.wait_processed(1)
        assert await push_fed(site.fw, utcnow()) == frozenset({fid})


async def test_renewal_before_the_lease_ends_keeps_pushes_flowing(
    feed_server: FeedServer, hub: Hub, site_factory: SiteFactory
) -> None:
    hub.configure(lease=4 * 3600)
    feed_url = publish_feed(feed_server, hub, "document")
    with site_factory(feed_url) as site:
        store = site.fw.store
        fid = await subscribed(site)
        before = store.get_subscription(fid)
        assert before.lease_seconds == 4 * 3600 and before.lease_expires_at is not None

        idle = await sync_subscriptions(site.fw, callback_base=site.api)
        assert idle.requested == {} and len(hub.requests) == 1

        # Within half the lease of its end: renewed with the same secret. The hub
        # answers 202 and verifies later; pushes are accepted meanwhile.
        hub.configure(verify="never")
        soon = before.lease_expires_at - timedelta(minutes=110)
        report = await sync_subscriptions(site.fw, callback_base=site.api, now=soon)
        assert report.requested == {fid: "renew"}
        first, again = hub.requests
        assert again["hub.secret"] == first["hub.secret"]
        waiting = store.get_subscription(fid)
        assert (waiting.state, waiting.requested_at) == (S.VERIFIED, soon)
        hub.publish(feed_url, atom(SUMMIT))
        site.wait_processed(1)
        assert len(store.list_alerts()) == 1

        # Unverified an hour later (the lease still runs), asked again; the hub
        # verifies this time: a new lease.
        hub.configure(verify="async", lease=8 * 3600)
        resend = soon + timedelta(hours=1)
        report = await sync_subscriptions(site.fw, callback_base=site.api, now=resend)
        assert report.requested == {fid: "renew"}
        hub.wait_verifications(2)
        wait_until(lambda: store.get_subscription(fid).requested_at is None)
        after = store.get_subscription(fid)
        assert after.state == S.VERIFIED and after.lease_seconds == 8 * 3600
        assert after.lease_expires_at is not None
        assert after.lease_expires_at > before.lease_expires_at


async def test_bad_signatures_are_rejected_and_not_ingested(
    feed_server: FeedServer,
    hub: Hub,
    site_factory: SiteFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="worker.websub")
    feed_url = publish_feed(feed_server, hub, "header")
    with site_factory(feed_url) as site:
        fid = await subscribed(site)
        body = atom(SUMMIT, WEATHER)
        for kw in (
            {"secret": "not-the-secret"},
            {"signature": "md5=0123"},
            {"signature": ""},
            {"secret": "not-the-secret", "method": "sha1"},
        ):
            [answer] = hub.publish(feed_url, body, **kw)
            # 2xx all the same: a forger learns nothing (WebSub section 8)
            assert answer.status_code == 202
        assert site.callback.processed == 0
        store = site.fw.store
        assert store.count_items() == 1 and store.list_alerts() == []
        assert store.get_subscription(fid).last_push_at is None
        assert "signature does not match the body" in caplog.text
        assert "unsupported signature method 'md5'" in caplog.text
        assert "no X-Hub-Signature header" in caplog.text

        [answer] = hub.publish(feed_url, body, method="sha512")  # right, and sha512
        assert answer.status_code == 202
        site.wait_processed(1)
        assert len(store.list_alerts()) == 1


async def test_callback_answers_only_what_was_asked(
    feed_server: FeedServer, hub: Hub, site_factory: SiteFactory
) -> None:
    hub.configure(verify="never")
    feed_url = publish_feed(feed_server, hub, "header")
    with site_factory(feed_url) as site, site.client() as client:
        await poll_once(site.fw, all_feeds=True)
        [fid] = (await sync_subscriptions(site.fw, callback_base=site.api)).requested
        assert site.fw.store.get_subscription(fid).state == S.PENDING

        def verify(feed_id: object, **params: str) -> tuple[int, str]:
            query = {
                "hub.mode": "subscribe",
                "hub.topic": feed_url,
                "hub.challenge": "c-123",
                "hub.lease_seconds": "600",
                **params,
            }
            r = client.get(f"/websub/{feed_id}", params=query)
            return r.status_code, r.text

        assert verify(fid + 1)[0] == 404  # unknown feed
        assert verify("abc")[0] == 404
        assert verify(fid, **{"hub.topic": "https://evil.example/"})[0] == 404
        assert verify(fid, **{"hub.mode": "unsubscribe"})[0] == 404
        assert verify(fid, **{"hub.challenge": ""})[0] == 404
        assert verify(fid, **{"hub.challenge": "x" * 2000})[0] == 404
        denied = {"hub.mode": "denied", "hub.topic": "https://evil.example/"}
        assert verify(fid, **denied)[0] == 404
        assert site.fw.store.get_subscription(fid).state == S.PENDING

        assert verify(fid) == (200, "c-123")  # no token needed: the hub has none
        sub = site.fw.store.get_subscription(fid)
        assert (sub.state, sub.lease_seconds) == (S.VERIFIED, 600)
        assert verify(fid)[0] == 404  # answered once

        assert client.post(f"/websub/{fid + 1}", content=b"<feed/>").status_code == 404
        big = b"x" * (site.fw.settings.fetch.max_body_bytes + 1)
        assert client.post(f"/websub/{fid}", content=big).status_code == 413
        gz = {"Content-Encoding": "gzip"}
        assert (
            client.post(f"/websub/{fid}", content=b"x", headers=gz).status_code == 415
        )
        # the token still guards the rest of the API
        assert client.get("/api/feeds").status_code == 401


async def test_denied_and_expired_subscriptions_ignore_pushes(
    feed_server: FeedServer, hub: Hub, site_factory: SiteFactory
) -> None:
    feed_url = publish_feed(feed_server, hub, "header")
    with site_factory(feed_url) as site:
        store = site.fw.store
        fid = await subscribed(site)
        # The lease runs out: the next sync expires it, then asks again; the hub
        # denies this time.
        hub.configure(verify="deny")
        ended = utcnow() + timedelta(days=8)
        report = await sync_subscriptions(site.fw, callback_base=site.api, now=ended)
        assert report.expired == 1 and report.requested == {fid: "subscribe"}
        hub.wait_verifications(2)
        wait_until(lambda: store.get_subscription(fid).state == S.DENIED)
        sub = store.get_subscription(fid)
        assert sub.last_error == "denied by the hub: topic not served here"
        assert hub.verifications[-1][1] == 200

        [answer] = hub.publish(feed_url, atom(SUMMIT))  # the hub still pushes
        assert answer.status_code == 410
        assert store.count_items() == 1 and site.callback.processed == 0

        store.subscription_requested(fid, sub.secret or "k", utcnow())
        assert store.verify_subscription(fid, feed_url, 60, utcnow())
        store.expire_subscriptions(utcnow() + timedelta(minutes=2))
        [answer] = hub.publish(feed_url, atom(SUMMIT))
        assert answer.status_code == 410 and store.count_items() == 1


async def test_hub_requests_pass_the_address_guard_and_failures_are_kept(
    tmp_path: Path, hub: Hub
) -> None:
    url = f"sqlite:///{tmp_path / 'guard.db'}"
    topic = "https://wire.example/feed.xml"
    with make_feedwatch(
        settings_for(url, tmp_path, allow_private_addresses=False)
    ) as fw:
        fid = fw.store.add_feed(Feed(url=topic)).id
        assert fid is not None
        off = fw.store.add_feed(Feed(url=topic + "?off", status=FeedStatus.DISABLED))
        assert off.id is not None
        fw.store.record_hubs(
            {fid: (hub.url, topic), off.id: (hub.url, topic)}, utcnow()
        )
        report = await sync_subscriptions(fw, callback_base="https://fw.example")
        assert list(report.failed) == [fid]  # the disabled feed is left alone
        assert report.failed[fid] == (
            f"{hub.url}: subscribing to {topic}: address: refusing the WebSub hub "
            f"{hub.url} of feed {topic}: 127.0.0.1 (loopback address); hubs on "
            "private networks are refused unless fetch.allow_private_addresses is true"
        )
        assert hub.requests == []
        sub = fw.store.get_subscription(fid)
        assert sub.state == S.PENDING and sub.last_error == report.failed[fid]
    with make_feedwatch(settings_for(url, tmp_path)) as fw:
        hub.configure(fail_status=400)
        later = utcnow() + timedelta(hours=2)
        report = await sync_subscriptions(
            fw, callback_base="https://fw.example", now=later
        )
        assert report.failed[fid].endswith(
            f"subscribing to {topic}: HTTP 400: hub says no"
        )
        assert report.failed[fid].startswith(hub.url)
        assert len(hub.requests) == 1


async def test_websub_off_records_nothing_and_serves_no_callback(
    tmp_path: Path, feed_server: FeedServer, hub: Hub
) -> None:
    feed_url = publish_feed(feed_server, hub, "header")
    settings = settings_for(f"sqlite:///{tmp_path / 'off.db'}", tmp_path, (feed_url,))
    settings = settings.model_copy(
        update={"api": settings.api.model_copy(update={"websub": False})}
    )
    with make_feedwatch(settings) as fw:
        fw.sync_config_feeds()
        await poll_once(fw, all_feeds=True)
        assert fw.store.list_subscriptions() == []
        app = create_app(fw)
        assert app.state.websub is None
        assert [r for r in app.routes if getattr(r, "path", "") == "/websub"] == []
