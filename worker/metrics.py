"""Metrics: what the daemon did, as Prometheus counters, gauges and histograms.

Input: poll summaries, delivery outcomes, rule hits (``observe_*``) and a callable
for the outbox depth; output: the exposition text of ``/metrics`` (``render()``).

prometheus_client (~50 ms to import) loads only when the metrics are served
(``render``, ``registry``, ``track_outbox``): until then observations are kept as a
short list and replayed, so a one-shot ``poll --once`` never imports it.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, NamedTuple

from worker.errors import FeedwatchError

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    # Types only: poll.py and deliver.py import this module to report.
    from worker.poll import FeedOutcome, PollSummary

__all__ = ["CONTENT_TYPE", "FETCH_STAGES", "Metrics", "error_kind"]

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=1.0.0; charset=utf-8"
"""The Content-Type of ``Metrics.render()`` output: prometheus_client's
``CONTENT_TYPE_LATEST``, spelled out so importing this module stays cheap
(tests/api/test_metrics.py checks they agree)."""

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
# Observations kept before the collectors exist; past this many they are built (a
# daemon nobody scrapes must not grow a list forever).
_MAX_PENDING = 10_000


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


class _Observation(NamedTuple):
    """One counter increment or histogram observation, by collector attribute."""

    metric: str
    labels: tuple[str, ...]
    value: float
    histogram: bool = False


class _Collectors:
    """The prometheus_client objects behind a Metrics, in its own registry."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

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

    def apply(self, obs: _Observation) -> None:
        """Count one observation."""
        metric = getattr(self, obs.metric)
        child = metric.labels(*obs.labels) if obs.labels else metric
        if obs.histogram:
            child.observe(obs.value)
        else:
            child.inc(obs.value)


class Metrics:
    """The daemon's metrics in one registry of their own (never the global one), so
    two apps or tests in one process never share counts."""

    def __init__(
        self, registry: CollectorRegistry | None = None, *, keep: bool = False
    ) -> None:
        self._registry = registry
        self._lock = threading.Lock()
        self._built: _Collectors | None = None
        self._pending: list[_Observation] = []
        self._keep = keep
        """Keep every observation for ``take`` (a poll process's metrics, handed to
        the main process after each chunk), never building collectors."""

    @property
    def registry(self) -> CollectorRegistry:
        """The registry the metrics are served from (builds the collectors)."""
        return self._collectors().registry

    def _collectors(self) -> _Collectors:
        """The collectors, built on first use with every pending observation."""
        with self._lock:
            if self._built is None:
                built = _Collectors(self._registry)
                for obs in self._pending:
                    built.apply(obs)
                self._pending = []
                self._built = built
            return self._built

    def _record(self, obs: _Observation) -> None:
        with self._lock:
            if self._built is None and (
                self._keep or len(self._pending) < _MAX_PENDING
            ):
                self._pending.append(obs)
                return
        self._collectors().apply(obs)

    def take(self) -> list[_Observation]:
        """The observations kept so far, removed (see ``keep``)."""
        with self._lock:
            taken, self._pending = self._pending, []
        return taken

    def replay(self, observations: Iterable[_Observation]) -> None:
        """Count observations another Metrics ``take``-s (a poll process's)."""
        for obs in observations:
            self._record(_Observation(*obs))

    def observe_poll(self, summary: PollSummary, seconds: float) -> None:
        """Count one poll pass: each feed's outcome, its errors, the new items and
        the pass's duration."""
        for outcome in summary.outcomes:
            self._record(_Observation("polls", (outcome.status,), 1))
            if outcome.status == "error":
                self._record(_Observation("fetch_errors", (error_kind(outcome),), 1))
        if summary.new_items:
            self._record(_Observation("items_new", (), summary.new_items))
        self._record(_Observation("poll_duration", (), max(seconds, 0.0), True))

    def observe_matches(self, rules: Iterable[str]) -> None:
        """Count rule hits: one per rule id given (an item firing two rules gives two)."""
        for rule in rules:
            self._record(_Observation("matches", (rule,), 1))

    def observe_alerts(self, rules: Iterable[str]) -> None:
        """Count alerts raised: the rule id of each alert the store inserted."""
        for rule in rules:
            self._record(_Observation("alerts", (rule,), 1))

    def observe_delivery(self, channel: str, outcome: str, seconds: float) -> None:
        """Count one delivery attempt (``outcome``: delivered, retry or dead) and its
        duration."""
        self._record(_Observation("deliveries", (channel, outcome), 1))
        elapsed = max(seconds, 0.0)
        self._record(_Observation("delivery_duration", (channel,), elapsed, True))

    def track_outbox(self, depth: Callable[[], int]) -> None:
        """Read the outbox depth from ``depth`` at every scrape (a cheap count query);
        a failing read shows as NaN and is logged, the scrape still succeeds."""

        def read() -> float:
            try:
                return float(depth())
            except FeedwatchError as e:
                log.warning("metrics: cannot read the outbox depth: %s", e)
                return math.nan

        self._collectors().outbox_depth.set_function(read)

    def render(self) -> bytes:
        """The exposition text (blocking: it may run ``track_outbox``'s query, so
        call it from a thread in async code)."""
        from prometheus_client import generate_latest

        return generate_latest(self._collectors().registry)
