"""The ``feedwatch`` command. The only place that turns errors into exit statuses."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import click

from worker import __version__
from worker.cli_context import CliContext, resolve_rules_dir, settings_from
from worker.errors import ConfigError, FeedwatchError, NotFoundError, RuleError

if TYPE_CHECKING:
    from worker.config import Settings

__all__ = ["cli", "main"]

log = logging.getLogger("worker")


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # httpx logs every request at INFO; that is our own poll line's job.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


class _LazyGroup(click.Group):
    """A group whose plugin commands are imported only when named (or listed)."""

    # name -> (module, attribute); the classify package costs ~0.1 s to import.
    lazy: ClassVar[dict[str, tuple[str, str]]] = {
        "rules": ("worker.classify.cli", "rules"),
        "eval": ("worker.classify.cli", "eval_command"),
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is None and cmd_name in self.lazy:
            import importlib

            module, attr = self.lazy[cmd_name]
            cmd = getattr(importlib.import_module(module), attr)
            assert isinstance(cmd, click.Command)
            self.add_command(cmd, cmd_name)
        return cmd


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    metavar="FILE",
    default=None,
    help="Config file (default: $FEEDWATCH_CONFIG, else ./feedwatch.yaml).",
)
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    default=None,
    help="Override the config's log_level.",
)
@click.version_option(__version__, prog_name="feedwatch")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, log_level: str | None) -> None:
    """Watch news feeds for diplomatic events; one alert per story."""
    ctx.obj = CliContext(config_path)
    ctx.meta["log_level"] = log_level.upper() if log_level else None


def _settings(ctx: click.Context, *, logging_on: bool = True) -> Settings:
    settings = settings_from(ctx)
    if logging_on:
        _setup_logging(ctx.find_root().meta.get("log_level") or settings.log_level)
    return settings


def _config_option(f: Any) -> Any:
    """``--config`` accepted after the subcommand too (``feedwatch run --config F``)."""

    def callback(
        ctx: click.Context, _param: click.Parameter, value: str | None
    ) -> None:
        if value:
            obj = ctx.find_object(CliContext) or ctx.ensure_object(CliContext)
            obj.config_path = value
            obj._settings = None

    return click.option(
        "--config",
        "config_path",
        metavar="FILE",
        expose_value=False,
        is_eager=True,
        callback=callback,
        help="Config file.",
    )(f)


# --------------------------------------------------------------------------- run


@cli.command()
@_config_option
@click.option("--duration", type=float, default=None, help="Stop after SECONDS.")
@click.pass_context
def run(ctx: click.Context, duration: float | None) -> None:
    """Run the daemon: poll due feeds, deliver alerts, until SIGTERM/SIGINT."""
    from worker.core import make_feedwatch
    from worker.fetch import proxy_routes
    from worker.poll import start_pool
    from worker.scheduler import Daemon

    settings = _settings(ctx)
    proxy_routes(settings.fetch)  # a bad proxy variable stops it here, not each tick

    async def main() -> None:
        fw = make_feedwatch(settings)
        fw.pool = pool
        try:
            daemon = Daemon(fw)
            if settings.api.enabled:
                from worker.api import run_api

                await asyncio.gather(
                    daemon.run(duration=duration),
                    run_api(fw, daemon.stop_event, daemon=daemon),
                )
            else:
                await daemon.run(duration=duration)
        finally:
            await fw.aclose()

    # Forked before the store is opened and before any thread starts.
    pool = start_pool(settings)
    try:
        asyncio.run(main())
    finally:
        if pool is not None:
            pool.close()


@cli.command()
@_config_option
@click.pass_context
def serve(ctx: click.Context) -> None:
    """Serve the HTTP API alone (health, metrics, alerts, search, digests)."""
    import signal

    from worker.api import run_api
    from worker.core import make_feedwatch

    settings = _settings(ctx)

    async def main() -> None:
        fw = make_feedwatch(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await run_api(fw, stop)
        finally:
            await fw.aclose()

    asyncio.run(main())


# -------------------------------------------------------------------------- poll


@cli.command()
@_config_option
@click.option("--once", is_flag=True, required=True, help="One cycle, then exit.")
@click.option("--all", "all_feeds", is_flag=True, help="Every feed, due or not.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option(
    "--no-deliver", is_flag=True, help="Leave alerts in the outbox for the daemon."
)
@click.pass_context
def poll(
    ctx: click.Context, once: bool, all_feeds: bool, as_json: bool, no_deliver: bool
) -> None:
    """Poll the due feeds once (``--all``: every feed), deliver, print a summary."""
    from worker.core import make_feedwatch
    from worker.fetch import proxy_routes
    from worker.poll import poll_once, start_pool

    settings = _settings(ctx)
    proxy_routes(settings.fetch)  # a bad proxy variable: ConfigError before forking

    async def main() -> dict[str, Any]:
        fw = make_feedwatch(settings)
        fw.pool = pool
        # Everything imported and loaded so far lives until exit: keep the
        # collector from rescanning it on every full collection of the pass.
        gc.freeze()
        try:
            await asyncio.to_thread(fw.sync_config_feeds)
            summary = await poll_once(fw, all_feeds=all_feeds)
            if pool is not None:
                pool.shutdown()  # they exit while this one delivers
            out: dict[str, Any] = summary.as_dict()
            if not no_deliver:
                out.update(delivered=0, delivery_retries=0, delivery_dead=0)
                # Nothing pending (the usual quiet pass): no channels to build.
                pending = summary.alerts or await asyncio.to_thread(
                    fw.store.count_pending_deliveries
                )
                if pending:
                    from worker.deliver import drain_outbox

                    res = await drain_outbox(
                        fw.store, fw.channels, settings.delivery, worker_id=fw.worker_id
                    )
                    out["delivered"] = res.delivered
                    out["delivery_retries"] = res.retried
                    out["delivery_dead"] = res.dead
            return out
        finally:
            await fw.aclose()

    # Forked before the store is opened and before any thread starts; what is
    # loaded by now is shared with the poll processes, untouched by collections.
    gc.freeze()
    pool = start_pool(settings)
    try:
        out = asyncio.run(main())
    finally:
        if pool is not None:
            pool.close()
    if as_json:
        click.echo(json.dumps(out, sort_keys=True))
    else:
        click.echo(
            "feeds {feeds}: polled {polled}, not modified {not_modified}, failed "
            "{failed}; new items {new_items}; alerts {alerts}".format(**out)
        )
        for err in out["errors"]:
            click.echo(f"  error: {err['error']}", err=True)


# ---------------------------------------------------------------------- classify


def _parse_date(value: Any, where: str) -> datetime | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise FeedwatchError(
            f"{where}: published: expected a date string, got {value!r}"
        )
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as e:
        raise FeedwatchError(
            f"{where}: published: expected YYYY-MM-DD or ISO 8601, got {value!r}"
        ) from e
    try:
        return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    except OverflowError as e:  # 0001-01-01T00:00+14:00 is before year 1 in UTC
        raise FeedwatchError(
            f"{where}: published: {value!r} is out of range in UTC"
        ) from e


def _items_from_jsonl(text: str, name: str) -> Iterator[Any]:
    from worker.models import Item

    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{name}:{n}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise FeedwatchError(f"{where}: not valid JSON: {e.msg}") from e
        if not isinstance(obj, dict):
            raise FeedwatchError(f"{where}: expected a JSON object per line")
        ident = obj.get("id")
        yield Item(
            id=str(ident) if ident is not None else f"{name}:{n}",
            title=str(obj.get("title") or ""),
            summary=str(obj.get("summary") or ""),
            url=obj.get("url") or None,
            published=_parse_date(obj.get("published"), where),
            source=obj.get("source") or None,
        )


def _looks_like_jsonl(data: bytes, name: str) -> bool:
    if name.endswith((".jsonl", ".ndjson")):
        return True
    first = data.lstrip().split(b"\n", 1)[0].strip()
    if not first.startswith(b"{"):
        return False
    try:
        obj = json.loads(first)
    except ValueError:
        return False
    return isinstance(obj, dict) and "items" not in obj and "version" not in obj


async def _read_source(
    source: str, settings: Settings
) -> tuple[str, bytes, str | None]:
    from worker.fetch import Fetched, Fetcher

    if source == "-":
        return "<stdin>", sys.stdin.buffer.read(), None
    if source.startswith(("http://", "https://")):
        async with Fetcher(settings.fetch, version=__version__) as f:
            res = await f.fetch(source)
        assert isinstance(res, Fetched)
        return res.url, res.body, res.content_type
    path = Path(source)
    try:
        return str(path), await asyncio.to_thread(path.read_bytes), None
    except OSError as e:
        raise FeedwatchError(f"{source}: cannot read: {e.strerror}") from e


@cli.command()
@_config_option
@click.argument("sources", nargs=-1, required=True)
@click.option("--rules", "rules_dir", metavar="DIR", help="Rules directory.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "table"]),
    default="jsonl",
    show_default=True,
)
@click.pass_context
def classify(
    ctx: click.Context, sources: Sequence[str], rules_dir: str | None, fmt: str
) -> None:
    """Classify the items of feed files, feed URLs or JSONL files (``-``: stdin).

    Uses no database and sends nothing: one decision per item on stdout.
    """
    from worker.classify import load_ruleset
    from worker.parse import parse_feed

    settings = _settings(ctx, logging_on=False)
    ruleset = load_ruleset(
        resolve_rules_dir(ctx, rules_dir), cache_dir=settings.cache_dir
    )
    failed = 0
    for source in sources:
        try:
            name, data, ctype = asyncio.run(_read_source(source, settings))
            if _looks_like_jsonl(data, name):
                items = list(_items_from_jsonl(data.decode("utf-8", "replace"), name))
            else:
                items = parse_feed(data, name, content_type=ctype).items
        except FeedwatchError as e:
            click.echo(f"feedwatch: {e}", err=True)
            failed += 1
            continue
        for item in items:
            d = ruleset.classify(item)
            if fmt == "jsonl":
                out = d.model_dump(mode="json")
                row = {k: out[k] for k in ("id", "alert", "topics", "rules", "score")}
                row["evidence"] = out["evidence"]
                row["event"] = out["event"]
                row["severity"] = out["severity"]
                click.echo(json.dumps(row, ensure_ascii=False))
            else:
                mark = "ALERT" if d.alert else "-"
                topics = ",".join(d.topics) or "-"
                click.echo(
                    f"{mark:5}  {topics:13}  {item.id[:24]:24}  {item.title[:70]}"
                )
    if failed:
        ctx.exit(1)


# ------------------------------------------------------------------------ digest


def parse_since(value: str, now: datetime, option: str = "--since") -> datetime:
    """``24h``, ``7d``, ``90m`` ago, or an ISO date/datetime (UTC if no zone).

    >>> parse_since("24h", datetime(2026, 1, 2, tzinfo=UTC)).isoformat()
    '2026-01-01T00:00:00+00:00'
    """
    from worker.api import parse_time

    try:
        return parse_time(value, now)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint=option) from e


@cli.command()
@_config_option
@click.option("--since", default="24h", show_default=True, help="24h, 7d or a date.")
@click.option("--until", default=None, help="A date (default: now).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "md", "html", "json"]),
    default="text",
    show_default=True,
)
@click.option("--rule", "rules", multiple=True, help="Only stories of this rule.")
@click.option("--topic", "topics", multiple=True, help="Only stories of this topic.")
@click.option("--send", "channel", default=None, help="Send through this channel.")
@click.pass_context
def digest(
    ctx: click.Context,
    since: str,
    until: str | None,
    fmt: str,
    rules: Sequence[str],
    topics: Sequence[str],
    channel: str | None,
) -> None:
    """Stories that matched in a period, grouped by story, newest first."""
    from worker.core import make_feedwatch
    from worker.digest import build_digest, render_digest, send_digest
    from worker.models import utcnow

    settings = _settings(ctx, logging_on=channel is not None)
    now = utcnow()
    start = parse_since(since, now)
    end = parse_since(until, now, "--until") if until else None
    if channel is not None:
        settings.channel(channel)

    async def main() -> str:
        fw = make_feedwatch(settings)
        try:
            if channel is None:
                d = build_digest(
                    fw.store, start, end or now, rules=rules, topics=topics
                )
                return render_digest(d, fmt)
            sent = await send_digest(
                fw.store,
                fw.channels[channel],
                start,
                end or now,
                rules=rules,
                topics=topics,
            )
            return f"digest of {len(sent.stories)} stories sent to {channel}"
        finally:
            await fw.aclose()

    click.echo(asyncio.run(main()))


# ------------------------------------------------------------------------- feeds


@cli.group()
def feeds() -> None:
    """Manage subscriptions (stored in the database)."""


@feeds.command("add")
@_config_option
@click.argument("urls", nargs=-1, required=True)
@click.option("--interval", default=None, help="Poll interval (900, 15m, 1h).")
@click.option("--tag", "tags", multiple=True, help="Tag (repeatable).")
@click.pass_context
def feeds_add(
    ctx: click.Context, urls: Sequence[str], interval: str | None, tags: Sequence[str]
) -> None:
    """Subscribe to one or more feed URLs."""
    from worker.config import FeedSettings, parse_duration
    from worker.core import make_feedwatch
    from worker.models import Feed

    settings = _settings(ctx, logging_on=False)
    try:
        secs = (
            int(parse_duration(interval)) if interval else int(settings.poll.interval)
        )
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--interval") from e
    for url in urls:
        try:
            FeedSettings(url=url)
        except ValueError as e:
            raise click.BadParameter(
                f"{url!r} is not an http(s):// or file:// URL"
            ) from e
    with make_feedwatch(settings) as fw:
        for url in urls:
            feed = fw.store.add_feed(Feed(url=url, interval=secs, tags=tuple(tags)))
            click.echo(f"added {feed.url} (every {feed.interval}s)")


@feeds.command("list")
@_config_option
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def feeds_list(ctx: click.Context, as_json: bool) -> None:
    """Subscriptions with their status, last error and next check; a config feed
    that moved permanently (301/308) also shows the URL the config lists."""
    from worker.core import make_feedwatch

    settings = _settings(ctx, logging_on=False)
    with make_feedwatch(settings) as fw:
        fw.sync_config_feeds()
        rows = fw.store.list_feeds()
        moved = fw.store.moved_config_feeds()
    if as_json:
        listed = [
            {**f.model_dump(mode="json"), "config_url": moved.get(f.id or 0)}
            for f in rows
        ]
        click.echo(json.dumps(listed, indent=2))
        return
    for f in rows:
        nxt = f.next_check_at.strftime("%Y-%m-%d %H:%M") if f.next_check_at else "now"
        line = f"{f.status.value:8} next {nxt:16}  {f.url}"
        if f.title:
            line += f"  ({f.title})"
        click.echo(line)
        if f.id in moved:
            click.echo(f"         configured as {moved[f.id]}")
        if f.last_error:
            click.echo(f"         last error: {f.last_error}")


@feeds.command("remove")
@_config_option
@click.argument("urls", nargs=-1, required=True)
@click.pass_context
def feeds_remove(ctx: click.Context, urls: Sequence[str]) -> None:
    """Unsubscribe (stored items stay for digests)."""
    from worker.core import make_feedwatch

    settings = _settings(ctx, logging_on=False)
    with make_feedwatch(settings) as fw:
        for url in urls:
            fw.store.remove_feed(url)
            click.echo(f"removed {url}")


@feeds.command("import")
@_config_option
@click.argument("file", type=click.Path(dir_okay=False))
@click.pass_context
def feeds_import(ctx: click.Context, file: str) -> None:
    """Subscribe to the feeds of an OPML file or a file of one URL a line."""
    from worker.core import make_feedwatch
    from worker.sources import read_feed_list

    settings = _settings(ctx, logging_on=False)
    found = read_feed_list(file, interval=int(settings.poll.interval))
    with make_feedwatch(settings) as fw:
        for feed in found:
            fw.store.add_feed(feed)
    click.echo(f"imported {len(found)} feed(s) from {file}")


@feeds.command("export")
@_config_option
@click.pass_context
def feeds_export(ctx: click.Context) -> None:
    """Print the subscriptions as OPML 2.0."""
    from worker.core import make_feedwatch
    from worker.sources import export_opml

    settings = _settings(ctx, logging_on=False)
    with make_feedwatch(settings) as fw:
        fw.sync_config_feeds()
        click.echo(export_opml(fw.store.list_feeds()), nl=False)


# ------------------------------------------------------------------------ alerts


@cli.group()
def alerts() -> None:
    """Inspect raised alerts and their deliveries."""


@alerts.command("list")
@_config_option
@click.option("--since", default=None, help="24h, 7d or a date.")
@click.option("--failed", is_flag=True, help="Only alerts whose delivery failed.")
@click.option("--limit", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def alerts_list(
    ctx: click.Context, since: str | None, failed: bool, limit: int, as_json: bool
) -> None:
    """Alerts newest first, with each channel's delivery status."""
    from worker.core import make_feedwatch
    from worker.models import utcnow

    settings = _settings(ctx, logging_on=False)
    start = parse_since(since, utcnow()) if since else None
    with make_feedwatch(settings) as fw:
        rows = fw.store.list_alerts(start, failed_only=failed, limit=limit)
    if as_json:
        out = [
            {
                "alert": r.alert.model_dump(mode="json"),
                "deliveries": [d.model_dump(mode="json") for d in r.deliveries],
            }
            for r in rows
        ]
        click.echo(json.dumps(out, indent=2, ensure_ascii=False))
        return
    if not rows:
        click.echo("no alerts")
    for r in rows:
        a = r.alert
        when = a.created_at.strftime("%Y-%m-%d %H:%M")
        click.echo(f"{a.id}  {when}  {a.rule:18}  {a.item.title[:70]}")
        for d in r.deliveries:
            err = f"  ({d.last_error})" if d.last_error else ""
            click.echo(
                f"    {d.channel:12} {d.status.value:9} attempts={d.attempts}{err}"
            )


@alerts.command("redeliver")
@_config_option
@click.argument("alert_ids", nargs=-1, required=True)
@click.pass_context
def alerts_redeliver(ctx: click.Context, alert_ids: Sequence[str]) -> None:
    """Queue an alert's deliveries again (dead ones included)."""
    from worker.core import make_feedwatch
    from worker.models import utcnow

    settings = _settings(ctx, logging_on=False)
    with make_feedwatch(settings) as fw:
        for aid in alert_ids:
            n = fw.store.redeliver(aid, utcnow())
            click.echo(f"{aid}: {n} deliver{'y' if n == 1 else 'ies'} queued")


# -------------------------------------------------------------------------- demo


@cli.command()
@click.option(
    "--duration",
    type=float,
    default=None,
    help="Keep the daemon running SECONDS (default: stop after the first pass).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON line per alert.")
@click.pass_context
def demo(ctx: click.Context, duration: float | None, as_json: bool) -> None:
    """Serve bundled sample feeds on 127.0.0.1 and run feedwatch against them."""
    from worker.demo.run import run_demo

    root = ctx.find_root().meta.get("log_level") or "WARNING"
    _setup_logging(root)
    asyncio.run(run_demo(duration=duration, as_json=as_json))


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: run the CLI; FeedwatchError -> message on stderr, exit 2 or 1."""
    # pydantic scans every installed distribution's entry points for plugins on its
    # first schema (~5-10 ms of each command's start); feedwatch uses none. Setting
    # the variable, even empty, keeps a user's choice.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    try:
        rv = cli.main(
            args=list(argv) if argv is not None else None, standalone_mode=False
        )
        if isinstance(rv, int) and rv:
            sys.exit(rv)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except (ConfigError, RuleError) as e:
        click.echo(f"feedwatch: {e}", err=True)
        sys.exit(2)
    except NotFoundError as e:
        click.echo(f"feedwatch: {e}", err=True)
        sys.exit(1)
    except FeedwatchError as e:
        click.echo(f"feedwatch: {e}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
