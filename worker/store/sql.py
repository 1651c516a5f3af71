"""Store stage: ``SqlStore``, the dialect-neutral Store on SQLAlchemy Core.

Input: records from the poll and deliver shells (``Feed``, ``PollIntent``,
``DeliveryOutcome``); output: rows of ``schema.py`` and the models rebuilt from them.
"""

from __future__ import annotations

import contextlib
import logging
import random
import re
import time
from abc import ABCMeta
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

from pydantic import ValidationError
from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Select,
    Table,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    inspect,
    or_,
    select,
    update,
)
from sqlalchemy.engine import RowMapping, make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError, StatementError

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
from worker.store.fastsqlite import FastSQLiteStore
from worker.store.revisions import MIGRATIONS_DIR
from worker.store.revisions import migration_heads as _migration_heads
from worker.store.schema import (
    alerts,
    deliveries,
    digest_runs,
    feeds,
    items,
    matches,
    stories,
    story_items,
    subscriptions,
)

if TYPE_CHECKING:
    # Annotations only: the PostgreSQL dialect is imported by PostgresStore.
    from sqlalchemy.dialects.postgresql import Insert as PgInsert
    from sqlalchemy.dialects.sqlite import Insert as SqliteInsert

__all__ = ["MIGRATIONS_DIR", "SearchQuery", "SqlStore", "parse_search"]

# Characters of a summary kept with a story's sources (clustering reads them).
LEDE_CHARS = 300

log = logging.getLogger(__name__)

T = TypeVar("T")

# Bound IN (...) lists well below every driver's parameter limit (psycopg: 65535).
_CHUNK = 1000


def _chunks(values: Sequence[T], size: int = _CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _describe(error: SQLAlchemyError) -> str:
    """The driver's own words (first line), without SQL text or parameters."""
    cause: BaseException = error
    if isinstance(error, StatementError) and error.orig is not None:
        cause = error.orig
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[0] if text else ''}".rstrip(": ")


# The columns a Feed is read from; the lease and config_url stay in the database.
_FEED_FIELDS = tuple(
    feeds.c[name]
    for name in (
        "id",
        "url",
        "title",
        "interval",
        "tags",
        "status",
        "etag",
        "last_modified",
        "body_hash",
        "last_checked_at",
        "next_check_at",
        "last_error",
        "error_count",
    )
)


def _feed_from_row(row: RowMapping) -> Feed:
    return Feed(
        id=row["id"],
        url=row["url"],
        title=row["title"],
        interval=row["interval"],
        tags=tuple(row["tags"] or ()),
        status=FeedStatus(row["status"]),
        etag=row["etag"],
        last_modified=row["last_modified"],
        body_hash=row["body_hash"],
        last_checked_at=row["last_checked_at"],
        next_check_at=row["next_check_at"],
        last_error=row["last_error"],
        error_count=row["error_count"],
    )


def _delivery_from_row(row: RowMapping) -> Delivery:
    return Delivery(
        id=row["id"],
        alert_id=row["alert_id"],
        channel=row["channel"],
        status=DeliveryStatus(row["status"]),
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        last_error=row["last_error"],
        delivered_at=row["delivered_at"],
        created_at=row["created_at"],
    )


def _alert_from_payload(payload: Any) -> Alert:
    return Alert.model_validate(payload)


def _feed_state(feed: Feed) -> dict[str, Any]:
    """Poll-state columns of a feed row, with its lease released."""
    values: dict[str, Any] = {
        "status": feed.status.value,
        "etag": feed.etag,
        "last_modified": feed.last_modified,
        "body_hash": feed.body_hash,
        "last_checked_at": feed.last_checked_at,
        "next_check_at": feed.next_check_at,
        "last_error": feed.last_error,
        "error_count": feed.error_count,
        "lease_owner": None,
        "lease_expires_at": None,
    }
    # A poll that learnt no title must not erase the one already known.
    if feed.title is not None:
        values["title"] = feed.title
    return values


def _lease_free(
    owner: ColumnElement[Any], expires: ColumnElement[Any], now: datetime
) -> ColumnElement[bool]:
    return or_(owner.is_(None), expires.is_(None), expires <= now)


_SEARCH_TOKEN = re.compile(r'(-?)"([^"]*)"?|(\S+)')
_WORD = re.compile(r"\w")


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """A web-search query, parsed: an item matches when every group has one of its
    terms and no excluded term appears. A term is a word or a quoted phrase."""

    groups: tuple[tuple[str, ...], ...] = ()
    excluded: tuple[str, ...] = ()

    def fts5(self) -> str:
        """The query in SQLite FTS5 syntax, every term quoted (no syntax errors)."""

        def quote(term: str) -> str:
            return '"' + term.replace('"', '""') + '"'

        positive = " AND ".join(
            "(" + " OR ".join(quote(t) for t in group) + ")" for group in self.groups
        )
        if not self.excluded:
            return positive
        return f"({positive}) NOT (" + " OR ".join(map(quote, self.excluded)) + ")"


def parse_search(q: str) -> SearchQuery:
    """Parse the web-search syntax PostgreSQL's ``websearch_to_tsquery`` reads.

    Words must all appear, ``"quoted words"`` as a phrase, ``or`` between two
    terms admits either, ``-word`` excludes. Terms without a letter or digit are
    dropped.

    >>> parse_search('summit "Xi Jinping" or Kishida -rumour')
    SearchQuery(groups=(('summit',), ('Xi Jinping', 'Kishida')), excluded=('rumour',))
    """
    groups: list[tuple[str, ...]] = []
    excluded: list[str] = []
    pending_or = False
    for m in _SEARCH_TOKEN.finditer(q):
        negated, phrase, word = m.group(1) == "-", m.group(2), m.group(3)
        if word is not None:
            if word.lower() == "or":
                pending_or = bool(groups)
                continue
            negated = word.startswith("-") and len(word) > 1
            term = word[1:] if negated else word
        else:
            term = " ".join((phrase or "").split())
        if not _WORD.search(term):
            continue
        if negated:
            excluded.append(term)
        elif pending_or:
            groups[-1] = (*groups[-1], term)
        else:
            groups.append((term,))
        pending_or = False
    return SearchQuery(groups=tuple(groups), excluded=tuple(excluded))


class SqlStore(metaclass=ABCMeta):  # noqa: B024 (ABCMeta for register())
    """The Store on SQLAlchemy Core; subclasses supply the engine and dialect quirks.

    Every public method runs in one transaction through :meth:`_run`, which retries
    transient failures a bounded number of times and turns every database error into
    :class:`StoreError` naming the operation.

    :class:`FastSQLiteStore` is registered as a virtual subclass: it answers every
    public method (its cold ones through a ``SQLiteStore``), so code that checks for
    a ``SqlStore`` takes it too.
    """

    def __init__(
        self,
        url: str,
        engine: Engine,
        *,
        retries: int = 5,
        backoff: float = 0.05,
    ) -> None:
        self.url = url
        self.display_url = make_url(url).render_as_string(hide_password=True)
        self._engine = engine
        self._retries = max(0, retries)
        self._backoff = backoff

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (tests check its pool for leaked connections)."""
        return self._engine

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.display_url!r})"

    # -- dialect hooks ------------------------------------------------------------

    def _insert(self, table: Table) -> SqliteInsert | PgInsert:
        """An INSERT with ON CONFLICT support in this dialect."""
        raise NotImplementedError

    def _lock_for_claim(self, stmt: Select[T]) -> Select[T]:
        """Make a claim's SELECT safe against concurrent claimers."""
        return stmt

    def _is_transient(self, error: DBAPIError) -> bool:
        """Whether running the same transaction again may well succeed."""
        return bool(error.connection_invalidated)

    def _transaction_options(self, write: bool) -> dict[str, Any]:
        """Execution options set on a connection before its transaction begins."""
        return {}

    def _guard(self) -> contextlib.AbstractContextManager[object]:
        """Held around every transaction (a lock where the pool cannot isolate)."""
        return contextlib.nullcontext()

    def _before_migrate(self, conn: Connection) -> None:  # noqa: B027
        """Serialise concurrent migrations where the database needs help."""

    def _index_items(self, conn: Connection, row_ids: Sequence[int]) -> None:  # noqa: B027
        """Add the items this write transaction inserted (``row_ids``) to the
        full-text index, once, after its last item insert; a dialect whose index
        the database keeps by itself needs nothing."""

    def _search_statement(
        self, query: SearchQuery, text: str, limit: int
    ) -> Select[Any]:
        """SELECT the ``items`` rows matching ``query`` (``text`` as typed), best
        first, at most ``limit``; the dialect's full-text index does the work."""
        raise NotImplementedError

    # -- transactions -------------------------------------------------------------

    def _run(
        self,
        operation: str,
        work: Callable[[Connection], T],
        *,
        write: bool = True,
    ) -> T:
        """Run ``work`` in one transaction, retrying transient errors with backoff."""
        delay = self._backoff
        for attempt in range(self._retries + 1):
            try:
                with self._guard(), self._engine.connect() as conn:
                    conn.execution_options(**self._transaction_options(write))
                    with conn.begin():
                        return work(conn)
            except StoreError:
                raise
            except DBAPIError as e:
                if attempt < self._retries and self._is_transient(e):
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
            except SQLAlchemyError as e:
                raise StoreError(
                    f"{operation} failed on {self.display_url}: {_describe(e)}"
                ) from e
            except ValidationError as e:
                raise StoreError(
                    f"{operation} on {self.display_url}: a stored row is not valid: "
                    f"{e.errors()[0].get('msg', e)}"
                ) from e
        raise AssertionError("unreachable: the last attempt returns or raises")

    # -- lifecycle ------------------------------------------------------------------

    def schema_is_current(self) -> bool:
        """True if the database is at the newest migration (two cheap queries; the
        Alembic import and upgrade are skipped by ``migrate`` when it is)."""
        heads = _migration_heads()
        if heads is None:
            return False

        def work(conn: Connection) -> bool:
            if not inspect(conn).has_table("alembic_version"):
                return False
            rows = conn.exec_driver_sql("SELECT version_num FROM alembic_version")
            return {str(r[0]) for r in rows} == heads

        return self._run("schema_is_current", work, write=False)

    def migrate(self) -> None:
        """Create or upgrade the schema to the newest revision (idempotent)."""
        if self.schema_is_current():
            return
        # Alembic costs ~0.15 s to import: only when the schema is behind.
        from alembic import command
        from alembic.config import Config
        from alembic.util.exc import CommandError

        def work(conn: Connection) -> None:
            self._before_migrate(conn)
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS_DIR))
            config.attributes["connection"] = conn
            try:
                command.upgrade(config, "head")
            except CommandError as e:
                raise StoreError(f"migrate failed on {self.display_url}: {e}") from e

        self._run("migrate", work)

    def close(self) -> None:
        """Release every pooled connection; the store is unusable afterwards."""
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- feeds ----------------------------------------------------------------------

    def add_feed(self, feed: Feed) -> Feed:
        """Subscribe, or update the url's interval, title and tags; keeps poll state."""

        def work(conn: Connection) -> Feed:
            values = _feed_state(feed)
            values.update(
                url=feed.url,
                title=feed.title,
                interval=feed.interval,
                tags=list(feed.tags),
                created_at=utcnow(),
            )
            ins = self._insert(feeds).values(**values)
            conn.execute(
                ins.on_conflict_do_update(
                    index_elements=[feeds.c.url],
                    set_={
                        "interval": ins.excluded.interval,
                        "tags": ins.excluded.tags,
                        "title": func.coalesce(ins.excluded.title, feeds.c.title),
                    },
                )
            )
            return self._one_feed(conn, feeds.c.url == feed.url, feed.url)

        return self._run("add_feed", work)

    def add_config_feeds(self, entries: Sequence[Feed]) -> int:
        """Subscribe the config's feeds: matched by the URL they were configured
        under, then by URL, else added; returns how many."""
        if not entries:
            return 0

        def work(conn: Connection) -> int:
            c = feeds.c
            rows = conn.execute(
                select(c.config_url, c.id)
                .where(c.config_url.is_not(None))
                .order_by(c.id.desc())
            )
            # Newest first, so the oldest feed of a configured URL wins.
            configured: dict[str, int] = {r.config_url: r.id for r in rows}
            matched: list[dict[str, Any]] = []
            # One row per URL: a multi-row upsert may not touch a row twice.
            added: dict[str, dict[str, Any]] = {}
            now = utcnow()
            for feed in entries:
                fid = configured.get(feed.url)
                if fid is not None:
                    matched.append(
                        {
                            "_id": fid,
                            "interval": feed.interval,
                            "tags": list(feed.tags),
                            "title": feed.title,
                        }
                    )
                    continue
                values = _feed_state(feed)
                values.update(
                    url=feed.url,
                    title=feed.title,
                    interval=feed.interval,
                    tags=list(feed.tags),
                    created_at=now,
                    config_url=feed.url,
                )
                added.pop(feed.url, None)
                added[feed.url] = values
            if matched:
                conn.execute(
                    update(feeds)
                    .where(c.id == bindparam("_id"))
                    .values(
                        interval=bindparam("interval"),
                        tags=bindparam("tags", type_=c.tags.type),
                        title=func.coalesce(
                            bindparam("title", type_=c.title.type), c.title
                        ),
                    ),
                    matched,
                )
            if added:
                ins = self._insert(feeds)
                # A feed already at that URL (added by hand, or before migration
                # 0006) becomes the configured one.
                stmt = ins.on_conflict_do_update(
                    index_elements=[c.url],
                    set_={
                        "interval": ins.excluded.interval,
                        "tags": ins.excluded.tags,
                        "title": func.coalesce(ins.excluded.title, c.title),
                        "config_url": ins.excluded.config_url,
                    },
                )
                conn.execute(stmt, list(added.values()))
            return len(entries)

        return self._run("add_config_feeds", work)

    def remove_feed(self, url: str) -> None:
        """Unsubscribe; its items stay (with ``feed_id`` NULL) for digests."""

        def work(conn: Connection) -> None:
            if conn.execute(delete(feeds).where(feeds.c.url == url)).rowcount == 0:
                raise NotFoundError("feed", url)

        self._run("remove_feed", work)

    def get_feed(self, url: str) -> Feed:
        """The stored feed for ``url``. NotFoundError if unknown."""
        return self._run(
            "get_feed",
            lambda conn: self._one_feed(conn, feeds.c.url == url, url),
            write=False,
        )

    def feed_by_id(self, feed_id: int) -> Feed:
        """The stored feed with this id. NotFoundError if unknown."""
        return self._run(
            "feed_by_id",
            lambda conn: self._one_feed(conn, feeds.c.id == feed_id, feed_id),
            write=False,
        )

    def moved_config_feeds(self) -> dict[int, str]:
        """Config feeds that moved: feed id -> the URL the config lists them under."""

        def work(conn: Connection) -> dict[int, str]:
            c = feeds.c
            rows = conn.execute(
                select(c.id, c.config_url).where(
                    c.config_url.is_not(None), c.config_url != c.url
                )
            )
            return {r.id: r.config_url for r in rows}

        return self._run("moved_config_feeds", work, write=False)

    def list_feeds(self) -> list[Feed]:
        """Every feed, disabled ones included, ordered by id."""

        def work(conn: Connection) -> list[Feed]:
            rows = conn.execute(select(*_FEED_FIELDS).order_by(feeds.c.id)).mappings()
            return [_feed_from_row(row) for row in rows]

        return self._run("list_feeds", work, write=False)

    def update_feed_state(self, feed: Feed) -> None:
        """Write a feed's poll state alone (not-modified or failed poll); frees its lease."""
        self._run("update_feed_state", lambda conn: self._write_feed_state(conn, feed))

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

        def work(conn: Connection) -> list[Feed]:
            c = feeds.c
            # A live lease blocks its own worker too: a feed still being polled
            # must not be handed out twice, whoever asks.
            conditions = [
                c.status != FeedStatus.DISABLED.value,
                _lease_free(c.lease_owner, c.lease_expires_at, now),
            ]
            if not all_feeds:
                conditions.append(
                    or_(c.next_check_at.is_(None), c.next_check_at <= now)
                )
            stmt = (
                select(c.id)
                .where(*conditions)
                .order_by(c.next_check_at.asc().nulls_first(), c.id)
                .limit(limit)
            )
            ids = list(conn.scalars(self._lock_for_claim(stmt)))
            if not ids:
                return []
            conn.execute(
                update(feeds)
                .where(c.id.in_(ids))
                .values(
                    lease_owner=worker_id,
                    lease_expires_at=now + timedelta(seconds=lease_seconds),
                    lease_claimed_at=now,
                )
            )
            rows = conn.execute(select(*_FEED_FIELDS).where(c.id.in_(ids))).mappings()
            by_id = {row["id"]: _feed_from_row(row) for row in rows}
            return [by_id[i] for i in ids]

        return self._run("claim_due_feeds", work)

    def _one_feed(
        self, conn: Connection, where: ColumnElement[bool], key: object
    ) -> Feed:
        row = conn.execute(select(*_FEED_FIELDS).where(where)).mappings().first()
        if row is None:
            raise NotFoundError("feed", key)
        return _feed_from_row(row)

    def _write_feed_state(self, conn: Connection, feed: Feed) -> int:
        where = (
            feeds.c.id == feed.id if feed.id is not None else feeds.c.url == feed.url
        )
        row = conn.execute(
            update(feeds).where(where).values(**_feed_state(feed)).returning(feeds.c.id)
        ).first()
        if row is None:
            raise NotFoundError("feed", feed.url)
        feed_id: int = row[0]
        return feed_id

    def _feed_id(self, conn: Connection, feed: Feed) -> int:
        if feed.id is not None:
            return feed.id
        found = conn.scalar(select(feeds.c.id).where(feeds.c.url == feed.url))
        if found is None:
            raise NotFoundError("feed", feed.url)
        return int(found)

    def _lease_holders(
        self, conn: Connection, ids: Sequence[int]
    ) -> dict[int, tuple[str | None, datetime | None]]:
        """Each feed's claim (owner, claimed at), its row locked until commit so no
        claim moves between this check and the writes; missing ids are left out."""
        c = feeds.c
        found: dict[int, tuple[str | None, datetime | None]] = {}
        # In id order, so two recorders lock shared rows in one order.
        for chunk in _chunks(sorted(set(ids))):
            rows = conn.execute(
                select(c.id, c.lease_owner, c.lease_claimed_at)
                .where(c.id.in_(chunk))
                .order_by(c.id)
                .with_for_update()
            )
            for fid, owner, claimed_at in rows:
                found[fid] = (owner, claimed_at)
        return found

    # -- poll -----------------------------------------------------------------------

    def known_item_ids(self, feed_id: int, item_ids: Sequence[str]) -> set[str]:
        """Which of ``item_ids`` the feed already has."""

        def work(conn: Connection) -> set[str]:
            known: set[str] = set()
            for chunk in _chunks(list(dict.fromkeys(item_ids))):
                known.update(
                    conn.scalars(
                        select(items.c.item_id).where(
                            items.c.feed_id == feed_id, items.c.item_id.in_(chunk)
                        )
                    )
                )
            return known

        return self._run("known_item_ids", work, write=False)

    def record_poll(self, intent: PollIntent) -> PollRecord:
        """Write a poll's result in one transaction and release the feed's lease;
        with ``intent.lease``, the feed's state only if that claim still holds it."""

        def work(conn: Connection) -> PollRecord:
            [stale] = self._stale_polls(conn, [intent])
            new_rows: list[int] = []
            record = self._record_poll(conn, intent, stale, new_rows=new_rows)
            self._index_items(conn, new_rows)
            return record

        return self._run("record_poll", work)

    def _stale_polls(
        self, conn: Connection, intents: Sequence[PollIntent]
    ) -> list[int | None]:
        """Per intent, the feed id of a poll that outlived its lease (its state
        is dropped, with a warning), else None (no lease given, or still held)."""
        out: list[int | None] = [None] * len(intents)
        leased = [
            (n, self._feed_id(conn, i.feed))
            for n, i in enumerate(intents)
            if i.lease is not None
        ]
        if not leased:
            return out
        holders = self._lease_holders(conn, [fid for _, fid in leased])
        for n, fid in leased:
            intent = intents[n]
            holder = holders.get(fid)
            if holder is None:
                raise NotFoundError("feed", intent.feed.url)
            assert intent.lease is not None
            if lost_lease(intent.feed, holder, intent.lease, log):
                out[n] = fid
        return out

    def _record_poll(
        self,
        conn: Connection,
        intent: PollIntent,
        stale: int | None = None,
        *,
        new_rows: list[int],
    ) -> PollRecord:
        """Write one poll, adding the row ids of the items it inserted to
        ``new_rows`` for the caller to index; a ``stale`` one (the id of a feed
        whose lease it lost) leaves the feed row alone."""
        feed_id = (
            stale if stale is not None else self._write_feed_state(conn, intent.feed)
        )
        now = utcnow()
        row_ids: dict[tuple[int, str], int] = {}

        if intent.items:
            params = [
                {
                    "feed_id": feed_id,
                    "item_id": item.id,
                    "feed_url": intent.feed.url,
                    "title": item.title,
                    "summary": item.summary,
                    "url": item.url,
                    "published": item.published,
                    "source": item.source,
                    "first_seen": now,
                }
                for item in intent.items
            ]
            stmt = (
                self._insert(items)
                .on_conflict_do_nothing(index_elements=["feed_id", "item_id"])
                .returning(items.c.id, items.c.item_id)
            )
            for row in conn.execute(stmt, params):
                row_ids[(feed_id, row.item_id)] = row.id
        new_items = len(row_ids)
        new_rows.extend(row_ids.values())

        wanted = {(feed_id, d.id) for d in intent.decisions}
        wanted.update((link.feed_id, link.item_id) for link in intent.story_links)
        self._resolve_item_rows(conn, wanted - row_ids.keys(), row_ids)

        self._insert_matches(conn, feed_id, intent, row_ids)
        self._upsert_stories(conn, intent.story_links, row_ids)
        alert_ids = self._insert_alerts(conn, intent.alerts, now)
        return PollRecord(
            new_items=new_items,
            new_alerts=len(alert_ids),
            alert_ids=alert_ids,
            stale=stale is not None,
        )

    def _resolve_item_rows(
        self,
        conn: Connection,
        keys: set[tuple[int, str]],
        row_ids: dict[tuple[int, str], int],
    ) -> None:
        """Find the row ids of items stored by earlier polls; unknown ones are a bug."""
        by_feed: dict[int, list[str]] = defaultdict(list)
        for fid, iid in keys:
            by_feed[fid].append(iid)
        for fid, iids in by_feed.items():
            for chunk in _chunks(iids):
                rows = conn.execute(
                    select(items.c.id, items.c.item_id).where(
                        items.c.feed_id == fid, items.c.item_id.in_(chunk)
                    )
                )
                for row in rows:
                    row_ids[(fid, row.item_id)] = row.id
        missing = sorted(keys - row_ids.keys())
        if missing:
            fid, iid = missing[0]
            raise StoreError(
                f"record_poll: decision or story link for item {iid!r} of feed {fid}, "
                f"which is neither stored nor in the poll ({len(missing)} such items)"
            )

    def _insert_matches(
        self,
        conn: Connection,
        feed_id: int,
        intent: PollIntent,
        row_ids: Mapping[tuple[int, str], int],
    ) -> None:
        params = [
            {
                "item_row_id": row_ids[(feed_id, decision.id)],
                "rule": rule,
                "topics": list(decision.topics),
                "score": decision.score,
                "decision": decision.model_dump(mode="json"),
            }
            for decision in intent.decisions
            for rule in (decision.rules or ("",))
        ]
        if params:
            conn.execute(
                self._insert(matches).on_conflict_do_nothing(
                    index_elements=["item_row_id", "rule"]
                ),
                params,
            )

    def _upsert_stories(
        self,
        conn: Connection,
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
        ins = self._insert(stories)
        # Keep the first title and first_seen; move last_seen forward only.
        conn.execute(
            ins.on_conflict_do_update(
                index_elements=["id"],
                set_={
                    "last_seen": case(
                        (
                            ins.excluded.last_seen > stories.c.last_seen,
                            ins.excluded.last_seen,
                        ),
                        else_=stories.c.last_seen,
                    ),
                    "event": func.coalesce(ins.excluded.event, stories.c.event),
                },
            ),
            [
                {
                    "id": story.id,
                    "title": story.title,
                    "first_seen": story.first_seen,
                    "last_seen": story.last_seen,
                    "event": _event_json(story.event),
                }
                for story in latest.values()
            ],
        )
        pairs = {
            (link.story.id, row_ids[(link.feed_id, link.item_id)]) for link in links
        }
        conn.execute(
            self._insert(story_items).on_conflict_do_nothing(
                index_elements=["story_id", "item_row_id"]
            ),
            [{"story_id": s, "item_row_id": r} for s, r in sorted(pairs)],
        )

    def _insert_alerts(
        self, conn: Connection, records: Sequence[AlertRecord], now: datetime
    ) -> tuple[str, ...]:
        first: dict[str, AlertRecord] = {}
        for record in records:
            first.setdefault(record.alert.id, record)
        if not first:
            return ()
        stmt = (
            self._insert(alerts)
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(alerts.c.id)
        )
        inserted = set(
            conn.scalars(
                stmt,
                [
                    {
                        "id": r.alert.id,
                        "story_id": r.alert.story_id,
                        "rule": r.alert.rule,
                        "created_at": r.alert.created_at,
                        "payload": r.alert.model_dump(mode="json"),
                        "supersedes": r.alert.supersedes,
                    }
                    for r in first.values()
                ],
            )
        )
        outbox = [
            {
                "alert_id": alert_id,
                "channel": channel,
                "status": DeliveryStatus.PENDING.value,
                "attempts": 0,
                "next_attempt_at": first[alert_id].alert.created_at,
                "created_at": now,
            }
            for alert_id in first
            if alert_id in inserted
            for channel in first[alert_id].channels
        ]
        if outbox:
            # No ON CONFLICT here: a channel listed twice is a bug and must roll back.
            conn.execute(deliveries.insert(), outbox)
        return tuple(alert_id for alert_id in first if alert_id in inserted)

    def recent_stories(self, since: datetime) -> list[Story]:
        """Stories seen since ``since`` with their sources, newest first."""

        def work(conn: Connection) -> list[Story]:
            chosen = select(stories.c.id).where(stories.c.last_seen >= since)
            sources = self._sources(conn, chosen)
            rows = conn.execute(
                select(stories)
                .where(stories.c.last_seen >= since)
                .order_by(stories.c.last_seen.desc(), stories.c.id)
            ).mappings()
            return [_story_from_row(row, sources.get(row["id"], ())) for row in rows]

        return self._run("recent_stories", work, write=False)

    def _sources(
        self, conn: Connection, story_ids: Select[Any]
    ) -> dict[str, list[StorySource]]:
        """Sources of every story selected by ``story_ids``, in one query."""
        rows = conn.execute(
            select(
                story_items.c.story_id,
                items.c.item_id,
                items.c.source,
                items.c.title,
                func.substr(items.c.summary, 1, LEDE_CHARS).label("lede"),
                items.c.url,
                items.c.published,
                items.c.feed_url,
            )
            .join(items, items.c.id == story_items.c.item_row_id)
            .where(story_items.c.story_id.in_(story_ids.scalar_subquery()))
            .order_by(
                story_items.c.story_id,
                func.coalesce(items.c.published, items.c.first_seen),
                items.c.id,
            )
        ).mappings()
        found: dict[str, list[StorySource]] = defaultdict(list)
        for row in rows:
            found[row["story_id"]].append(
                StorySource(
                    item_id=row["item_id"],
                    source=row["source"],
                    title=row["title"],
                    lede=row["lede"] or "",
                    url=row["url"],
                    published=row["published"],
                    feed_url=row["feed_url"],
                )
            )
        return found

    # -- outbox ---------------------------------------------------------------------

    def claim_deliveries(
        self, worker_id: str, now: datetime, limit: int, lease_seconds: float
    ) -> list[ClaimedDelivery]:
        """Lease up to ``limit`` pending deliveries due at ``now``, oldest first."""
        if limit <= 0:
            return []

        def work(conn: Connection) -> list[ClaimedDelivery]:
            c = deliveries.c
            stmt = (
                select(c.id)
                .where(
                    c.status == DeliveryStatus.PENDING.value,
                    or_(c.next_attempt_at.is_(None), c.next_attempt_at <= now),
                    _lease_free(c.lease_owner, c.lease_expires_at, now),
                )
                .order_by(c.next_attempt_at.asc().nulls_first(), c.id)
                .limit(limit)
            )
            ids = list(conn.scalars(self._lock_for_claim(stmt)))
            if not ids:
                return []
            conn.execute(
                update(deliveries)
                .where(c.id.in_(ids))
                .values(
                    lease_owner=worker_id,
                    lease_expires_at=now + timedelta(seconds=lease_seconds),
                )
            )
            rows = conn.execute(
                select(deliveries, alerts.c.payload)
                .join(alerts, alerts.c.id == c.alert_id)
                .where(c.id.in_(ids))
            ).mappings()
            by_id = {
                row["id"]: ClaimedDelivery(
                    delivery=_delivery_from_row(row),
                    alert=_alert_from_payload(row["payload"]),
                )
                for row in rows
            }
            return [by_id[i] for i in ids]

        return self._run("claim_deliveries", work)

    def record_delivery(self, outcome: DeliveryOutcome) -> None:
        """Record one attempt (delivered, retry later, or dead) and release the lease."""
        values: dict[str, Any] = {
            "attempts": deliveries.c.attempts + 1,
            "lease_owner": None,
            "lease_expires_at": None,
        }
        if outcome.held or outcome.defer_until is not None:
            # Not an attempt: quiet hours or a rate limit put the send off.
            values.pop("attempts")
            if outcome.held:
                values.update(status=DeliveryStatus.HELD.value, next_attempt_at=None)
            else:
                values.update(
                    status=DeliveryStatus.PENDING.value,
                    next_attempt_at=outcome.defer_until,
                )
        elif outcome.ok:
            values.update(
                status=DeliveryStatus.DELIVERED.value,
                delivered_at=outcome.attempted_at,
                next_attempt_at=None,
                last_error=None,
            )
        elif outcome.retry_at is not None:
            values.update(
                status=DeliveryStatus.PENDING.value,
                next_attempt_at=outcome.retry_at,
                last_error=outcome.error,
            )
        else:
            values.update(
                status=DeliveryStatus.DEAD.value,
                next_attempt_at=None,
                last_error=outcome.error,
            )

        def work(conn: Connection) -> None:
            result = conn.execute(
                update(deliveries)
                .where(deliveries.c.id == outcome.delivery_id)
                .values(**values)
            )
            if result.rowcount == 0:
                raise NotFoundError("delivery", outcome.delivery_id)

        self._run("record_delivery", work)

    def redeliver(self, alert_id: str, now: datetime) -> int:
        """Make every delivery of the alert pending again, due ``now``; returns how many."""

        def work(conn: Connection) -> int:
            if conn.scalar(select(alerts.c.id).where(alerts.c.id == alert_id)) is None:
                raise NotFoundError("alert", alert_id)
            result = conn.execute(
                update(deliveries)
                .where(deliveries.c.alert_id == alert_id)
                .values(
                    status=DeliveryStatus.PENDING.value,
                    attempts=0,
                    next_attempt_at=now,
                    last_error=None,
                    delivered_at=None,
                    digest_id=None,
                    lease_owner=None,
                    lease_expires_at=None,
                )
            )
            return int(result.rowcount)

        return self._run("redeliver", work)

    def delivered_times(self, channel: str, since: datetime) -> list[datetime]:
        """When the channel's deliveries since ``since`` were made, oldest first
        (digest releases of held alerts do not count)."""

        def work(conn: Connection) -> list[datetime]:
            c = deliveries.c
            return list(
                conn.scalars(
                    select(c.delivered_at)
                    .where(
                        c.channel == channel,
                        c.status == DeliveryStatus.DELIVERED.value,
                        c.delivered_at >= since,
                        c.digest_id.is_(None),
                    )
                    .order_by(c.delivered_at)
                )
            )

        return self._run("delivered_times", work, write=False)

    def held_alerts(self, channel: str) -> list[Alert]:
        """Alerts held on ``channel`` in quiet hours, oldest first."""

        def work(conn: Connection) -> list[Alert]:
            c = deliveries.c
            rows = conn.execute(
                select(alerts.c.payload)
                .join(deliveries, c.alert_id == alerts.c.id)
                .where(c.channel == channel, c.status == DeliveryStatus.HELD.value)
                .order_by(alerts.c.created_at, alerts.c.id)
            )
            return [_alert_from_payload(row.payload) for row in rows]

        return self._run("held_alerts", work, write=False)

    def release_held(
        self, channel: str, alert_ids: Sequence[str], digest_id: str, now: datetime
    ) -> int:
        """Mark these held deliveries delivered by digest ``digest_id``."""

        def work(conn: Connection) -> int:
            c = deliveries.c
            total = 0
            for chunk in _chunks(list(dict.fromkeys(alert_ids))):
                result = conn.execute(
                    update(deliveries)
                    .where(
                        c.channel == channel,
                        c.status == DeliveryStatus.HELD.value,
                        c.alert_id.in_(chunk),
                    )
                    .values(
                        status=DeliveryStatus.DELIVERED.value,
                        delivered_at=now,
                        digest_id=digest_id,
                        next_attempt_at=None,
                    )
                )
                total += int(result.rowcount)
            return total

        return self._run("release_held", work)

    def story_alerts(self, story_ids: Sequence[str]) -> dict[str, list[Alert]]:
        """The alerts each story has raised, oldest first."""

        def work(conn: Connection) -> dict[str, list[Alert]]:
            found: dict[str, list[Alert]] = defaultdict(list)
            for chunk in _chunks(list(dict.fromkeys(story_ids))):
                rows = conn.execute(
                    select(alerts.c.story_id, alerts.c.payload)
                    .where(alerts.c.story_id.in_(chunk))
                    .order_by(alerts.c.created_at, alerts.c.id)
                )
                for row in rows:
                    found[row.story_id].append(_alert_from_payload(row.payload))
            return dict(found)

        return self._run("story_alerts", work, write=False)

    # -- queries --------------------------------------------------------------------

    def list_alerts(
        self,
        since: datetime | None = None,
        *,
        failed_only: bool = False,
        limit: int = 100,
    ) -> list[AlertRow]:
        """Alerts newest first; ``failed_only`` keeps those with a dead delivery or a
        failed attempt still pending."""

        def work(conn: Connection) -> list[AlertRow]:
            stmt = (
                select(alerts.c.id, alerts.c.payload)
                .order_by(alerts.c.created_at.desc(), alerts.c.id.desc())
                .limit(max(0, limit))
            )
            if since is not None:
                stmt = stmt.where(alerts.c.created_at >= since)
            if failed_only:
                d = deliveries.c
                stmt = stmt.where(
                    exists().where(
                        d.alert_id == alerts.c.id,
                        or_(
                            d.status == DeliveryStatus.DEAD.value,
                            and_(
                                d.status == DeliveryStatus.PENDING.value, d.attempts > 0
                            ),
                        ),
                    )
                )
            rows = conn.execute(stmt).all()
            outbox = self._deliveries_of(conn, [row.id for row in rows])
            return [
                AlertRow(
                    alert=_alert_from_payload(row.payload),
                    deliveries=tuple(outbox.get(row.id, ())),
                )
                for row in rows
            ]

        return self._run("list_alerts", work, write=False)

    def get_alert(self, alert_id: str) -> AlertRow:
        """One alert with its deliveries. NotFoundError if unknown."""

        def work(conn: Connection) -> AlertRow:
            payload = conn.scalar(
                select(alerts.c.payload).where(alerts.c.id == alert_id)
            )
            if payload is None:
                raise NotFoundError("alert", alert_id)
            outbox = self._deliveries_of(conn, [alert_id])
            return AlertRow(
                alert=_alert_from_payload(payload),
                deliveries=tuple(outbox.get(alert_id, ())),
            )

        return self._run("get_alert", work, write=False)

    def _deliveries_of(
        self, conn: Connection, alert_ids: Sequence[str]
    ) -> dict[str, list[Delivery]]:
        found: dict[str, list[Delivery]] = defaultdict(list)
        for chunk in _chunks(alert_ids):
            rows = conn.execute(
                select(deliveries)
                .where(deliveries.c.alert_id.in_(chunk))
                .order_by(deliveries.c.alert_id, deliveries.c.channel)
            ).mappings()
            for row in rows:
                found[row["alert_id"]].append(_delivery_from_row(row))
        return found

    def stories(self, since: datetime, until: datetime | None = None) -> list[StoryRow]:
        """Stories whose span [first_seen, last_seen] meets [since, until), newest first."""

        def work(conn: Connection) -> list[StoryRow]:
            where: list[ColumnElement[bool]] = [stories.c.last_seen >= since]
            if until is not None:
                where.append(stories.c.first_seen < until)
            chosen = select(stories.c.id).where(*where)
            sources = self._sources(conn, chosen)

            raised: dict[str, list[Alert]] = defaultdict(list)
            for row in conn.execute(
                select(alerts.c.story_id, alerts.c.payload)
                .where(alerts.c.story_id.in_(chosen.scalar_subquery()))
                .order_by(alerts.c.created_at, alerts.c.id)
            ):
                raised[row.story_id].append(_alert_from_payload(row.payload))

            topics: dict[str, set[str]] = defaultdict(set)
            rules: dict[str, set[str]] = defaultdict(set)
            for hit in conn.execute(
                select(story_items.c.story_id, matches.c.rule, matches.c.topics)
                .join(matches, matches.c.item_row_id == story_items.c.item_row_id)
                .where(story_items.c.story_id.in_(chosen.scalar_subquery()))
            ):
                if hit.rule:
                    rules[hit.story_id].add(hit.rule)
                topics[hit.story_id].update(hit.topics or ())

            rows = conn.execute(
                select(stories)
                .where(*where)
                .order_by(stories.c.last_seen.desc(), stories.c.id)
            ).mappings()
            return [
                StoryRow(
                    story=_story_from_row(row, sources.get(row["id"], ())),
                    alerts=tuple(raised.get(row["id"], ())),
                    topics=tuple(sorted(topics.get(row["id"], ()))),
                    rules=tuple(sorted(rules.get(row["id"], ()))),
                )
                for row in rows
            ]

        return self._run("stories", work, write=False)

    def count_items(self) -> int:
        """How many items are stored (all feeds, removed feeds' items included)."""
        return self._run(
            "count_items",
            lambda conn: int(conn.scalar(select(func.count()).select_from(items)) or 0),
            write=False,
        )

    def item_count_by_feed(self) -> dict[str, int]:
        """Items stored per subscribed feed URL (feeds with none count 0)."""

        def work(conn: Connection) -> dict[str, int]:
            rows = conn.execute(
                select(feeds.c.url, func.count(items.c.id))
                .select_from(feeds)
                .outerjoin(items, items.c.feed_id == feeds.c.id)
                .group_by(feeds.c.id, feeds.c.url)
            )
            return {url: int(n) for url, n in rows}

        return self._run("item_count_by_feed", work, write=False)

    def delete_items_before(self, cutoff: datetime) -> int:
        """Retention: delete items first seen before ``cutoff``; returns how many.

        Items of a story that raised an alert are kept, so alerts keep their sources;
        stories left with no items and no alerts go too.
        """

        def work(conn: Connection) -> int:
            protected = select(story_items.c.item_row_id).join(
                alerts, alerts.c.story_id == story_items.c.story_id
            )
            result = conn.execute(
                delete(items).where(
                    items.c.first_seen < cutoff, items.c.id.not_in(protected)
                )
            )
            conn.execute(
                delete(stories).where(
                    ~exists().where(story_items.c.story_id == stories.c.id),
                    ~exists().where(alerts.c.story_id == stories.c.id),
                )
            )
            return int(result.rowcount)

        return self._run("delete_items_before", work)

    def ping(self) -> None:
        """Readiness: one cheap read of a feedwatch table (StoreError if the database
        is unreachable or not migrated)."""
        self._run(
            "ping",
            lambda conn: conn.execute(select(feeds.c.id).limit(1)).all(),
            write=False,
        )

    def count_pending_deliveries(self) -> int:
        """Outbox depth: deliveries still pending (due or waiting for a retry)."""
        return self._run(
            "count_pending_deliveries",
            lambda conn: int(
                conn.scalar(
                    select(func.count())
                    .select_from(deliveries)
                    .where(deliveries.c.status == DeliveryStatus.PENDING.value)
                )
                or 0
            ),
            write=False,
        )

    def search_items(self, q: str, limit: int = 50) -> list[Item]:
        """Items whose title or summary match ``q`` (web-search syntax, see
        :func:`parse_search`), best match first, then newest; [] when ``q`` names
        nothing to look for."""
        query = parse_search(q)
        if not query.groups or limit <= 0:
            return []

        def work(conn: Connection) -> list[Item]:
            rows = conn.execute(self._search_statement(query, q, limit)).mappings()
            return [_item_from_row(row) for row in rows]

        return self._run("search_items", work, write=False)

    # -- batched poll writes (fetching at scale, issue #5) ------------------------

    def known_item_ids_many(
        self, ids_by_feed: Mapping[int, Sequence[str]]
    ) -> dict[int, set[str]]:
        """For each feed, which of its ``item_ids`` it already has (one transaction)."""

        def work(conn: Connection) -> dict[int, set[str]]:
            found: dict[int, set[str]] = {fid: set() for fid in ids_by_feed}
            for fid, ids in ids_by_feed.items():
                for chunk in _chunks(list(dict.fromkeys(ids))):
                    found[fid].update(
                        conn.scalars(
                            select(items.c.item_id).where(
                                items.c.feed_id == fid, items.c.item_id.in_(chunk)
                            )
                        )
                    )
            return found

        return self._run("known_item_ids_many", work, write=False)

    def record_polls(self, intents: Sequence[PollIntent]) -> list[PollRecord]:
        """``record_poll`` for many feeds in one transaction, records in order.

        Feeds whose poll changed nothing but their state are written with one
        executemany UPDATE; those whose lease was lost keep their state (their
        items are written).
        """
        if not intents:
            return []

        def work(conn: Connection) -> list[PollRecord]:
            records: list[PollRecord | None] = []
            state_only: list[dict[str, Any]] = []
            new_rows: list[int] = []
            stale = self._stale_polls(conn, intents)
            for intent, lost in zip(intents, stale, strict=True):
                if lost is not None:
                    records.append(
                        self._record_poll(conn, intent, lost, new_rows=new_rows)
                    )
                    continue
                if (
                    intent.items
                    or intent.decisions
                    or intent.story_links
                    or intent.alerts
                    or intent.feed.id is None
                ):
                    records.append(self._record_poll(conn, intent, new_rows=new_rows))
                else:
                    values = _feed_state(intent.feed)
                    values["title"] = intent.feed.title
                    values["_id"] = intent.feed.id
                    state_only.append(values)
                    records.append(None)
            if state_only:
                cols = [k for k in state_only[0] if k not in ("_id", "title")]
                stmt = (
                    update(feeds)
                    .where(feeds.c.id == bindparam("_id"))
                    .values(
                        {c: bindparam(c, type_=feeds.c[c].type) for c in cols}
                        | {
                            "title": func.coalesce(
                                bindparam("title", type_=feeds.c.title.type),
                                feeds.c.title,
                            )
                        }
                    )
                )
                result = conn.execute(stmt, state_only)
                if result.rowcount != len(state_only):
                    raise NotFoundError("feed", "one of the polled feeds")
            self._index_items(conn, new_rows)
            empty = PollRecord(new_items=0, new_alerts=0)
            return [r if r is not None else empty for r in records]

        return self._run("record_polls", work)

    def move_feed(self, feed_id: int, url: str) -> bool:
        """Change a feed's URL (a permanent redirect); False, changing nothing, if
        another feed already has ``url``. NotFoundError if the feed is unknown."""

        def work(conn: Connection) -> bool:
            taken = conn.scalar(
                select(feeds.c.id).where(feeds.c.url == url, feeds.c.id != feed_id)
            )
            if taken is not None:
                return False
            result = conn.execute(
                update(feeds).where(feeds.c.id == feed_id).values(url=url)
            )
            if result.rowcount == 0:
                raise NotFoundError("feed", feed_id)
            return True

        return self._run("move_feed", work)

    def recent_item_counts(
        self, feed_ids: Sequence[int], since: datetime
    ) -> dict[int, int]:
        """Items per feed published (or, undated, first seen) since ``since``: the
        update frequency that adaptive scheduling reads. Feeds with none count 0."""

        def work(conn: Connection) -> dict[int, int]:
            counts = dict.fromkeys(feed_ids, 0)
            when = func.coalesce(items.c.published, items.c.first_seen)
            for chunk in _chunks(list(dict.fromkeys(feed_ids))):
                rows = conn.execute(
                    select(items.c.feed_id, func.count())
                    .where(items.c.feed_id.in_(chunk), when >= since)
                    .group_by(items.c.feed_id)
                )
                for fid, n in rows:
                    counts[fid] = int(n)
            return counts

        return self._run("recent_item_counts", work, write=False)

    # -- WebSub subscriptions (worker.websub, issue #5) -------------------------

    def claim_feed(
        self, feed_id: int, worker_id: str, now: datetime, lease_seconds: float
    ) -> Feed | None:
        """Lease one feed whatever its schedule; None while another lease is live."""

        def work(conn: Connection) -> Feed | None:
            c = feeds.c
            result = conn.execute(
                update(feeds)
                .where(
                    c.id == feed_id, _lease_free(c.lease_owner, c.lease_expires_at, now)
                )
                .values(
                    lease_owner=worker_id,
                    lease_expires_at=now + timedelta(seconds=lease_seconds),
                    lease_claimed_at=now,
                )
            )
            if result.rowcount == 0:
                if conn.scalar(select(c.id).where(c.id == feed_id)) is None:
                    raise NotFoundError("feed", feed_id)
                return None
            return self._one_feed(conn, c.id == feed_id, feed_id)

        return self._run("claim_feed", work)

    def record_hubs(self, found: Mapping[int, tuple[str, str]], now: datetime) -> int:
        """Note each feed's (hub, topic); a new or changed pair starts over."""
        if not found:
            return 0

        def work(conn: Connection) -> int:
            s = subscriptions.c
            ins = self._insert(subscriptions)
            stmt = ins.on_conflict_do_update(
                index_elements=[s.feed_id],
                set_={
                    "hub": ins.excluded.hub,
                    "topic": ins.excluded.topic,
                    "state": SubscriptionState.DISCOVERED.value,
                    "secret": None,
                    "lease_seconds": None,
                    "lease_expires_at": None,
                    "requested_at": None,
                    "verified_at": None,
                    "last_error": None,
                    "updated_at": ins.excluded.updated_at,
                },
                where=or_(s.hub != ins.excluded.hub, s.topic != ins.excluded.topic),
            ).returning(s.feed_id)
            changed = 0
            for feed_id, (hub, topic) in sorted(found.items()):
                # RETURNING, not rowcount: psycopg reports no count for an upsert.
                written = conn.execute(
                    stmt.values(
                        feed_id=feed_id,
                        hub=hub,
                        topic=topic,
                        state=SubscriptionState.DISCOVERED.value,
                        created_at=now,
                        updated_at=now,
                    )
                ).all()
                changed += len(written)
            return changed

        return self._run("record_hubs", work)

    def list_subscriptions(self) -> list[Subscription]:
        """Every subscription row, by feed id."""

        def work(conn: Connection) -> list[Subscription]:
            rows = conn.execute(
                select(subscriptions).order_by(subscriptions.c.feed_id)
            ).mappings()
            return [_subscription_from_row(row) for row in rows]

        return self._run("list_subscriptions", work, write=False)

    def get_subscription(self, feed_id: int) -> Subscription:
        """The feed's subscription. NotFoundError if it has none."""

        def work(conn: Connection) -> Subscription:
            row = (
                conn.execute(
                    select(subscriptions).where(subscriptions.c.feed_id == feed_id)
                )
                .mappings()
                .first()
            )
            if row is None:
                raise NotFoundError("subscription", feed_id)
            return _subscription_from_row(row)

        return self._run("get_subscription", work, write=False)

    def _update_subscription(
        self,
        conn: Connection,
        feed_id: int,
        values: Mapping[str, Any],
        *where: ColumnElement[bool],
    ) -> int:
        result = conn.execute(
            update(subscriptions)
            .where(subscriptions.c.feed_id == feed_id, *where)
            .values(**values)
        )
        return int(result.rowcount)

    def subscription_requested(
        self, feed_id: int, secret: str, now: datetime
    ) -> Subscription:
        """A subscribe request is about to go out: pending (a renewal stays verified)."""
        s = subscriptions.c
        verified = SubscriptionState.VERIFIED.value

        def work(conn: Connection) -> Subscription:
            values = {
                "secret": secret,
                "requested_at": now,
                "updated_at": now,
                "state": case(
                    (s.state == verified, verified),
                    else_=SubscriptionState.PENDING.value,
                ),
            }
            if self._update_subscription(conn, feed_id, values) == 0:
                raise NotFoundError("subscription", feed_id)
            row = (
                conn.execute(select(subscriptions).where(s.feed_id == feed_id))
                .mappings()
                .one()
            )
            return _subscription_from_row(row)

        return self._run("subscription_requested", work)

    def subscription_failed(self, feed_id: int, error: str, now: datetime) -> None:
        """Keep why the hub did not take the request."""

        def work(conn: Connection) -> None:
            values = {"last_error": error, "updated_at": now}
            if self._update_subscription(conn, feed_id, values) == 0:
                raise NotFoundError("subscription", feed_id)

        self._run("subscription_failed", work)

    def verify_subscription(
        self, feed_id: int, topic: str, lease_seconds: int, now: datetime
    ) -> bool:
        """Verified until ``now + lease_seconds`` if a request awaits for ``topic``."""
        s = subscriptions.c

        def work(conn: Connection) -> bool:
            values = {
                "state": SubscriptionState.VERIFIED.value,
                "lease_seconds": lease_seconds,
                "lease_expires_at": now + timedelta(seconds=lease_seconds),
                "verified_at": now,
                "requested_at": None,
                "last_error": None,
                "updated_at": now,
            }
            return (
                self._update_subscription(
                    conn, feed_id, values, s.topic == topic, s.requested_at.is_not(None)
                )
                == 1
            )

        return self._run("verify_subscription", work)

    def deny_subscription(
        self, feed_id: int, topic: str, reason: str | None, now: datetime
    ) -> bool:
        """Denied, if a request for ``topic`` awaits (a forged denial cannot end a
        subscription nobody asked about)."""
        s = subscriptions.c

        def work(conn: Connection) -> bool:
            values = {
                "state": SubscriptionState.DENIED.value,
                "requested_at": None,
                "lease_expires_at": None,
                "last_error": f"denied by the hub: {reason or 'no reason given'}",
                "updated_at": now,
            }
            return (
                self._update_subscription(
                    conn, feed_id, values, s.topic == topic, s.requested_at.is_not(None)
                )
                == 1
            )

        return self._run("deny_subscription", work)

    def expire_subscriptions(self, now: datetime) -> int:
        """Verified subscriptions whose lease has ended become expired."""
        s = subscriptions.c

        def work(conn: Connection) -> int:
            result = conn.execute(
                update(subscriptions)
                .where(
                    s.state == SubscriptionState.VERIFIED.value,
                    s.lease_expires_at <= now,
                )
                .values(state=SubscriptionState.EXPIRED.value, updated_at=now)
            )
            return int(result.rowcount)

        return self._run("expire_subscriptions", work)

    def record_push(self, feed_id: int, now: datetime) -> None:
        """A correctly signed push arrived at ``now``."""

        def work(conn: Connection) -> None:
            if self._update_subscription(conn, feed_id, {"last_push_at": now}) == 0:
                raise NotFoundError("subscription", feed_id)

        self._run("record_push", work)

    def push_fed_feeds(self, now: datetime, silent_since: datetime) -> set[int]:
        """Feeds with a live subscription whose hub spoke since ``silent_since``."""
        s = subscriptions.c

        def work(conn: Connection) -> set[int]:
            return set(
                conn.scalars(
                    select(s.feed_id).where(
                        s.state == SubscriptionState.VERIFIED.value,
                        s.lease_expires_at > now,
                        func.coalesce(s.last_push_at, s.verified_at) >= silent_since,
                    )
                )
            )

        return self._run("push_fed_feeds", work, write=False)

    # -- scheduled digest runs (worker.digest) ------------------------------------

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
        """Insert the run, with its period, if absent (True); else take over a
        stale unsent claim."""
        r = digest_runs.c

        def work(conn: Connection) -> bool:
            # RETURNING, not rowcount: psycopg reports no count for ON CONFLICT.
            inserted = conn.execute(
                self._insert(digest_runs)
                .values(
                    schedule=name,
                    digest_id=digest_id,
                    worker_id=worker_id,
                    claimed_at=now,
                    period_start=since,
                    period_end=until,
                )
                .on_conflict_do_nothing(index_elements=[r.schedule, r.digest_id])
                .returning(r.schedule)
            ).all()
            if inserted:
                return True
            # The WHERE is evaluated again on the row a concurrent taker committed
            # (PostgreSQL) or under the write lock (SQLite): one taker wins.
            taken = conn.execute(
                update(digest_runs)
                .where(
                    r.schedule == name,
                    r.digest_id == digest_id,
                    r.sent_at.is_(None),
                    r.claimed_at <= now - timedelta(seconds=lease_seconds),
                )
                .values(worker_id=worker_id, claimed_at=now)
            )
            return int(taken.rowcount) == 1

        return self._run("claim_digest_run", work)

    def finish_digest_run(self, name: str, digest_id: str, now: datetime) -> None:
        """Mark the claimed run sent."""
        r = digest_runs.c

        def work(conn: Connection) -> None:
            done = conn.execute(
                update(digest_runs)
                .where(r.schedule == name, r.digest_id == digest_id)
                .values(sent_at=now)
            )
            if done.rowcount == 0:
                raise NotFoundError("digest run", f"{name}/{digest_id}")

        self._run("finish_digest_run", work)

    def unsent_digest_runs(
        self, claimed_before: datetime, ended_after: datetime
    ) -> list[DigestRun]:
        """Unsent runs claimed by ``claimed_before`` whose period ended at or after
        ``ended_after``, oldest period first."""
        r = digest_runs.c

        def work(conn: Connection) -> list[DigestRun]:
            rows = conn.execute(
                select(digest_runs)
                .where(
                    r.sent_at.is_(None),
                    r.claimed_at <= claimed_before,
                    r.period_end >= ended_after,
                )
                .order_by(r.period_end, r.schedule, r.digest_id)
            ).mappings()
            return [
                DigestRun(
                    schedule=row["schedule"],
                    digest_id=row["digest_id"],
                    worker_id=row["worker_id"],
                    claimed_at=row["claimed_at"],
                    since=row["period_start"],
                    until=row["period_end"],
                )
                for row in rows
            ]

        return self._run("unsent_digest_runs", work, write=False)


SqlStore.register(FastSQLiteStore)


def _subscription_from_row(row: RowMapping) -> Subscription:
    return Subscription(
        feed_id=row["feed_id"],
        hub=row["hub"],
        topic=row["topic"],
        secret=row["secret"],
        state=SubscriptionState(row["state"]),
        lease_seconds=row["lease_seconds"],
        lease_expires_at=row["lease_expires_at"],
        requested_at=row["requested_at"],
        verified_at=row["verified_at"],
        last_push_at=row["last_push_at"],
        last_error=row["last_error"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _item_from_row(row: RowMapping) -> Item:
    return Item(
        id=row["item_id"],
        title=row["title"],
        summary=row["summary"],
        url=row["url"],
        published=row["published"],
        source=row["source"],
        feed_url=row["feed_url"],
    )


def _event_json(event: Event | None) -> dict[str, Any] | None:
    return None if event is None else event.model_dump(mode="json")


def _story_from_row(row: RowMapping, sources: Iterable[StorySource]) -> Story:
    return Story(
        id=row["id"],
        title=row["title"],
        first_seen=row["first_seen"],
        last_seen=row["last_seen"],
        event=None if row["event"] is None else Event.model_validate(row["event"]),
        sources=tuple(sources),
    )
