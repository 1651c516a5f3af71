"""Metrics: what the daemon did, as Prometheus counters, gauges and histograms.

Input: poll summaries, delivery outcomes, rule hits (``observe_*``) and a callable
for the outbox depth; output: the exposition text of ``/metrics`` (``render()``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from worker.errors import FeedwatchError

if TYPE_CHECKING:
    # Types only: poll.py and deliver.py import this module to report.
    from worker.poll import FeedOutcome, PollSummary

__all__ = ["CONTENT_TYPE", "FETCH_STAGES", "Metrics", "error_kind"]

log = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_LATEST
"""The Content-Type of ``Metrics.render()`` output."""

NAMESPACE = "feedwatch"

FETCH_STAGES = frozenset(
    {
        "address",
        "connect",
        "decode",
        "file",
        "network",
        "protocol",
        "redirect",
        "size",
        "status",
        "timeout",
        "url",
    }
)
"""The ``FetchError.stage`` values of ``worker.fetch``; any other error is ``parse``."""

_POLL_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
_DELIVERY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


def error_kind(outcome: FeedOutcome) -> str:
    """The ``kind`` label of a failed feed poll: the fetch stage, or ``parse``.

    Uses ``outcome.error_kind`` when the poll records one; otherwise reads the stage
    from the error text, which is ``"<url>: <stage>: <message>"`` for a FetchError.
    """
    recorded = getattr(outcome, "error_kind", None)
    if isinstance(recorded, str) and recorded:
        return recorded
    text = outcome.error or ""
    prefix = f"{outcome.url}: "
    if text.startswith(prefix):
        text = text[len(prefix) :]
    stage = text.split(": ", 1)[0]
    return stage if stage in FETCH_STAGES else "parse"


class Metrics:
    """The daemon's metrics in one registry of their own (never the global one), so
    two apps or tests in one process never share counts."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.polls = Counter(
            "polls",
            "Feed polls, by outcome (ok, not_modified, unchanged, error).",
            ["status"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.fetch_errors = Counter(
            "fetch_errors",
            "Failed feed polls, by kind (fetch stage such as timeout or status, or parse).",
            ["kind"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.items_new = Counter(
            "items_new",
            "New items stored.",
            namespace=NAMESPACE,
            registry=r,
        )
        self.matches = Counter(
            "matches",
            "Items a rule fired on, by rule.",
            ["rule"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.alerts = Counter(
            "alerts",
            "Alerts raised (one per story and rule), by rule.",
            ["rule"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.deliveries = Counter(
            "deliveries",
            "Delivery attempts, by channel and outcome (delivered, retry, dead).",
            ["channel", "outcome"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.outbox_depth = Gauge(
            "outbox_depth",
            "Deliveries pending in the outbox (read from the database at scrape time).",
            namespace=NAMESPACE,
            registry=r,
        )
        self.outbox_depth.set(math.nan)
        self.poll_duration = Histogram(
            "poll_duration_seconds",
            "Seconds one poll pass took (claim, fetch, parse, classify, record).",
            namespace=NAMESPACE,
            buckets=_POLL_BUCKETS,
            registry=r,
        )
        self.delivery_duration = Histogram(
            "delivery_duration_seconds",
            "Seconds one delivery attempt took, by channel.",
            ["channel"],
            namespace=NAMESPACE,
            buckets=_DELIVERY_BUCKETS,
            registry=r,
        )

    def observe_poll(self, summary: PollSummary, seconds: float) -> None:
        """Count one poll pass: each feed's outcome, its errors, the new items and
        the pass's duration."""
        for outcome in summary.outcomes:
            self.polls.labels(status=outcome.status).inc()
            if outcome.status == "error":
                self.fetch_errors.labels(kind=error_kind(outcome)).inc()
        if summary.new_items:
            self.items_new.inc(summary.new_items)
        self.poll_duration.observe(max(seconds, 0.0))

    def observe_matches(self, rules: Iterable[str]) -> None:
        """Count rule hits: one per rule id given (an item firing two rules gives two)."""
        for rule in rules:
            self.matches.labels(rule=rule).inc()

    def observe_alerts(self, rules: Iterable[str]) -> None:
        """Count alerts raised: the rule id of each alert the store inserted."""
        for rule in rules:
            self.alerts.labels(rule=rule).inc()

    def observe_delivery(self, channel: str, outcome: str, seconds: float) -> None:
        """Count one delivery attempt (``outcome``: delivered, retry or dead) and its
        duration."""
        self.deliveries.labels(channel=channel, outcome=outcome).inc()
        self.delivery_duration.labels(channel=channel).observe(max(seconds, 0.0))

    def track_outbox(self, depth: Callable[[], int]) -> None:
        """Read the outbox depth from ``depth`` at every scrape (a cheap count query);
        a failing read shows as NaN and is logged, the scrape still succeeds."""

        def read() -> float:
            try:
                return float(depth())
            except FeedwatchError as e:
                log.warning("metrics: cannot read the outbox depth: %s", e)
                return math.nan

        self.outbox_depth.set_function(read)

    def render(self) -> bytes:
        """The exposition text (blocking: it may run ``track_outbox``'s query, so
        call it from a thread in async code)."""
        return generate_latest(self.registry)
