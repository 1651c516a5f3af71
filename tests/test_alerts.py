"""Tests of worker/alerts.py: alert ids, routing, the event line, the webhook payload
(against docs/ALERT_PAYLOAD.md) and rendering of hostile feed text."""

from __future__ import annotations

import json
import re
import unicodedata
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from channels.samples import HOSTILE_TITLE, hostile_alert, sample_alert
from hypothesis import given
from hypothesis import strategies as st

from worker.alerts import (
    STORY_KEY,
    SUBJECT_MAX,
    alert_id,
    alert_marks,
    alert_payload,
    clean_line,
    clean_text,
    event_line,
    iso_utc,
    render_alert,
    route,
    safe_url,
    story_alert,
    story_alert_key,
    story_marks,
)
from worker.config import (
    ChannelSettings,
    ConsoleChannelSettings,
    EmailChannelSettings,
    FileChannelSettings,
    WebhookChannelSettings,
)
from worker.models import ActorRef, Decision, Event, EventKind, EventStatus

DOC = Path(__file__).resolve().parents[1] / "docs" / "ALERT_PAYLOAD.md"


# --------------------------------------------------------------------- alert_id


def test_alert_id_is_stable_and_distinguishes_story_rule_and_status() -> None:
    a = alert_id("st_1", "summit")
    assert a == alert_id("st_1", "summit")
    assert re.fullmatch(r"al_[0-9a-f]{24}", a)
    others = {
        alert_id("st_2", "summit"),
        alert_id("st_1", "visit"),
        alert_id("st_1", "summit", "held"),
        alert_id("st_1", "summit", "cancelled"),
    }
    assert a not in others and len(others) == 4
    # No separator ambiguity: "a|b" + "c" is not "a" + "b|c".
    assert alert_id("a|b", "c") != alert_id("a", "b|c")


def test_alert_id_is_pinned() -> None:
    # A stored alert id must never change across releases: receivers dedupe on it.
    assert alert_id("st_1", "summit") == "al_" + _sha("st_1|summit|")[:24]
    assert alert_id("st_1", "summit", "held") == "al_" + _sha("st_1|summit|held")[:24]


def _sha(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


# ------------------------------------------------------------------------ route


def test_route_admits_by_rule_and_topic_filters() -> None:
    alert = sample_alert()  # rule visit-official-travel, topic visit
    channels: list[ChannelSettings] = [
        ConsoleChannelSettings(type="console", name="all"),
        FileChannelSettings(
            type="file", name="by-rule", path="x", rules=("visit-official-travel",)
        ),
        FileChannelSettings(
            type="file", name="other-rule", path="x", rules=("summit",)
        ),
        WebhookChannelSettings(
            type="webhook",
            name="by-topic",
            url="http://127.0.0.1/",
            topics=("visit",),
        ),
        WebhookChannelSettings(
            type="webhook",
            name="other-topic",
            url="http://127.0.0.1/",
            topics=("summit",),
        ),
        EmailChannelSettings(
            type="email",
            name="both",
            to=("a@example.org",),
            rules=("visit-official-travel",),
            topics=("summit", "visit"),
        ),
        EmailChannelSettings(
            type="email",
            name="rule-but-not-topic",
            to=("a@example.org",),
            rules=("visit-official-travel",),
            topics=("summit",),
        ),
    ]
    assert route(alert, channels) == ["all", "by-rule", "by-topic", "both"]
    assert route(alert, []) == []


def test_route_filters_by_severity_and_any_rule_that_fired() -> None:
    alert = sample_alert()  # severity high; rules fired: visit-official-travel
    both = sample_alert(
        decision=alert.decision.model_copy(
            update={"rules": ("visit-official-travel", "summit-named")}
        )
    )
    unrated = sample_alert(severity=None)
    channels: list[ChannelSettings] = [
        ConsoleChannelSettings(type="console", name="high", severities=("high",)),
        ConsoleChannelSettings(type="console", name="low", severities=("low",)),
        ConsoleChannelSettings(
            type="console", name="unrated", severities=("none", "low")
        ),
        ConsoleChannelSettings(type="console", name="summits", rules=("summit-named",)),
    ]
    assert route(alert, channels) == ["high"]
    assert route(unrated, channels) == ["unrated"]
    # one alert per story whatever rules fired: a filter on the second rule admits it
    assert route(both, channels) == ["high", "summits"]


# ------------------------------------------------------------- status changes


def _decision(status: EventStatus | None) -> Decision:
    base = sample_alert().decision
    if status is None:
        return base.model_copy(update={"event": None})
    assert base.event is not None
    return base.model_copy(
        update={"event": base.event.model_copy(update={"status": status})}
    )


def test_first_report_alerts_later_ones_only_on_a_new_status() -> None:
    announced = _decision(EventStatus.ANNOUNCED)
    held = _decision(EventStatus.HELD)
    assert story_alert_key(announced, set()) == STORY_KEY
    assert story_alert_key(held, set()) == STORY_KEY  # a first report is one alert
    seen = {STORY_KEY, "announced"}
    assert story_alert_key(announced, seen) is None
    assert story_alert_key(_decision(EventStatus.PROPOSED), seen) is None
    assert story_alert_key(_decision(EventStatus.UNKNOWN), seen) is None
    assert story_alert_key(_decision(None), seen) is None
    assert story_alert_key(held, seen) == "held"
    assert story_alert_key(_decision(EventStatus.CANCELLED), seen) == "cancelled"
    assert story_alert_key(_decision(EventStatus.POSTPONED), seen) == "postponed"
    assert story_alert_key(held, seen | {"held"}) is None


def test_story_alert_ids_are_stable_and_updates_refer_to_the_first() -> None:
    base = sample_alert()
    assert base.story is not None
    now = datetime(2025, 1, 4, tzinfo=UTC)
    first = story_alert(
        base.item, _decision(EventStatus.ANNOUNCED), base.story, set(), now
    )
    assert first is not None
    assert first.id == alert_id(base.story.id, STORY_KEY) and first.supersedes is None
    seen = story_marks([first])
    assert seen == {STORY_KEY, "announced"}
    # 20 outlets saying the same thing: nothing more
    assert (
        story_alert(base.item, _decision(EventStatus.ANNOUNCED), base.story, seen, now)
        is None
    )
    # "met" from another outlet two hours after "to meet": wording, not news
    soon = base.item.model_copy(
        update={"published": base.item.published + timedelta(hours=2)}
    )
    assert story_alert(soon, _decision(EventStatus.HELD), base.story, seen, now) is None
    # a day later it is news
    later = base.item.model_copy(
        update={
            "id": "guid:later",
            "published": base.item.published + timedelta(days=1),
        }
    )
    held = story_alert(later, _decision(EventStatus.HELD), base.story, seen, now)
    assert held is not None
    assert held.supersedes == first.id
    assert held.id == alert_id(base.story.id, STORY_KEY, "held") != first.id
    assert alert_marks(held) == {"held"}
    seen |= alert_marks(held)
    assert (
        story_alert(later, _decision(EventStatus.HELD), base.story, seen, now) is None
    )
    # the same update computed again (another worker, a re-poll) has the same id
    again = story_alert(
        later, _decision(EventStatus.HELD), base.story, story_marks([first]), now
    )
    assert again is not None and again.id == held.id
    # the payload and subject say what changed
    payload = alert_payload(held)
    assert payload["supersedes"] == first.id
    assert payload["story"]["status"] == "held"
    assert alert_payload(first)["story"]["status"] == "announced"
    assert ", now held" in render_alert(held).subject


def test_a_decision_without_rules_raises_nothing() -> None:
    base = sample_alert()
    assert base.story is not None
    empty = base.decision.model_copy(update={"rules": ()})
    assert story_alert(base.item, empty, base.story, set(), base.created_at) is None


# ------------------------------------------------------------------- event_line


def test_event_line_tells_who_visits_whom_where_and_when() -> None:
    alert = sample_alert()
    assert event_line(alert.decision.event) == (
        "visit/summit (announced): Lee Jae-myung (KR) visiting Xi Jinping (CN); "
        "in Beijing; beginning Sunday"
    )


def test_event_line_for_summit_participants_and_sparse_events() -> None:
    summit = Event(
        kinds=(EventKind.SUMMIT,),
        status=EventStatus.PROPOSED,
        actors=(
            ActorRef(name="China", country="CN"),
            ActorRef(name="Japan", country="JP", role="participant"),
            ActorRef(name="South Korea", country="KR"),
        ),
        countries=("CN", "JP", "KR"),
        when="in December",
    )
    assert event_line(summit) == (
        "summit (proposed): China, Japan and South Korea; in December"
    )
    host_only = Event(
        kinds=(EventKind.VISIT,),
        actors=(
            ActorRef(name="Xi Jinping", country="CN", kind="person", role="host"),
            ActorRef(name="South Korea", country="KR"),
        ),
    )
    assert (
        event_line(host_only) == "visit (unknown): Xi Jinping (CN) hosting South Korea"
    )
    assert event_line(Event(countries=("JP", "CN"))) == "event (unknown): JP and CN"
    assert event_line(Event()) == "event (unknown)"
    assert event_line(None) == "no event details"


def test_event_line_is_one_line_even_with_hostile_text() -> None:
    ev = Event(
        kinds=(EventKind.VISIT,),
        location="Seoul\r\nBcc: x",
        when="\x1b[2Jsoon",
        actors=(ActorRef(name="A\nB", country="KR", role="visitor"),),
    )
    line = event_line(ev)
    assert "\n" not in line and "\r" not in line and "\x1b" not in line
    assert line == "visit (unknown): A B visiting; in Seoul Bcc: x; [2Jsoon"


# ---------------------------------------------------------------------- payload


def _keys(value: object) -> object:
    """The key structure of a JSON value (lists by their first element)."""
    if isinstance(value, dict):
        return {k: _keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_keys(value[0])] if value else []
    return None


def test_payload_matches_the_documented_example() -> None:
    payload = alert_payload(sample_alert())
    example = re.search(r"```json\n(.*?)\n```", DOC.read_text(encoding="utf-8"), re.S)
    assert example, "docs/ALERT_PAYLOAD.md has a JSON example"
    documented = json.loads(example.group(1))
    assert _keys(payload) == _keys(documented)
    assert json.loads(json.dumps(payload)) == documented


def test_payload_is_plain_json_with_utc_z_datetimes() -> None:
    alert = sample_alert(
        created_at=datetime(
            2025, 1, 3, 20, 5, 1, 250000, tzinfo=timezone(timedelta(hours=9))
        )
    )
    payload = alert_payload(alert)
    assert json.loads(json.dumps(payload)) == payload  # only JSON types
    assert payload["type"] == "feedwatch.alert"
    assert payload["id"] == alert.id
    assert payload["created_at"] == "2025-01-03T11:05:01.250000Z"
    assert payload["item"]["published"] == "2025-01-03T09:30:00Z"
    assert payload["story"]["sources"][1]["published"] == "2025-01-03T10:45:00Z"
    assert payload["event"]["kinds"] == ["visit", "summit"]
    assert payload["event"]["actors"][0]["role"] == "visitor"
    assert [e["text"] for e in payload["evidence"]] == ["Host", "Xi Jinping"]


def test_payload_without_event_or_story_has_nulls() -> None:
    base = sample_alert()
    bare = base.model_copy(
        update={
            "story": None,
            "decision": base.decision.model_copy(update={"event": None}),
        }
    )
    payload = alert_payload(bare)
    assert payload["event"] is None
    assert payload["story"] is None
    # The story's event stands in when the item's own classification has none.
    story_only = base.model_copy(
        update={"decision": base.decision.model_copy(update={"event": None})}
    )
    assert alert_payload(story_only)["event"]["location"] == "Beijing"


def test_iso_utc() -> None:
    assert iso_utc(None) is None
    assert iso_utc(datetime(2025, 1, 1, tzinfo=UTC)) == "2025-01-01T00:00:00Z"
    assert iso_utc(datetime(2025, 1, 1)) == "2025-01-01T00:00:00Z"  # naive = UTC
    tokyo = datetime(2025, 1, 1, 9, tzinfo=timezone(timedelta(hours=9)))
    assert iso_utc(tokyo) == "2025-01-01T00:00:00Z"


# -------------------------------------------------------------------- rendering


def test_render_alert_envelope() -> None:
    alert = sample_alert()
    env = render_alert(alert)
    assert env.id == alert.id
    assert env.kind == "alert"
    assert env.thread_id == "st_xi_lee"
    assert env.data == alert_payload(alert)
    assert env.subject == (
        "[feedwatch] visit/summit: China's Xi to Host South Korea's Lee Amid "
        "Regional Tensions (Example News)"
    )
    text = env.text
    for expected in (
        "China's Xi to Host South Korea's Lee Amid Regional Tensions",
        "Source:    Example News",
        "Link:      https://news.example/xi-lee",
        "Published: 2025-01-03 09:30 UTC",
        "Event:     visit/summit (announced): Lee Jae-myung (KR) visiting Xi Jinping (CN)",
        "Rules:     visit-official-travel (topics: visit; severity: high; score: 0.92)",
        '[visit-official-travel] summary: "Xi Jinping" (actor: Xi Jinping)',
        "Also reported by:",
        "Other Wire: Lee heads to Beijing for state visit with Xi "
        "<https://wire.example/lee-beijing>",
        f"Alert {alert.id}, story st_xi_lee",
    ):
        assert expected in text
    # The reporting outlet itself is not listed as another source.
    assert "Example News: China" not in text
    assert env.html is not None
    assert '<a href="https://news.example/xi-lee"' in env.html
    assert "Lee heads to Beijing for state visit with Xi</a>" in env.html
    assert "<script" not in env.html


def test_render_single_source_story_has_no_other_sources() -> None:
    base = sample_alert()
    assert base.story is not None
    one = base.model_copy(
        update={
            "story": base.story.model_copy(update={"sources": base.story.sources[:1]})
        }
    )
    env = render_alert(one)
    assert "Also reported by" not in env.text
    assert env.html is not None and "Also reported by" not in env.html


def test_render_update_names_the_new_status_and_the_superseded_alert() -> None:
    base = sample_alert()
    assert base.decision.event is not None
    held = base.decision.event.model_copy(update={"status": EventStatus.HELD})
    alert = base.model_copy(
        update={
            "id": alert_id("st_xi_lee", "visit-official-travel", "held"),
            "supersedes": base.id,
            "decision": base.decision.model_copy(update={"event": held}),
        }
    )
    env = render_alert(alert)
    assert env.subject.startswith("[feedwatch] visit/summit, now held: ")
    assert f"updates alert {base.id}" in env.text
    assert env.data["supersedes"] == base.id
    assert env.thread_id == base.story_id  # threads with the first alert's story


def test_render_hostile_alert_escapes_and_strips() -> None:
    env = render_alert(hostile_alert())
    # Subject: one line, no control characters; the markup is just text there.
    assert "\r" not in env.subject and "\n" not in env.subject
    assert env.subject.startswith(
        "[feedwatch] visit/summit: <script>alert(1)</script> Bcc"
    )
    # Text: no terminal escapes, no javascript: link.
    assert "\x1b" not in env.text
    assert "javascript:" not in env.text
    assert "Link:      (none)" in env.text
    # HTML: every feed string escaped; no script, no handler, no javascript: href.
    html = env.html
    assert html is not None
    assert "<script" not in html and "<img" not in html and "<b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(2)&gt;" in html
    assert "javascript:" not in html
    assert "&lt;i&gt;x&lt;/i&gt;" in html
    # The JSON keeps the feed's text verbatim (receivers escape as they need).
    assert env.data["item"]["title"] == HOSTILE_TITLE


def test_subject_is_capped() -> None:
    base = sample_alert()
    long_item = base.item.model_copy(update={"title": "Summit " * 100})
    env = render_alert(base.model_copy(update={"item": long_item}))
    assert len(env.subject) == SUBJECT_MAX
    assert env.subject.endswith("…")


def test_subject_falls_back_to_topics_then_rule() -> None:
    base = sample_alert()
    no_event = base.model_copy(
        update={
            "story": None,
            "decision": base.decision.model_copy(update={"event": None}),
        }
    )
    assert render_alert(no_event).subject.startswith("[feedwatch] visit: ")
    bare = no_event.model_copy(
        update={
            "topics": (),
            "item": base.item.model_copy(update={"title": "", "source": None}),
        }
    )
    assert render_alert(bare).subject == "[feedwatch] visit-official-travel: (untitled)"


# ------------------------------------------------------------------- sanitizers


def test_safe_url() -> None:
    assert safe_url("https://a.example/x?y=1") == "https://a.example/x?y=1"
    assert safe_url("HTTP://a.example/") == "HTTP://a.example/"
    for bad in (None, "", "javascript:alert(1)", "data:text/html,x", "//a.example/",
                "https://a.example/\nx", "http://[::1", "mailto:a@b"):  # fmt: skip
        assert safe_url(bad) is None, bad


def test_clean_text_keeps_lines_but_not_controls() -> None:
    assert clean_text("a\r\nb\rc\x00d\x1b[0m\n\n\n\ne  f") == "a\nb\nc d [0m\n\ne f"
    assert clean_text("x" * 50, 10) == "x" * 9 + "…"
    assert clean_text(None) == ""


@given(st.text(), st.integers(min_value=1, max_value=300))
def test_clean_line_is_one_capped_line(value: str, limit: int) -> None:
    out = clean_line(value, limit)
    assert len(out) <= limit
    assert not any(unicodedata.category(c) == "Cc" for c in out)
    assert "\u2028" not in out and "\u2029" not in out and "\u202e" not in out
    assert out == out.strip()


@given(
    st.tuples(st.text(max_size=8), st.text(max_size=8), st.text(max_size=8)),
    st.tuples(st.text(max_size=8), st.text(max_size=8), st.text(max_size=8)),
)
def test_alert_id_keys_are_unambiguous(
    a: tuple[str, str, str], b: tuple[str, str, str]
) -> None:
    if a != b:
        assert alert_id(a[0], a[1], a[2] or None) != alert_id(b[0], b[1], b[2] or None)
