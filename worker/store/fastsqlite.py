"""Store stage: ``FastSQLiteStore``, a SQLite file's store on the standard library.

Input: a ``sqlite:///path`` URL; output: a Store whose polling path (claims, known
ids, batched poll writes, story reads, and the outbox drain a poll that alerts runs)
is on :mod:`sqlite3` directly, so a ``poll --once`` never imports SQLAlchemy and
writes rows without statement compilation or type processors. Every other method
is forwarded to a SQLAlchemy :class:`~worker.store.sqlite.SQLiteStore` on the same
file, created on first use.

Rows are written exactly as ``SqlStore`` writes them on SQLite: datetimes as UTC
text ``YYYY-MM-DD HH:MM:SS.ffffff`` (``UTCDateTime``), JSON columns with
``json.dumps`` defaults, new items added to the full-text index once per
transaction (``worker.store.fts``; triggers on ``items`` do deletes and updates).
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar
from urllib.parse import quote, unquote

from pydantic import ValidationError

from worker.errors import NotFoundError, StoreError
from worker.models import (
    Alert,
    Delivery,
    DeliveryStatus,
    Event,
    Feed,
    FeedStatus,
    Item,
    Story,
    StorySource,
    utcnow,
)
from worker.store.base import (
    AlertRecord,
    AlertRow,
    ClaimedDelivery,
    DeliveryOutcome,
    DigestRun,
    PollIntent,
    PollRecord,
    StoryLink,
    StoryRow,
    Subscription,
    SubscriptionState,
    lost_lease,
)
from worker.store.fts import LAST_ITEM_ID, index_items_after
from worker.store.revisions import migration_heads

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from worker.store.sqlite import SQLiteStore

__all__ = ["FastSQLiteStore", "sqlite_file_url"]

log = logging.getLogger(__name__)

T = TypeVar("T")

# Same bounds as SqlStore: IN (...) lists, and characters of a story source's lede.
_CHUNK = 1000
LEDE_CHARS = 300
# Idle connections kept for reuse (SQLAlchemy's QueuePool keeps 5 as well).
_POOL_SIZE = 5

_FILE_URL = re.compile(r"(sqlite|sqlite\+pysqlite):///([^?]+)")


def sqlite_file_url(url: str) -> tuple[str, str] | None:
    """``(database path, display URL)`` of a plain ``sqlite:///path`` URL, read as
    SQLAlchemy reads it; None for anything else (in memory, query options, hosts,
    other schemes), which stays with the SQLAlchemy stores."""
    m = _FILE_URL.fullmatch(url)
    if m is None:
        return None
    database = unquote(m.group(2))
    if database in ("", ":memory:"):
        return None
    return database, f"{m.group(1)}:///{quote(database, safe=' +/')}"


class _NaiveDatetime(ValueError):
    """A naive datetime reached a UTCDateTime column (it has no instant)."""


def _dt(value: datetime | None) -> str | None:
    """A datetime as ``UTCDateTime`` stores it on SQLite (UTC, microseconds)."""
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise _NaiveDatetime(f"naive datetime {value.isoformat()} (expected UTC-aware)")
    # In UTC the ISO form always ends "+00:00"; SQLite keeps no offset.
    return value.astimezone(UTC).isoformat(" ", "microseconds")[:-6]


def _read_dt(value: str | None) -> datetime | None:
    """A stored datetime, back as aware UTC (as ``UTCDateTime`` reads it)."""
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _json(value: Any) -> str:
    # SQLAlchemy's JSON type on SQLite serialises with plain json.dumps.
    return json.dumps(value)


def _chunks(values: Sequence[T], size: int = _CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _marks(n: int) -> str:
    # SQL text here is built only from this module's constants and runs of "?"
    # (hence the S608 waivers): every value is a bound parameter.
    return ", ".join("?" * n)


def _describe(error: BaseException) -> str:
    """The driver's own words (first line), as ``SqlStore`` reports them."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


def _is_transient(error: sqlite3.Error) -> bool:
    message = str(error).lower()
    return isinstance(error, sqlite3.OperationalError) and (
        "database is locked" in message or "database is busy" in message
    )


_FEED_COLUMNS = (
    "id, url, title, interval, tags, status, etag, last_modified, body_hash, "
    "last_checked_at, next_check_at, last_error, error_count"
)


def _feed_from_row(row: Sequence[Any]) -> Feed:
    return Feed(
        id=row[0],
        url=row[1],
        title=row[2],
        interval=row[3],
        tags=tuple(json.loads(row[4]) or ()),
        status=FeedStatus(row[5]),
        etag=row[6],
        last_modified=row[7],
        body_hash=row[8],
        last_checked_at=_read_dt(row[9]),
        next_check_at=_read_dt(row[10]),
        last_error=row[11],
        error_count=row[12],
    )


# Poll-state columns of a feed row, with its lease released (SqlStore._feed_state).
_STATE_SET = (
    "status = ?, etag = ?, last_modified = ?, body_hash = ?, last_checked_at = ?, "
    "next_check_at = ?, last_error = ?, error_count = ?, lease_owner = NULL, "
    "lease_expires_at = NULL"
)


def _state_params(feed: Feed) -> tuple[Any, ...]:
    return (
        feed.status.value,
        feed.etag,
        feed.last_modified,
        feed.body_hash,
        _dt(feed.last_checked_at),
        _dt(feed.next_check_at),
        feed.last_error,
        feed.error_count,
    )


_ADD_FEED = (
    "INSERT INTO feeds (url, title, interval, tags, status, etag, last_modified, "
    "body_hash, last_checked_at, next_check_at, last_error, error_count, "
    "lease_owner, lease_expires_at, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?) "
    "ON CONFLICT (url) DO UPDATE SET title = coalesce(excluded.title, feeds.title), "
    "interval = excluded.interval, tags = excluded.tags"
)
# Config feeds (SqlStore.add_config_feeds): one matched by the URL it was configured
# under keeps its URL; otherwise the feed at that URL becomes the configured one.
_UPDATE_CONFIG_FEED = (
    "UPDATE feeds SET interval = ?, tags = ?, title = coalesce(?, feeds.title) "
    "WHERE id = ?"
)
_ADD_CONFIG_FEED = (
    "INSERT INTO feeds (url, title, interval, tags, status, etag, last_modified, "
    "body_hash, last_checked_at, next_check_at, last_error, error_count, "
    "lease_owner, lease_expires_at, created_at, config_url) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?, ?) "
    "ON CONFLICT (url) DO UPDATE SET interval = excluded.interval, "
    "tags = excluded.tags, title = coalesce(excluded.title, feeds.title), "
    "config_url = excluded.config_url"
)
# A poll that changed nothing but the feed's state; a NULL title keeps the known one.
_UPDATE_STATE_BY_ID = (
    f"UPDATE feeds SET title = coalesce(?, feeds.title), {_STATE_SET} WHERE id = ?"  # noqa: S608
)
# Items go in as multi-row VALUES, in SQLAlchemy's insertmanyvalues pages (1000
# rows, fewer where SQLite before 3.32 allows only 999 parameters), one statement
# per page rather than one per row as executemany would. The full-text index is
# written after them, once per transaction, as SqlStore writes it.
_ITEM_ROW = "(?, ?, ?, ?, ?, ?, ?, ?, ?)"
_ITEMS_PAGE = 1000 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999 // 9
_INSERT_ITEMS = (
    "INSERT INTO items (feed_id, item_id, feed_url, title, summary, url, published, "
    "source, first_seen) VALUES {rows} ON CONFLICT (feed_id, item_id) DO NOTHING"
)
_INSERT_MATCH = (
    "INSERT INTO matches (item_row_id, rule, topics, score, decision) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (item_row_id, rule) DO NOTHING"
)
# Keep the first title and first_seen; move last_seen forward only.
_UPSERT_STORY = (
    "INSERT INTO stories (id, title, first_seen, last_seen, event) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET last_seen = CASE WHEN "
    "(excluded.last_seen > stories.last_seen) THEN excluded.last_seen ELSE "
    "stories.last_seen END, event = coalesce(excluded.event, stories.event)"
)
_INSERT_STORY_ITEM = (
    "INSERT INTO story_items (story_id, item_row_id) VALUES (?, ?) "
    "ON CONFLICT (story_id, item_row_id) DO NOTHING"
)
_INSERT_ALERT = (
    "INSERT INTO alerts (id, story_id, rule, created_at, payload, supersedes) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING"
)
# No ON CONFLICT: a channel listed twice is a bug and must roll back.
_INSERT_DELIVERY = (
    "INSERT INTO deliveries (alert_id, channel, status, attempts, next_attempt_at, "
    "created_at) VALUES (?, ?, ?, ?, ?, ?)"
)
_UPSERT_HUB = (
    "INSERT INTO subscriptions (feed_id, hub, topic, state, created_at, updated_at) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (feed_id) DO UPDATE SET "
    "hub = excluded.hub, topic = excluded.topic, secret = NULL, state = ?, "
    "lease_seconds = NULL, lease_expires_at = NULL, requested_at = NULL, "
    "verified_at = NULL, last_error = NULL, updated_at = excluded.updated_at "
    "WHERE subscriptions.hub != excluded.hub OR subscriptions.topic != excluded.topic"
)


class FastSQLiteStore:
    """The Store on one SQLite file, its polling path on :mod:`sqlite3`.

    Transactions are those of ``SQLiteStore``: ``BEGIN IMMEDIATE`` for every write
    (a claim's SELECT and UPDATE run under the single write lock, so two workers
    never lease the same feed), ``BEGIN DEFERRED`` for reads; WAL, busy timeout,
    foreign keys on, ``synchronous=NORMAL``; "database is locked" retried with
    bounded backoff; every driver error raised as :class:`StoreError` naming the
    operation and the database. Connections are pooled and used by one thread at
    a time. Methods off the polling path are forwarded to a ``SQLiteStore``
    (SQLAlchemy) on the same file, created, and SQLAlchemy imported, on first use.
    """

    def __init__(
        self,
        url: str,
        *,
        busy_timeout: float = 5.0,
        retries: int = 5,
        backoff: float = 0.05,
    ) -> None:
        parsed = sqlite_file_url(url)
        if parsed is None:
            raise ValueError(f"not a sqlite:///path URL: {url!r}")
        database, self.display_url = parsed
        self.url = url
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        # Where SQLAlchemy's pysqlite dialect opens it, so both stores share a file.
        self._path = os.path.abspath(database)
        self._busy_timeout = busy_timeout
        self._retries = max(0, retries)
        self._backoff = backoff
        self._idle: list[sqlite3.Connection] = []
        self._in_use = 0
        self._pool_lock = threading.Lock()
        self._sql_store: SQLiteStore | None = None
        self._sql_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.display_url!r})"

    # -- connections and transactions --------------------------------------------

    @property
    def connections_in_use(self) -> int:
        """Connections checked out right now (tests check that none leaked)."""
        return self._in_use

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: BEGIN is ours; sqlite3's legacy transaction control
        # would not begin before SELECTs and breaks BEGIN IMMEDIATE.
        conn = sqlite3.connect(
            self._path,
            timeout=self._busy_timeout,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout * 1000):d}")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA synchronous=NORMAL")
        except BaseException:
            conn.close()
            raise
        return conn

    def _checkout(self) -> sqlite3.Connection:
        with self._pool_lock:
            conn = self._idle.pop() if self._idle else None
            self._in_use += 1
        if conn is None:
            try:
                conn = self._connect()
            except BaseException:
                with self._pool_lock:
                    self._in_use -= 1
                raise
        return conn

    def _checkin(self, conn: sqlite3.Connection) -> None:
        with self._pool_lock:
            self._in_use -= 1
            keep = not conn.in_transaction and len(self._idle) < _POOL_SIZE
            if keep:
                self._idle.append(conn)
        if not keep:
            conn.close()

    def _attempt(self, work: Callable[[sqlite3.Connection], T], write: bool) -> T:
        conn = self._checkout()
        try:
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN DEFERRED")
            try:
                result = work(conn)
                conn.execute("COMMIT")
                return result
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
        finally:
            self._checkin(conn)

    def _run(
        self,
        operation: str,
        work: Callable[[sqlite3.Connection], T],
        *,
        write: bool = True,
    ) -> T:
        """Run ``work`` in one transaction, retrying a locked database with backoff."""
        delay = self._backoff
        for attempt in range(self._retries + 1):
            try:
                return self._attempt(work, write)
            except StoreError:
                raise
            except sqlite3.Error as e:
                if attempt < self._retries and _is_transient(e):
                    log.warning(
                        "%s on %s: %s; retry %d of %d",
                        operation,
                        self.display_url,
                        _describe(e),
                        attempt + 1,
                        self._retries,
                    )
                    time.sleep(delay * random.uniform(1.0, 2.0))  # noqa: S311
                    delay = min(delay * 2, 2.0)
                    continue
                raise StoreError(
                    f"{operation} failed on {self.display_url}: {_describe(e)}"
                ) from e
            except _NaiveDatetime as e:
                raise StoreError(
                    f"{operation} failed on {self.display_url}: ValueError: {e}"
                ) from e
            except ValidationError as e:
                raise StoreError(
                    f"{operation} on {self.display_url}: a stored row is not valid: "
                    f"{e.errors()[0].get('msg', e)}"
                ) from e
        raise AssertionError("unreachable: the last attempt returns or raises")

    # -- the SQLAlchemy store, for everything off the polling path ----------------

    def _sql(self) -> SQLiteStore:
        store = self._sql_store
        if store is None:
            with self._sql_lock:
                store = self._sql_store
                if store is None:
                    # SQLAlchemy costs ~0.35 s to import: only when first needed.
                    from worker.store.sqlite import SQLiteStore

                    store = SQLiteStore(
                        self.url,
                        busy_timeout=self._busy_timeout,
                        retries=self._retries,
                        backoff=self._backoff,
                    )
                    self._sql_store = store
        return store

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine of the forwarded store (created on first use)."""
        return self._sql().engine

    # -- lifecycle ------------------------------------------------------------------

    def schema_is_current(self) -> bool:
        """True if the database is at the newest migration (two cheap queries)."""
        heads = migration_heads()
        if heads is None:
            return False

        def work(conn: sqlite3.Connection) -> bool:
            if not conn.execute('PRAGMA main.table_info("alembic_version")').fetchall():
                return False
            rows = conn.execute("SELECT version_num FROM alembic_version")
            return {str(r[0]) for r in rows} == heads

        return self._run("schema_is_current", work, write=False)

    def migrate(self) -> None:
        """Create or upgrade the schema (Alembic, through SQLAlchemy) unless current."""
        if self.schema_is_current():
            return
        self._sql().migrate()

    def close(self) -> None:
        """Close the idle connections and the forwarded store's pool."""
        with self._pool_lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
        if self._sql_store is not None:
            self._sql_store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def ping(self) -> None:
        """Readiness: one cheap read of a feedwatch table."""
        self._run(
            "ping",
            lambda conn: conn.execute("SELECT id FROM feeds LIMIT 1").fetchall(),
            write=False,
        )

    # -- feeds ----------------------------------------------------------------------

    def add_feed(self, feed: Feed) -> Feed:
        """Subscribe, or update the url's interval, title and tags; keeps poll state."""

        def work(conn: sqlite3.Connection) -> Feed:
            conn.execute(
                _ADD_FEED,
                (
                    feed.url,
                    feed.title,
                    feed.interval,
                    _json(list(feed.tags)),
                    *_state_params(feed),
                    _dt(utcnow()),
                ),
            )
            return _one_feed(conn, "url = ?", feed.url)

        return self._run("add_feed", work)

    def add_config_feeds(self, entries: Sequence[Feed]) -> int:
        """Subscribe the config's feeds: matched by the URL they were configured
        under, then by URL, else added; returns how many."""
        if not entries:
            return 0

        def work(conn: sqlite3.Connection) -> int:
            rows = conn.execute(
                "SELECT config_url, id FROM feeds WHERE config_url IS NOT NULL "
                "ORDER BY id DESC"
            )
            # Newest first, so the oldest feed of a configured URL wins.
            configured: dict[str, int] = dict(rows.fetchall())
            matched: list[tuple[Any, ...]] = []
            added: dict[str, tuple[Any, ...]] = {}
            created = _dt(utcnow())
            for feed in entries:
                tags = _json(list(feed.tags))
                fid = configured.get(feed.url)
                if fid is not None:
                    matched.append((feed.interval, tags, feed.title, fid))
                    continue
                added.pop(feed.url, None)
                added[feed.url] = (
                    feed.url,
                    feed.title,
                    feed.interval,
                    tags,
                    *_state_params(feed),
                    created,
                    feed.url,
                )
            if matched:
                conn.executemany(_UPDATE_CONFIG_FEED, matched)
            if added:
                conn.executemany(_ADD_CONFIG_FEED, list(added.values()))
            return len(entries)

        return self._run("add_config_feeds", work)

    def remove_feed(self, url: str) -> None:
        """Unsubscribe; its items stay (with ``feed_id`` NULL) for digests."""

        def work(conn: sqlite3.Connection) -> None:
            if conn.execute("DELETE FROM feeds WHERE url = ?", (url,)).rowcount == 0:
                raise NotFoundError("feed", url)

        self._run("remove_feed", work)

    def get_feed(self, url: str) -> Feed:
        """The stored feed for ``url``. NotFoundError if unknown."""
        return self._run(
            "get_feed", lambda conn: _one_feed(conn, "url = ?", url), write=False
        )

    def feed_by_id(self, feed_id: int) -> Feed:
        """The stored feed with this id. NotFoundError if unknown."""
        return self._run(
            "feed_by_id", lambda conn: _one_feed(conn, "id = ?", feed_id), write=False
        )

    def moved_config_feeds(self) -> dict[int, str]:
        """Config feeds that moved: feed id -> the URL the config lists them under."""
        return self._run(
            "moved_config_feeds",
            lambda conn: dict(
                conn.execute(
                    "SELECT id, config_url FROM feeds "
                    "WHERE config_url IS NOT NULL AND config_url != url"
                ).fetchall()
            ),
            write=False,
        )

    def list_feeds(self) -> list[Feed]:
        """Every feed, disabled ones included, ordered by id."""

        def work(conn: sqlite3.Connection) -> list[Feed]:
            rows = conn.execute(f"SELECT {_FEED_COLUMNS} FROM feeds ORDER BY id")  # noqa: S608
            return [_feed_from_row(row) for row in rows]

        return self._run("list_feeds", work, write=False)

    def update_feed_state(self, feed: Feed) -> None:
        """Write a feed's poll state alone (not-modified or failed poll); frees its lease."""
        self._run("update_feed_state", lambda conn: _write_feed_state(conn, feed))

    def claim_due_feeds(
        self,
        worker_id: str,
        now: datetime,
        limit: int,
        lease_seconds: float,
        *,
        all_feeds: bool = False,
    ) -> list[Feed]:
        """Lease up to ``limit`` due, non-disabled feeds with no live lease.

        Order: never-checked feeds first, then by next check, then by id.
        """
        if limit <= 0:
            return []

        def work(conn: sqlite3.Connection) -> list[Feed]:
            at = _dt(now)
            expires = _dt(now + timedelta(seconds=lease_seconds))
            # A live lease blocks its own worker too: a feed still being polled
            # must not be handed out twice, whoever asks.
            sql = (
                "SELECT id FROM feeds WHERE status != ? AND (lease_owner IS NULL OR "
                "lease_expires_at IS NULL OR lease_expires_at <= ?)"
            )
            params: list[Any] = [FeedStatus.DISABLED.value, at]
            if not all_feeds:
                sql += " AND (next_check_at IS NULL OR next_check_at <= ?)"
                params.append(at)
            sql += " ORDER BY next_check_at ASC NULLS FIRST, id LIMIT ?"
            params.append(limit)
            ids = [row[0] for row in conn.execute(sql, params)]
            if not ids:
                return []
            marks = _marks(len(ids))
            conn.execute(
                "UPDATE feeds SET lease_owner = ?, lease_expires_at = ?, "  # noqa: S608
                f"lease_claimed_at = ? WHERE id IN ({marks})",
                (worker_id, expires, at, *ids),
            )
            select = f"SELECT {_FEED_COLUMNS} FROM feeds WHERE id IN ({marks})"  # noqa: S608
            rows = conn.execute(select, ids)
            by_id = {row[0]: _feed_from_row(row) for row in rows}
            return [by_id[i] for i in ids]

        return self._run("claim_due_feeds", work)

    def move_feed(self, feed_id: int, url: str) -> bool:
        """Change a feed's URL (a permanent redirect); False, changing nothing, if
        another feed already has ``url``. NotFoundError if the feed is unknown."""

        def work(conn: sqlite3.Connection) -> bool:
            taken = conn.execute(
                "SELECT id FROM feeds WHERE url = ? AND id != ?", (url, feed_id)
            ).fetchone()
            if taken is not None:
                return False
            moved = conn.execute(
                "UPDATE feeds SET url = ? WHERE id = ?", (url, feed_id)
            ).rowcount
            if moved == 0:
                raise NotFoundError("feed", feed_id)
            return True

        return self._run("move_feed", work)

    # -- poll -----------------------------------------------------------------------

    def known_item_ids(self, feed_id: int, item_ids: Sequence[str]) -> set[str]:
        """Which of ``item_ids`` the feed already has."""
        return self._run(
            "known_item_ids",
            lambda conn: _known(conn, feed_id, item_ids),
            write=False,
        )

    def known_item_ids_many(
        self, ids_by_feed: Mapping[int, Sequence[str]]
    ) -> dict[int, set[str]]:
        """For each feed, which of its ``item_ids`` it already has (one transaction)."""

        def work(conn: sqlite3.Connection) -> dict[int, set[str]]:
            return {fid: _known(conn, fid, ids) for fid, ids in ids_by_feed.items()}

        return self._run("known_item_ids_many", work, write=False)

    def recent_item_counts(
        self, feed_ids: Sequence[int], since: datetime
    ) -> dict[int, int]:
        """Items per feed published (or, undated, first seen) since ``since``: the
        update frequency that adaptive scheduling reads. Feeds with none count 0."""

        def work(conn: sqlite3.Connection) -> dict[int, int]:
            counts = dict.fromkeys(feed_ids, 0)
            at = _dt(since)
            for chunk in _chunks(list(dict.fromkeys(feed_ids))):
                rows = conn.execute(
                    "SELECT feed_id, count(*) FROM items WHERE feed_id IN "  # noqa: S608
                    f"({_marks(len(chunk))}) AND coalesce(published, first_seen) >= ? "
                    "GROUP BY feed_id",
                    (*chunk, at),
                )
                for fid, n in rows:
                    counts[fid] = int(n)
            return counts

        return self._run("recent_item_counts", work, write=False)

    def record_poll(self, intent: PollIntent) -> PollRecord:
        """Write a poll's result in one transaction and release the feed's lease;
        with ``intent.lease``, the feed's state only if that claim still holds it."""

        def work(conn: sqlite3.Connection) -> PollRecord:
            last = _last_item_id(conn) if intent.items else 0
            [stale] = _stale_polls(conn, [intent])
            record = _record_poll(conn, intent, stale)
            if record.new_items:
                index_items_after(conn.execute, last)
            return record

        return self._run("record_poll", work)

    def record_polls(self, intents: Sequence[PollIntent]) -> list[PollRecord]:
        """``record_poll`` for many feeds in one transaction, records in order.

        Feeds whose poll changed nothing but their state are written with one
        executemany UPDATE; those whose lease was lost keep their state (their
        items are written).
        """
        if not intents:
            return []

        def work(conn: sqlite3.Connection) -> list[PollRecord]:
            records: list[PollRecord | None] = []
            state_only: list[tuple[Any, ...]] = []
            last = _last_item_id(conn) if any(i.items for i in intents) else 0
            stale = _stale_polls(conn, intents)
            for intent, lost in zip(intents, stale, strict=True):
                if lost is not None:
                    records.append(_record_poll(conn, intent, lost))
                    continue
                if (
                    intent.items
                    or intent.decisions
                    or intent.story_links
                    or intent.alerts
                    or intent.feed.id is None
                ):
                    records.append(_record_poll(conn, intent))
                else:
                    f = intent.feed
                    state_only.append((f.title, *_state_params(f), f.id))
                    records.append(None)
            if state_only:
                written = conn.executemany(_UPDATE_STATE_BY_ID, state_only).rowcount
                if written != len(state_only):
                    raise NotFoundError("feed", "one of the polled feeds")
            if any(r is not None and r.new_items for r in records):
                index_items_after(conn.execute, last)
            empty = PollRecord(new_items=0, new_alerts=0)
            return [r if r is not None else empty for r in records]

        return self._run("record_polls", work)

    def recent_stories(self, since: datetime) -> list[Story]:
        """Stories seen since ``since`` with their sources, newest first."""

        def work(conn: sqlite3.Connection) -> list[Story]:
            at = _dt(since)
            sources = _sources(conn, at)
            rows = conn.execute(
                "SELECT id, title, first_seen, last_seen, event FROM stories "
                "WHERE last_seen >= ? ORDER BY last_seen DESC, id",
                (at,),
            )
            return [
                Story(
                    id=row[0],
                    title=row[1],
                    first_seen=_read_dt(row[2]),
                    last_seen=_read_dt(row[3]),
                    event=(
                        None
                        if row[4] is None
                        else Event.model_validate(json.loads(row[4]))
                    ),
                    sources=tuple(sources.get(row[0], ())),
                )
                for row in rows
            ]

        return self._run("recent_stories", work, write=False)

    def story_alerts(self, story_ids: Sequence[str]) -> dict[str, list[Alert]]:
        """The alerts each story has raised, oldest first."""

        def work(conn: sqlite3.Connection) -> dict[str, list[Alert]]:
            found: dict[str, list[Alert]] = defaultdict(list)
            for chunk in _chunks(list(dict.fromkeys(story_ids))):
                rows = conn.execute(
                    "SELECT story_id, payload FROM alerts WHERE story_id IN "  # noqa: S608
                    f"({_marks(len(chunk))}) ORDER BY created_at, id",
                    chunk,
                )
                for story_id, payload in rows:
                    found[story_id].append(Alert.model_validate(json.loads(payload)))
            return dict(found)

        return self._run("story_alerts", work, write=False)

    def count_items(self) -> int:
        """How many items are stored (all feeds, removed feeds' items included)."""
        return self._run(
            "count_items",
            lambda conn: int(conn.execute("SELECT count(*) FROM items").fetchone()[0]),
            write=False,
        )

    def count_pending_deliveries(self) -> int:
        """Outbox depth: deliveries still pending (due or waiting for a retry)."""
        return self._run(
            "count_pending_deliveries",
            lambda conn: int(
                conn.execute(
                    "SELECT count(*) FROM deliveries WHERE status = ?",
                    (DeliveryStatus.PENDING.value,),
                ).fetchone()[0]
            ),
            write=False,
        )

    # -- WebSub on the polling path -------------------------------------------------

    def record_hubs(self, found: Mapping[int, tuple[str, str]], now: datetime) -> int:
        """Note each feed's (hub, topic); a new or changed pair starts over."""
        if not found:
            return 0

        def work(conn: sqlite3.Connection) -> int:
            at = _dt(now)
            discovered = SubscriptionState.DISCOVERED.value
            changed = 0
            for feed_id, (hub, topic) in sorted(found.items()):
                changed += conn.execute(
                    _UPSERT_HUB,
                    (feed_id, hub, topic, discovered, at, at, discovered),
                ).rowcount
            return changed

        return self._run("record_hubs", work)

    def push_fed_feeds(self, now: datetime, silent_since: datetime) -> set[int]:
        """Feeds with a live subscription whose hub spoke since ``silent_since``."""

        def work(conn: sqlite3.Connection) -> set[int]:
            rows = conn.execute(
                "SELECT feed_id FROM subscriptions WHERE state = ? AND "
                "lease_expires_at > ? AND coalesce(last_push_at, verified_at) >= ?",
                (SubscriptionState.VERIFIED.value, _dt(now), _dt(silent_since)),
            )
            return {row[0] for row in rows}

        return self._run("push_fed_feeds", work, write=False)

    # -- outbox: the drain that follows a poll that alerted ------------------------

    def claim_deliveries(
        self, worker_id: str, now: datetime, limit: int, lease_seconds: float
    ) -> list[ClaimedDelivery]:
        """Lease up to ``limit`` pending deliveries due at ``now``, oldest first."""
        if limit <= 0:
            return []

        def work(conn: sqlite3.Connection) -> list[ClaimedDelivery]:
            at = _dt(now)
            ids = [
                row[0]
                for row in conn.execute(
                    "SELECT id FROM deliveries WHERE status = ? AND "
                    "(next_attempt_at IS NULL OR next_attempt_at <= ?) AND "
                    "(lease_owner IS NULL OR lease_expires_at IS NULL OR "
                    "lease_expires_at <= ?) "
                    "ORDER BY next_attempt_at ASC NULLS FIRST, id LIMIT ?",
                    (DeliveryStatus.PENDING.value, at, at, limit),
                )
            ]
            if not ids:
                return []
            marks = _marks(len(ids))
            conn.execute(
                "UPDATE deliveries SET lease_owner = ?, lease_expires_at = ? "  # noqa: S608
                f"WHERE id IN ({marks})",
                (worker_id, _dt(now + timedelta(seconds=lease_seconds)), *ids),
            )
            rows = conn.execute(
                f"SELECT {_DELIVERY_COLUMNS}, alerts.payload FROM deliveries "  # noqa: S608
                "JOIN alerts ON alerts.id = deliveries.alert_id "
                f"WHERE deliveries.id IN ({marks})",
                ids,
            )
            by_id = {
                row[0]: ClaimedDelivery(
                    delivery=_delivery_from_row(row),
                    alert=Alert.model_validate(json.loads(row[9])),
                )
                for row in rows
            }
            return [by_id[i] for i in ids]

        return self._run("claim_deliveries", work)

    def record_delivery(self, outcome: DeliveryOutcome) -> None:
        """Record one attempt (delivered, retry later, or dead) and release the lease."""

        def work(conn: sqlite3.Connection) -> None:
            sets, params = _delivery_update(outcome)
            written = conn.execute(
                f"UPDATE deliveries SET {sets} WHERE id = ?",  # noqa: S608
                (*params, outcome.delivery_id),
            ).rowcount
            if written == 0:
                raise NotFoundError("delivery", outcome.delivery_id)

        self._run("record_delivery", work)

    def delivered_times(self, channel: str, since: datetime) -> list[datetime]:
        """When the channel's deliveries since ``since`` were made, oldest first
        (digest releases of held alerts do not count)."""

        def work(conn: sqlite3.Connection) -> list[datetime]:
            rows = conn.execute(
                "SELECT delivered_at FROM deliveries WHERE channel = ? AND "
                "status = ? AND delivered_at >= ? AND digest_id IS NULL "
                "ORDER BY delivered_at",
                (channel, DeliveryStatus.DELIVERED.value, _dt(since)),
            )
            # delivered_at >= ? leaves no NULLs.
            return [t for (v,) in rows if (t := _read_dt(v)) is not None]

        return self._run("delivered_times", work, write=False)

    # -- forwarded to the SQLAlchemy store ------------------------------------------

    def redeliver(self, alert_id: str, now: datetime) -> int:
        return self._sql().redeliver(alert_id, now)

    def held_alerts(self, channel: str) -> list[Alert]:
        return self._sql().held_alerts(channel)

    def release_held(
        self, channel: str, alert_ids: Sequence[str], digest_id: str, now: datetime
    ) -> int:
        return self._sql().release_held(channel, alert_ids, digest_id, now)

    def list_alerts(
        self,
        since: datetime | None = None,
        *,
        failed_only: bool = False,
        limit: int = 100,
    ) -> list[AlertRow]:
        return self._sql().list_alerts(since, failed_only=failed_only, limit=limit)

    def get_alert(self, alert_id: str) -> AlertRow:
        return self._sql().get_alert(alert_id)

    def stories(self, since: datetime, until: datetime | None = None) -> list[StoryRow]:
        return self._sql().stories(since, until)

    def item_count_by_feed(self) -> dict[str, int]:
        return self._sql().item_count_by_feed()

    def delete_items_before(self, cutoff: datetime) -> int:
        return self._sql().delete_items_before(cutoff)

    def search_items(self, q: str, limit: int = 50) -> list[Item]:
        return self._sql().search_items(q, limit)

    def claim_feed(
        self, feed_id: int, worker_id: str, now: datetime, lease_seconds: float
    ) -> Feed | None:
        return self._sql().claim_feed(feed_id, worker_id, now, lease_seconds)

    def list_subscriptions(self) -> list[Subscription]:
        return self._sql().list_subscriptions()

    def get_subscription(self, feed_id: int) -> Subscription:
        return self._sql().get_subscription(feed_id)

    def subscription_requested(
        self, feed_id: int, secret: str, now: datetime
    ) -> Subscription:
        return self._sql().subscription_requested(feed_id, secret, now)

    def subscription_failed(self, feed_id: int, error: str, now: datetime) -> None:
        self._sql().subscription_failed(feed_id, error, now)

    def verify_subscription(
        self, feed_id: int, topic: str, lease_seconds: int, now: datetime
    ) -> bool:
        return self._sql().verify_subscription(feed_id, topic, lease_seconds, now)

    def deny_subscription(
        self, feed_id: int, topic: str, reason: str | None, now: datetime
    ) -> bool:
        return self._sql().deny_subscription(feed_id, topic, reason, now)

    def expire_subscriptions(self, now: datetime) -> int:
        return self._sql().expire_subscriptions(now)

    def record_push(self, feed_id: int, now: datetime) -> None:
        self._sql().record_push(feed_id, now)

    def claim_digest_run(
        self,
        name: str,
        digest_id: str,
        worker_id: str,
        now: datetime,
        lease_seconds: float = 600.0,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> bool:
        return self._sql().claim_digest_run(
            name, digest_id, worker_id, now, lease_seconds, since=since, until=until
        )

    def finish_digest_run(self, name: str, digest_id: str, now: datetime) -> None:
        self._sql().finish_digest_run(name, digest_id, now)

    def unsent_digest_runs(
        self, claimed_before: datetime, ended_after: datetime
    ) -> list[DigestRun]:
        return self._sql().unsent_digest_runs(claimed_before, ended_after)


# -- statements run inside a transaction ----------------------------------------------


_DELIVERY_COLUMNS = (
    "deliveries.id, deliveries.alert_id, deliveries.channel, deliveries.status, "
    "deliveries.attempts, deliveries.next_attempt_at, deliveries.last_error, "
    "deliveries.delivered_at, deliveries.created_at"
)


def _delivery_from_row(row: Sequence[Any]) -> Delivery:
    return Delivery(
        id=row[0],
        alert_id=row[1],
        channel=row[2],
        status=DeliveryStatus(row[3]),
        attempts=row[4],
        next_attempt_at=_read_dt(row[5]),
        last_error=row[6],
        delivered_at=_read_dt(row[7]),
        created_at=_read_dt(row[8]),
    )


def _delivery_update(outcome: DeliveryOutcome) -> tuple[str, tuple[Any, ...]]:
    """SET clause and parameters of ``SqlStore.record_delivery`` for one outcome
    (the lease is released whatever it was)."""
    release = "lease_owner = NULL, lease_expires_at = NULL"
    if outcome.held:
        # Not an attempt: quiet hours hold it for a digest.
        sets = "status = ?, next_attempt_at = NULL"
        params: tuple[Any, ...] = (DeliveryStatus.HELD.value,)
    elif outcome.defer_until is not None:
        # Not an attempt: a rate limit (or quiet hours ending) puts it off.
        sets = "status = ?, next_attempt_at = ?"
        params = (DeliveryStatus.PENDING.value, _dt(outcome.defer_until))
    elif outcome.ok:
        sets = (
            "attempts = attempts + 1, status = ?, delivered_at = ?, "
            "next_attempt_at = NULL, last_error = NULL"
        )
        params = (DeliveryStatus.DELIVERED.value, _dt(outcome.attempted_at))
    elif outcome.retry_at is not None:
        sets = (
            "attempts = attempts + 1, status = ?, next_attempt_at = ?, last_error = ?"
        )
        params = (
            DeliveryStatus.PENDING.value,
            _dt(outcome.retry_at),
            outcome.error,
        )
    else:
        sets = "attempts = attempts + 1, status = ?, next_attempt_at = NULL, last_error = ?"
        params = (DeliveryStatus.DEAD.value, outcome.error)
    return f"{sets}, {release}", params


def _one_feed(conn: sqlite3.Connection, where: str, key: object) -> Feed:
    select = f"SELECT {_FEED_COLUMNS} FROM feeds WHERE {where}"  # noqa: S608
    row = conn.execute(select, (key,)).fetchone()
    if row is None:
        raise NotFoundError("feed", key)
    return _feed_from_row(row)


def _write_feed_state(conn: sqlite3.Connection, feed: Feed) -> int:
    """Write the feed's poll state (by id, else by url); its row id."""
    params: list[Any] = list(_state_params(feed))
    sets = _STATE_SET
    # A poll that learnt no title must not erase the one already known.
    if feed.title is not None:
        sets += ", title = ?"
        params.append(feed.title)
    if feed.id is not None:
        where = "id = ?"
        params.append(feed.id)
    else:
        where = "url = ?"
        params.append(feed.url)
    update = f"UPDATE feeds SET {sets} WHERE {where} RETURNING id"  # noqa: S608
    rows = conn.execute(update, params).fetchall()
    if not rows:
        raise NotFoundError("feed", feed.url)
    feed_id: int = rows[0][0]
    return feed_id


def _feed_id(conn: sqlite3.Connection, feed: Feed) -> int:
    if feed.id is not None:
        return feed.id
    row = conn.execute("SELECT id FROM feeds WHERE url = ?", (feed.url,)).fetchone()
    if row is None:
        raise NotFoundError("feed", feed.url)
    return int(row[0])


def _lease_holders(
    conn: sqlite3.Connection, ids: Sequence[int]
) -> dict[int, tuple[str | None, datetime | None]]:
    """Each feed's claim (owner, claimed at); missing ids are left out. The write
    transaction's lock keeps any claim from moving before the writes."""
    found: dict[int, tuple[str | None, datetime | None]] = {}
    for chunk in _chunks(sorted(set(ids))):
        rows = conn.execute(
            "SELECT id, lease_owner, lease_claimed_at FROM feeds "  # noqa: S608
            f"WHERE id IN ({_marks(len(chunk))})",
            chunk,
        )
        for fid, owner, claimed_at in rows:
            found[fid] = (owner, _read_dt(claimed_at))
    return found


def _known(conn: sqlite3.Connection, feed_id: int, item_ids: Sequence[str]) -> set[str]:
    known: set[str] = set()
    for chunk in _chunks(list(dict.fromkeys(item_ids))):
        rows = conn.execute(
            "SELECT item_id FROM items WHERE feed_id = ? AND item_id IN "  # noqa: S608
            f"({_marks(len(chunk))})",
            (feed_id, *chunk),
        )
        known.update(row[0] for row in rows)
    return known


def _stale_polls(
    conn: sqlite3.Connection, intents: Sequence[PollIntent]
) -> list[int | None]:
    """Per intent, the feed id of a poll that outlived its lease (its state is
    dropped, with a warning), else None (``SqlStore._stale_polls``)."""
    out: list[int | None] = [None] * len(intents)
    leased = [
        (n, _feed_id(conn, i.feed))
        for n, i in enumerate(intents)
        if i.lease is not None
    ]
    if not leased:
        return out
    holders = _lease_holders(conn, [fid for _, fid in leased])
    for n, fid in leased:
        intent = intents[n]
        holder = holders.get(fid)
        if holder is None:
            raise NotFoundError("feed", intent.feed.url)
        assert intent.lease is not None
        if lost_lease(intent.feed, holder, intent.lease, log):
            out[n] = fid
    return out


def _last_item_id(conn: sqlite3.Connection) -> int:
    """The newest item row id; the caller's write transaction holds the write lock
    (``BEGIN IMMEDIATE``), so the rows above it are the ones it goes on to insert."""
    return int(conn.execute(LAST_ITEM_ID).fetchone()[0])


def _record_poll(
    conn: sqlite3.Connection, intent: PollIntent, stale: int | None = None
) -> PollRecord:
    """One poll's writes, in ``SqlStore._record_poll``'s order (same row ids), but
    not the full-text index (the caller adds the transaction's new items at its
    end); a ``stale`` one (the id of a feed whose lease it lost) leaves the feed
    alone."""
    feed_id = stale if stale is not None else _write_feed_state(conn, intent.feed)
    now = utcnow()
    seen = _dt(now)
    new_items = 0
    feed_url = intent.feed.url
    for page in _chunks(intent.items, _ITEMS_PAGE):
        values: list[Any] = []
        for item in page:
            values += (
                feed_id,
                item.id,
                feed_url,
                item.title,
                item.summary,
                item.url,
                _dt(item.published),
                item.source,
                seen,
            )
        insert = _INSERT_ITEMS.format(rows=", ".join([_ITEM_ROW] * len(page)))
        new_items += conn.execute(insert, values).rowcount

    wanted = {(feed_id, d.id) for d in intent.decisions}
    wanted.update((link.feed_id, link.item_id) for link in intent.story_links)
    row_ids = _item_rows(conn, wanted)

    matches: list[tuple[Any, ...]] = []
    for decision in intent.decisions:
        row_id = row_ids[(feed_id, decision.id)]
        topics = _json(list(decision.topics))
        dumped = _json(decision.model_dump(mode="json"))
        matches.extend(
            (row_id, rule, topics, decision.score, dumped)
            for rule in (decision.rules or ("",))
        )
    if matches:
        conn.executemany(_INSERT_MATCH, matches)

    _upsert_stories(conn, intent.story_links, row_ids)
    alert_ids = _insert_alerts(conn, intent.alerts, seen)
    return PollRecord(
        new_items=new_items,
        new_alerts=len(alert_ids),
        alert_ids=alert_ids,
        stale=stale is not None,
    )


def _item_rows(
    conn: sqlite3.Connection, keys: set[tuple[int, str]]
) -> dict[tuple[int, str], int]:
    """Row ids of the items a poll's decisions and story links name; an unknown
    one is a bug in the caller."""
    by_feed: dict[int, list[str]] = defaultdict(list)
    for fid, iid in keys:
        by_feed[fid].append(iid)
    row_ids: dict[tuple[int, str], int] = {}
    for fid, iids in by_feed.items():
        for chunk in _chunks(iids):
            rows = conn.execute(
                "SELECT id, item_id FROM items WHERE feed_id = ? AND item_id IN "  # noqa: S608
                f"({_marks(len(chunk))})",
                (fid, *chunk),
            )
            for row_id, item_id in rows:
                row_ids[(fid, item_id)] = row_id
    missing = sorted(keys - row_ids.keys())
    if missing:
        fid, iid = missing[0]
        raise StoreError(
            f"record_poll: decision or story link for item {iid!r} of feed {fid}, "
            f"which is neither stored nor in the poll ({len(missing)} such items)"
        )
    return row_ids


def _upsert_stories(
    conn: sqlite3.Connection,
    links: Sequence[StoryLink],
    row_ids: Mapping[tuple[int, str], int],
) -> None:
    if not links:
        return
    latest: dict[str, Story] = {}
    for link in links:
        seen = latest.get(link.story.id)
        if seen is None or link.story.last_seen >= seen.last_seen:
            latest[link.story.id] = link.story
    conn.executemany(
        _UPSERT_STORY,
        [
            (
                story.id,
                story.title,
                _dt(story.first_seen),
                _dt(story.last_seen),
                None
                if story.event is None
                else _json(story.event.model_dump(mode="json")),
            )
            for story in latest.values()
        ],
    )
    pairs = {(link.story.id, row_ids[(link.feed_id, link.item_id)]) for link in links}
    conn.executemany(_INSERT_STORY_ITEM, sorted(pairs))


def _insert_alerts(
    conn: sqlite3.Connection, records: Sequence[AlertRecord], seen: str | None
) -> tuple[str, ...]:
    first: dict[str, AlertRecord] = {}
    for record in records:
        first.setdefault(record.alert.id, record)
    if not first:
        return ()
    inserted: list[str] = []
    for alert_id, record in first.items():
        a = record.alert
        written = conn.execute(
            _INSERT_ALERT,
            (
                a.id,
                a.story_id,
                a.rule,
                _dt(a.created_at),
                _json(a.model_dump(mode="json")),
                a.supersedes,
            ),
        ).rowcount
        if written:
            inserted.append(alert_id)
    outbox = [
        (
            alert_id,
            channel,
            DeliveryStatus.PENDING.value,
            0,
            _dt(first[alert_id].alert.created_at),
            seen,
        )
        for alert_id in inserted
        for channel in first[alert_id].channels
    ]
    if outbox:
        conn.executemany(_INSERT_DELIVERY, outbox)
    return tuple(inserted)


def _sources(
    conn: sqlite3.Connection, since: str | None
) -> dict[str, list[StorySource]]:
    """Sources of every story seen since ``since``, in one query."""
    rows = conn.execute(
        "SELECT story_items.story_id, items.item_id, items.source, items.title, "
        "substr(items.summary, 1, ?), items.url, items.published, items.feed_url "
        "FROM story_items JOIN items ON items.id = story_items.item_row_id "
        "WHERE story_items.story_id IN (SELECT id FROM stories WHERE last_seen >= ?) "
        "ORDER BY story_items.story_id, coalesce(items.published, items.first_seen), "
        "items.id",
        (LEDE_CHARS, since),
    )
    found: dict[str, list[StorySource]] = defaultdict(list)
    for story_id, item_id, source, title, lede, url, published, feed_url in rows:
        found[story_id].append(
            StorySource(
                item_id=item_id,
                source=source,
                title=title,
                lede=lede or "",
                url=url,
                published=_read_dt(published),
                feed_url=feed_url,
            )
        )
    return found
