"""The pure parts of worker/websub.py: discovery, Link headers, signatures, due work."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from worker.store.base import Subscription, SubscriptionState
from worker.websub import (
    DENIED_RETRY,
    RESEND_AFTER,
    Discovery,
    check_signature,
    discover,
    due_action,
    parse_link_header,
    renew_margin,
)

from .conftest import SUMMIT, atom

FEED = "https://wire.example/feeds/news.xml"
HUB = "https://hub.example/"
T0 = datetime(2026, 5, 1, tzinfo=UTC)

RSS_WITH_HUB = b"""<?xml version="1.0"?>
<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom"><channel>
<title>Wire</title><link>https://wire.example/</link><description>d</description>
<atom:link rel="hub" href="https://hub.example/"/>
<atom:link rel="self" type="application/rss+xml" href="https://wire.example/rss"/>
<item><title>t</title><link>https://wire.example/1</link>
<atom:link rel="hub" href="https://item-level.example/"/></item>
</channel></rss>"""


def test_hub_and_self_from_the_link_header() -> None:
    headers = {"link": f'<{HUB}>; rel="hub", </feeds/self.xml>; rel="self"'}
    assert discover(headers, b"<rss/>", FEED) == Discovery(
        hub=HUB, topic="https://wire.example/feeds/self.xml"
    )


def test_header_wins_over_the_document_and_topic_defaults_to_the_feed_url() -> None:
    body = atom(links='<link rel="hub" href="https://other-hub.example/"/>')
    assert discover({"link": f"<{HUB}>; rel=hub"}, body, FEED) == Discovery(
        hub=HUB, topic=FEED
    )


def test_hub_and_self_from_an_atom_document() -> None:
    links = (
        '<link rel="hub" href="https://hub.example/"/>'
        '<link rel="self" href="/feeds/atom"/>'
        '<link rel="alternate" href="https://wire.example/"/>'
    )
    body = atom(SUMMIT, links=links)
    assert discover({}, body, FEED) == Discovery(
        hub=HUB, topic="https://wire.example/feeds/atom"
    )


def test_hub_from_rss_channel_links_only() -> None:
    assert discover({}, RSS_WITH_HUB, FEED) == Discovery(
        hub=HUB, topic="https://wire.example/rss"
    )


def test_hub_from_a_json_feed() -> None:
    doc = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "Wire",
        "feed_url": "https://wire.example/feed.json",
        "hubs": [
            {"type": "rssCloud", "url": "https://cloud.example/"},
            {"type": "WebSub", "url": HUB},
        ],
        "items": [],
    }
    body = json.dumps(doc).encode()
    assert discover({}, body, FEED, "application/feed+json") == Discovery(
        hub=HUB, topic="https://wire.example/feed.json"
    )


@pytest.mark.parametrize(
    "body",
    [
        atom(SUMMIT),
        atom(links='<link rel="hub" href="ftp://hub.example/"/>'),
        b"not xml at all, though it says hub",
        b'{"hubs": "nonsense"}',
        b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]>"
        b"<feed xmlns='http://www.w3.org/2005/Atom'><link rel='hub' href='&e;'/></feed>",
    ],
    ids=["no-hub", "not-http", "garbage", "bad-json", "external-entity"],
)
def test_no_usable_hub(body: bytes) -> None:
    assert (
        discover({"link": "<https://wire.example/>; rel=alternate"}, body, FEED) is None
    )


def test_parse_link_header_reads_quoted_and_multiple_rels() -> None:
    value = '<https://a.example/>; title="x, y"; rel="hub self", <b>;rel=next'
    assert parse_link_header(value) == [
        ("https://a.example/", frozenset({"hub", "self"})),
        ("b", frozenset({"next"})),
    ]


# -- signatures ------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["sha1", "sha256", "sha384", "sha512"])
def test_signature_methods(method: str) -> None:
    body = b"<feed/>"
    digest = hmac.new(b"k3y", body, getattr(hashlib, method)).hexdigest()
    assert check_signature("k3y", body, f"{method}={digest}") is None
    assert check_signature("k3y", body, f"{method.upper()}={digest.upper()}") is None
    assert check_signature("other", body, f"{method}={digest}") is not None
    assert check_signature("k3y", body + b" ", f"{method}={digest}") is not None


@pytest.mark.parametrize(
    ("header", "why"),
    [
        (None, "no X-Hub-Signature"),
        ("", "no X-Hub-Signature"),
        ("md5=abc", "unsupported signature method 'md5'"),
        ("sha256", "unsupported signature method 'sha256'"),
        ("sha256=00", "does not match"),
    ],
)
def test_bad_signatures_say_why(header: str | None, why: str) -> None:
    problem = check_signature("k3y", b"body", header)
    assert problem is not None and why in problem


# -- what a sync does ------------------------------------------------------------------


def _sub(state: SubscriptionState, **kw: object) -> Subscription:
    base = Subscription(
        feed_id=1,
        hub=HUB,
        topic=FEED,
        secret="s",
        state=state,
        lease_seconds=None,
        lease_expires_at=None,
        requested_at=None,
        verified_at=None,
        last_push_at=None,
        last_error=None,
        created_at=T0,
        updated_at=T0,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def test_due_actions() -> None:
    s = SubscriptionState
    now = T0 + timedelta(days=3)
    assert due_action(_sub(s.DISCOVERED), now) == "subscribe"
    assert due_action(_sub(s.EXPIRED), now) == "subscribe"
    sent = now - RESEND_AFTER / 2
    assert due_action(_sub(s.PENDING, requested_at=sent), now) is None
    old = now - RESEND_AFTER
    assert due_action(_sub(s.PENDING, requested_at=old), now) == "resend"
    assert due_action(_sub(s.DENIED, updated_at=now - DENIED_RETRY / 2), now) is None
    assert due_action(_sub(s.DENIED, updated_at=now - DENIED_RETRY), now) == "retry"
    lease = 3600
    margin = renew_margin(lease)
    assert margin == timedelta(seconds=1800)
    far = _sub(s.VERIFIED, lease_seconds=lease, lease_expires_at=now + margin * 1.5)
    assert due_action(far, now) is None
    near = replace(far, lease_expires_at=now + margin / 2)
    assert due_action(near, now) == "renew"
    assert due_action(replace(near, requested_at=sent), now) is None
    assert due_action(replace(near, requested_at=old), now) == "renew"


def test_renew_margin_is_at_most_a_day() -> None:
    assert renew_margin(10 * 86400) == timedelta(days=1)
    assert renew_margin(None) == timedelta(days=1)
    assert renew_margin(60) == timedelta(seconds=30)


def _documents() -> list[tuple[str, bytes]]:
    from pathlib import Path

    shared = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
    demo = Path(__file__).resolve().parents[2] / "worker" / "demo" / "feeds"
    docs = [
        (str(p), p.read_bytes())
        for root in (shared, demo)
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.suffix.lower() in (".xml", ".rss", ".atom", ".json", "")
    ]
    text_only = atom(
        ("g1", "GitHub opens a hub in Hubei", "hubs"),
        links=f'<link rel="self" href="{FEED}"/>',
    )
    docs.append(("hub only in text", text_only))
    docs.append(("hub named", atom(links=f'<link rel="hub" href="{HUB}"/>')))
    return docs


def test_the_hub_hint_skips_only_documents_that_name_no_hub(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """discover() with its quick hint agrees with parsing every document that says
    "hub" anywhere, on the corpus, the demo feeds and a header-given hub."""
    import worker.websub as ws

    docs = _documents()
    assert len(docs) > 100
    headers = [{}, {"link": f"<{HUB}>; rel=hub"}]
    quick = [discover(h, body, FEED) for _, body in docs for h in headers]
    monkeypatch.setattr(
        ws, "_may_name_hub", lambda body: ws._HUB_WORD.search(body) is not None
    )
    general = [discover(h, body, FEED) for _, body in docs for h in headers]
    assert quick == general
    assert any(d is not None for d in quick[::2]), "some document names a hub"
