"""/metrics: Prometheus text from the app's own registry, changed by observe_*."""

from __future__ import annotations

import logging
import math

import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from worker import metrics as metrics_module
from worker.errors import StoreError
from worker.metrics import CONTENT_TYPE, Metrics, error_kind
from worker.poll import FeedOutcome, PollSummary

from .conftest import Api, running_api

NAMES = {
    "feedwatch_polls": "counter",
    "feedwatch_fetch_errors": "counter",
    "feedwatch_items_new": "counter",
    "feedwatch_matches": "counter",
    "feedwatch_alerts": "counter",
    "feedwatch_deliveries": "counter",
    "feedwatch_outbox_depth": "gauge",
    "feedwatch_poll_duration_seconds": "histogram",
    "feedwatch_delivery_duration_seconds": "histogram",
}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition text, keyed by name and sorted labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def scrape(api: Api) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = api.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=")
    return samples(r.text)


def test_every_metric_is_exposed_with_its_type(api: Api) -> None:
    text = api.get("/metrics").text
    types = {
        f.name: f.type for f in text_string_to_metric_families(text) if f.name in NAMES
    }
    assert types == NAMES
    for name in NAMES:
        assert f"# HELP {name}" in text


def test_outbox_depth_is_read_from_the_store_at_scrape_time(api: Api) -> None:
    # The visit alert's delivery is still pending; the summit alert's are done.
    assert scrape(api)[("feedwatch_outbox_depth", ())] == 1.0


def test_observe_calls_change_the_scrape(sqlite_url: str) -> None:
    with running_api(sqlite_url) as served:
        metrics: Metrics = served.app.state.metrics
        before = scrape(served)
        assert ("feedwatch_polls_total", (("status", "ok"),)) not in before
        assert before[("feedwatch_items_new_total", ())] == 0.0

        summary = PollSummary(
            feeds=4,
            polled=2,
            failed=2,
            new_items=5,
            outcomes=[
                FeedOutcome(url="http://127.0.0.1:9/a", status="ok", new_items=5),
                FeedOutcome(url="http://127.0.0.1:9/b", status="not_modified"),
                FeedOutcome(
                    url="http://127.0.0.1:9/c",
                    status="error",
                    error="http://127.0.0.1:9/c: timeout: no answer within 20s",
                ),
                FeedOutcome(
                    url="http://127.0.0.1:9/d",
                    status="error",
                    error="http://127.0.0.1:9/d: not a feed: looks like an HTML page",
                ),
            ],
        )
        metrics.observe_poll(summary, 1.5)
        metrics.observe_matches(["summit.trilateral", "summit.trilateral", "visit"])
        metrics.observe_alerts(["summit.trilateral"])
        metrics.observe_delivery("webhook", "delivered", 0.2)
        metrics.observe_delivery("webhook", "retry", 3.0)
        after = scrape(served)

    assert after[("feedwatch_polls_total", (("status", "ok"),))] == 1.0
    assert after[("feedwatch_polls_total", (("status", "not_modified"),))] == 1.0
    assert after[("feedwatch_polls_total", (("status", "error"),))] == 2.0
    assert after[("feedwatch_fetch_errors_total", (("kind", "timeout"),))] == 1.0
    assert after[("feedwatch_fetch_errors_total", (("kind", "parse"),))] == 1.0
    assert after[("feedwatch_items_new_total", ())] == 5.0
    assert after[("feedwatch_matches_total", (("rule", "summit.trilateral"),))] == 2.0
    assert after[("feedwatch_matches_total", (("rule", "visit"),))] == 1.0
    assert after[("feedwatch_alerts_total", (("rule", "summit.trilateral"),))] == 1.0
    webhook = (("channel", "webhook"),)
    assert (
        after[("feedwatch_deliveries_total", (*webhook, ("outcome", "delivered")))] == 1
    )
    assert after[("feedwatch_deliveries_total", (*webhook, ("outcome", "retry")))] == 1
    assert after[("feedwatch_poll_duration_seconds_count", ())] == 1.0
    assert after[("feedwatch_poll_duration_seconds_sum", ())] == 1.5
    assert after[("feedwatch_poll_duration_seconds_bucket", (("le", "1.0"),))] == 0.0
    assert after[("feedwatch_poll_duration_seconds_bucket", (("le", "2.5"),))] == 1.0
    assert after[("feedwatch_delivery_duration_seconds_count", webhook)] == 2.0
    assert after[("feedwatch_delivery_duration_seconds_sum", webhook)] == pytest.approx(
        3.2
    )


def test_each_metrics_object_has_its_own_registry() -> None:
    a, b = Metrics(), Metrics()
    a.observe_alerts(["summit"])
    assert (
        samples(a.render().decode())[("feedwatch_alerts_total", (("rule", "summit"),))]
        == 1
    )
    assert ("feedwatch_alerts_total", (("rule", "summit"),)) not in samples(
        b.render().decode()
    )


def test_content_type_is_prometheus_clients() -> None:
    assert CONTENT_TYPE == CONTENT_TYPE_LATEST


def test_observations_before_and_after_the_first_scrape_all_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Kept until served, built early past the cap: every observation counts once.
    monkeypatch.setattr(metrics_module, "_MAX_PENDING", 5)
    m = Metrics()
    m.observe_matches(["a"] * 4)
    m.observe_delivery("hook", "retry", 0.3)  # the 5th and 6th: builds
    m.observe_matches(["a", "b"])
    got = samples(m.render().decode())
    assert got[("feedwatch_matches_total", (("rule", "a"),))] == 5
    assert got[("feedwatch_matches_total", (("rule", "b"),))] == 1
    m.observe_delivery("hook", "retry", 0.1)
    got = samples(m.render().decode())
    hook = (("channel", "hook"),)
    assert got[("feedwatch_deliveries_total", (*hook, ("outcome", "retry")))] == 2
    assert got[("feedwatch_delivery_duration_seconds_count", hook)] == 2
    assert got[("feedwatch_delivery_duration_seconds_sum", hook)] == pytest.approx(0.4)
    bucket = (("channel", "hook"), ("le", "0.25"))
    assert got[("feedwatch_delivery_duration_seconds_bucket", bucket)] == 1


def test_outbox_depth_is_nan_while_the_store_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics()
    assert math.isnan(
        samples(metrics.render().decode())[("feedwatch_outbox_depth", ())]
    )

    def broken() -> int:
        raise StoreError("count_pending_deliveries failed on sqlite:///x: locked")

    metrics.track_outbox(broken)
    with caplog.at_level(logging.WARNING, logger="worker.metrics"):
        text = metrics.render().decode()
    assert math.isnan(samples(text)[("feedwatch_outbox_depth", ())])
    assert "cannot read the outbox depth" in caplog.text


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        ("http://h/f: status: HTTP 503", "status"),
        ("http://h/f: size: body over 15000000 bytes", "size"),
        ("http://h/f: address: 10.0.0.1 is a private address", "address"),
        ("http://h/f: empty document", "parse"),
        ("something else entirely", "parse"),
    ],
)
def test_error_kind_from_the_outcome(error: str, kind: str) -> None:
    outcome = FeedOutcome(url="http://h/f", status="error", error=error)
    assert error_kind(outcome) == kind
