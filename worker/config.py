"""Settings: one YAML file, ``FEEDWATCH_*`` environment overrides, secrets from env or files.

Order of precedence, highest first: values passed by the CLI, ``FEEDWATCH_*`` variables
(nested keys with ``__``: ``FEEDWATCH_FETCH__TIMEOUT=5``), ``FEEDWATCH_<KEY>_FILE``
variables (the value is read from that file), the YAML file, the defaults.

The file is ``--config FILE``, else ``$FEEDWATCH_CONFIG``, else ``./feedwatch.yaml``,
else none (defaults only). Channel secrets are given inline, as ``<field>_env: VAR``
or as ``<field>_file: PATH``.
"""

from __future__ import annotations

import functools
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from worker.errors import ConfigError

if TYPE_CHECKING:
    from pydantic_settings import BaseSettings

__all__ = [
    "ApiSettings",
    "AppriseChannelSettings",
    "ChannelSettings",
    "ConsoleChannelSettings",
    "DeliverySettings",
    "DigestSchedule",
    "EmailChannelSettings",
    "FeedSettings",
    "FetchSettings",
    "FileChannelSettings",
    "PollSettings",
    "QuietHours",
    "RateLimit",
    "Settings",
    "StorySettings",
    "WebhookChannelSettings",
    "default_cache_dir",
    "find_config_file",
    "load_settings",
    "parse_duration",
]

DEFAULT_CONFIG_NAME = "feedwatch.yaml"
ENV_PREFIX = "FEEDWATCH_"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: object) -> float:
    """Seconds from a number or a duration string.

    >>> parse_duration("15m"), parse_duration("1.5h"), parse_duration(30)
    (900.0, 5400.0, 30.0)
    """
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 15m, 2h or 1d")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return float(m.group(1)) * _UNIT_SECONDS[(m.group(2) or "s").lower()]
    raise ValueError(f"expected a duration such as 30s, 15m, 2h or 1d, got {value!r}")


Duration = Annotated[float, BeforeValidator(parse_duration)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


def _resolve_secret_refs(data: Any, fields: tuple[str, ...]) -> Any:
    """Turn ``password_env: VAR`` / ``password_file: PATH`` into ``password``."""
    if not isinstance(data, dict):
        return data
    data = dict(data)
    for name in fields:
        env_key, file_key = f"{name}_env", f"{name}_file"
        if env_key in data:
            var = data.pop(env_key)
            if not isinstance(var, str) or var not in os.environ:
                raise ValueError(f"{env_key}: environment variable {var!r} is not set")
            data[name] = os.environ[var]
        if file_key in data:
            path = data.pop(file_key)
            try:
                data[name] = Path(str(path)).read_text(encoding="utf-8").strip()
            except OSError as e:
                raise ValueError(f"{file_key}: cannot read {path!r}: {e}") from e
    return data


class FeedSettings(_Section):
    """A feed to subscribe to at start-up."""

    url: str
    """http(s) URL, or file:// for a local file."""
    interval: Duration | None = None
    """Seconds (or 15m, 1h) between polls; default ``poll.interval``."""
    tags: tuple[str, ...] = ()
    name: str | None = None
    """Outlet name shown in alerts; default the feed's own title."""
    min_interval: Duration | None = None
    """Shortest adaptive interval for this feed; default ``poll.min_interval``."""
    max_interval: Duration | None = None
    """Longest adaptive interval (and cap on server hints); default
    ``poll.max_interval``."""

    @field_validator("url")
    @classmethod
    def _url_scheme(cls, v: str) -> str:
        if not re.match(r"^(https?|file)://", v):
            raise ValueError(f"expected an http://, https:// or file:// URL, got {v!r}")
        return v


class PollSettings(_Section):
    interval: Duration = 900.0
    """Default seconds between polls of one feed."""
    concurrency: int = Field(default=32, ge=1, le=1024)
    """Feeds fetched at once."""
    batch: int = Field(default=500, ge=1)
    """Most feeds claimed per poll cycle."""
    tick: Duration = 30.0
    """How often the daemon looks for due feeds."""
    scheduler: Literal["entry_frequency", "fixed"] = "entry_frequency"
    """``entry_frequency``: a feed without its own ``interval`` is polled as often
    as it publishes (items of the last 7 days), between ``min_interval`` and
    ``max_interval``; ``fixed``: every ``interval``."""
    min_interval: Duration = 300.0
    """Shortest adaptive interval."""
    max_interval: Duration = 21600.0
    """Longest adaptive interval; also caps ttl, Cache-Control and Expires hints."""
    jitter: float = Field(default=0.1, ge=0, le=0.5)
    """Each next check is moved by up to this fraction, so polls spread out."""
    error_backoff_max: Duration = 86400.0
    """Ceiling of the exponential backoff after errors (never stops polling)."""
    processes: Annotated[int, Field(ge=1, le=64)] | Literal["auto"] = "auto"
    """Processes that fetch, parse, classify and record a pass's feeds, each a
    chunk at a time: the main one and ``processes - 1`` forked at start-up (before
    any thread); ``1`` polls in the main process alone. ``auto``: one per CPU, at
    most 4. Feeds whose new items alert are handed back to the main process, which
    alone assigns stories and raises alerts. An in-memory database always polls
    in one process."""


_NO_PROXY_FORMS = (
    "expected hosts separated by commas or spaces (a.example, .internal, "
    "10.0.0.0/8) or a JSON list of them"
)
# Letters, digits, "-", "_", "." of names (and IDNs), "*" and ":", "[", "]", "%"
# of v6 addresses and ports, "/" of networks: quotes, braces, "=" are a mistake.
_NO_PROXY_ENTRY = re.compile(r"[\w.*:%\[\]/-]+")
_NO_PROXY_V6 = re.compile(r"\[[0-9a-f:.]+(%[\w.-]+)?\](:\d+)?", re.IGNORECASE)


class FetchSettings(_Section):
    allow_private_addresses: bool = False
    """Allow feeds on loopback, private or link-local addresses (off: SSRF guard).
    Through a proxy the guard is best effort: the feed's host is resolved here and
    refused if private, but the proxy resolves it again (a name that does not
    resolve here is left to the proxy); the proxy's own address may be private."""
    timeout: Duration = 20.0
    """Total seconds per request."""
    connect_timeout: Duration = 10.0
    max_body_bytes: int = Field(default=15_000_000, ge=1024)
    max_redirects: int = Field(default=5, ge=0, le=20)
    user_agent: str = "feedwatch/{version} (+https://github.com/feedwatch/feedwatch)"
    """``{version}`` is replaced by feedwatch's version."""
    contact: str | None = None
    """Appended to the User-Agent so publishers can reach you (an email or URL)."""
    per_host_concurrency: int = Field(default=8, ge=1, le=1024)
    """Requests in flight to one host at once (``poll.concurrency`` is global)."""
    transport: Literal["aiohttp", "httpx"] = "aiohttp"
    """HTTP transport under the httpx API: ``aiohttp`` (feedwatch's own httpx
    transport on aiohttp, several times faster per request than httpx's pool at
    high concurrency) or httpx's own; falls back to httpx if aiohttp is missing."""
    honor_cache_headers: bool = True
    """Treat RSS ttl, Cache-Control max-age and Expires as the earliest next check."""
    proxy: SecretStr | None = None
    """Forward proxy for http and https feeds (https through CONNECT):
    ``http://[user:password@]host:port`` or ``https://...``; http:// if no scheme
    is given. Also ``proxy_env: VAR`` or ``proxy_file: PATH``. Unset: the
    environment's, if ``trust_env``. Shown and logged without its credentials."""
    no_proxy: tuple[str, ...] = ()
    """Hosts fetched directly, not through the proxy: a name matches itself and
    its subdomains (``example.org``, ``.example.org``), an IP address or network
    (``10.0.0.0/8``) URLs written with such an address, ``*`` every host. A list,
    or a string as ``NO_PROXY`` is written (commas or spaces) or holding a JSON
    list. Loopback hosts are never fetched through a proxy."""
    trust_env: bool = True
    """Honour ``HTTPS_PROXY``, ``HTTP_PROXY`` and ``ALL_PROXY`` (when ``proxy`` is
    unset) and ``NO_PROXY`` (added to ``no_proxy``), lower case first, as curl does."""
    ca_file: str | None = None
    """A PEM file of CA certificates trusted for https, in addition to the default
    ones: a TLS-intercepting proxy's CA, feeds and hubs under a private CA."""

    @model_validator(mode="before")
    @classmethod
    def _proxy_secret_refs(cls, data: Any) -> Any:
        return _resolve_secret_refs(data, ("proxy",))

    @field_validator("ca_file", mode="before")
    @classmethod
    def _blank_ca_file(cls, v: object) -> object:
        return None if isinstance(v, str) and not v.strip() else v

    @field_validator("ca_file")
    @classmethod
    def _ca_file_loads(cls, v: str | None) -> str | None:
        # Checked at load, so a wrong path stops start-up instead of failing
        # every https feed. A bare context loads no default CAs: cheap.
        if v is None:
            return v
        import ssl

        path = Path(v)
        if not path.is_file():
            problem = "is a directory" if path.is_dir() else "does not exist"
            raise ValueError(f"{v!r} {problem}; expected a PEM file of CA certificates")
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=v)
        except ssl.SSLError:
            raise ValueError(
                f"{v!r} holds no PEM CA certificate; expected one or more "
                "-----BEGIN CERTIFICATE----- blocks"
            ) from None
        except OSError as e:
            raise ValueError(f"cannot read {v!r}: {e.strerror or e}") from None
        return v

    @field_validator("proxy", mode="before")
    @classmethod
    def _blank_proxy(cls, v: object) -> object:
        return None if isinstance(v, str) and not v.strip() else v

    @field_validator("no_proxy", mode="before")
    @classmethod
    def _no_proxy_entries(cls, v: object) -> object:
        # A string is read as NO_PROXY is, or as JSON if it looks like JSON (as an
        # environment variable's value may be): it reaches here undecoded.
        text = v.strip() if isinstance(v, str) else ""
        if text.startswith(("[", "{", '"')):
            try:
                v = json.loads(text)
            except ValueError as e:
                # "[::1]:8080, .internal" is a host list that starts as JSON does.
                first = re.split(r"[,\s]+", text, maxsplit=1)[0]
                if not _NO_PROXY_V6.fullmatch(first):
                    raise ValueError(
                        f"{_NO_PROXY_FORMS}; not valid JSON: {e}"
                    ) from None
        if isinstance(v, str):
            entries = cls.split_no_proxy(v)
        elif isinstance(v, list | tuple) and all(isinstance(e, str) for e in v):
            entries = cls.split_no_proxy(",".join(v))
        elif isinstance(v, list | tuple):
            return v  # pydantic names the entry that is not a string
        else:
            what = "a mapping" if isinstance(v, dict) else repr(v)
            raise ValueError(f"{_NO_PROXY_FORMS}, not {what}")
        for entry in entries:
            if not _NO_PROXY_ENTRY.fullmatch(entry):
                raise ValueError(
                    f"expected a host name, IP address or network, got {entry!r}"
                )
        return entries

    @model_validator(mode="after")
    def _proxy_url(self) -> FetchSettings:
        # Checked here, not by a field validator: the error of a field shows the
        # value given, password and all.
        if self.proxy is not None:
            try:
                self.split_proxy_url(self.proxy.get_secret_value())
            except ValueError as e:
                raise ValueError(f"proxy: {e}") from None
        return self

    @staticmethod
    def split_proxy_url(url: str) -> tuple[str, str | None, str | None]:
        """(URL without credentials, user name, password) of a proxy URL, http:// if
        it has no scheme; ValueError naming the fault without the credentials."""
        import urllib.parse

        text = url.strip()
        if "://" not in text:
            text = f"http://{text}"
        scheme, _, rest = text.partition("://")
        scheme = scheme.lower()
        # The credentials end at the last "@": a password with a "/", "?", "#" or
        # "@" left unencoded still works, and no part of it reaches a message.
        userinfo, at, location = rest.rpartition("@")
        hostport = re.split(r"[/?#]", location, maxsplit=1)[0]
        shown = f"{scheme}://{'***@' if at else ''}{hostport}"
        example = "such as http://proxy.example:3128"
        if scheme not in ("http", "https"):
            why = " (SOCKS is not supported)" if scheme.startswith("socks") else ""
            raise ValueError(
                f"expected an http:// or https:// proxy URL, got {shown}{why}"
            )
        try:
            parts = urllib.parse.urlsplit(f"{scheme}://{location}")
            port = parts.port
        except ValueError as e:
            raise ValueError(
                f"expected a proxy URL {example}, got {shown}: {e}"
            ) from None
        if not parts.hostname:
            raise ValueError(f"expected a proxy URL {example}, got {shown}: no host")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"expected a proxy URL without a path, got {shown}")
        user = password = None
        if at:
            name, _, secret = userinfo.partition(":")
            user, password = urllib.parse.unquote(name), urllib.parse.unquote(secret)
            if ":" in user:
                raise ValueError("the proxy's user name cannot contain ':'")
        if port is None:
            hostport = f"{hostport.rstrip(':')}:{443 if scheme == 'https' else 80}"
        return f"{scheme}://{hostport}", user, password

    @staticmethod
    def split_no_proxy(value: str) -> tuple[str, ...]:
        """The entries of a NO_PROXY-style list (commas or spaces), lower case;
        ValueError for one that is no host name, address or network."""
        import ipaddress

        entries: list[str] = []
        for raw in re.split(r"[,\s]+", value):
            entry = raw.strip().lower()
            if not entry:
                continue
            if "://" in entry or "@" in entry:
                raise ValueError(
                    f"expected a host name, IP address or network, got {raw!r}"
                )
            if "/" in entry:
                try:
                    ipaddress.ip_network(entry, strict=False)
                except ValueError as e:
                    raise ValueError(f"not an IP network: {raw!r} ({e})") from None
            entries.append(entry)
        return tuple(entries)


_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


class RateLimit(_Section):
    """At most ``count`` deliveries per ``per`` seconds on one channel; the rest wait
    in the outbox (never dropped) until the window has room."""

    count: int = Field(ge=1)
    per: Duration = Field(default=3600.0, gt=0)


class QuietHours(_Section):
    """A daily period in which a channel sends nothing; alerts raised then are held
    for the next digest (``then: digest``) or sent when it ends (``then: deliver``)."""

    start: str
    """Local time "HH:MM" the quiet period begins."""
    end: str
    """Local time "HH:MM" it ends (before ``start``: it runs past midnight)."""
    timezone: str = "UTC"
    """IANA zone the times are read in ("Asia/Seoul")."""
    then: Literal["digest", "deliver"] = "digest"
    """``digest``: held (status ``held``) until a digest carries them;
    ``deliver``: delivered when the quiet period ends."""

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, v: str) -> str:
        if not _CLOCK.match(v.strip()):
            raise ValueError(f'expected a time of day as "HH:MM", got {v!r}')
        return v.strip()

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo

        try:
            ZoneInfo(v)
        except (ValueError, KeyError) as e:
            raise ValueError(f"expected an IANA time zone, got {v!r}") from e
        return v


class _ChannelBase(_Section):
    name: str
    """Unique name, used by routing and ``--send``."""
    rules: tuple[str, ...] = ()
    """Only alerts of these rule ids (empty: all)."""
    topics: tuple[str, ...] = ()
    """Only alerts with one of these topics (empty: all)."""
    severities: tuple[str, ...] = ()
    """Only alerts of these severities (empty: all; an alert without one passes
    only if ``none`` is listed)."""
    rate_limit: RateLimit | None = None
    """Most deliveries per period (``{count: 10, per: 1h}``); the rest wait."""
    quiet_hours: QuietHours | None = None
    """Daily period in which nothing is sent on this channel."""


class ConsoleChannelSettings(_ChannelBase):
    type: Literal["console"]
    format: Literal["text", "json"] = "text"


class FileChannelSettings(_ChannelBase):
    type: Literal["file"]
    path: str
    """JSON Lines file; one alert payload per line."""


class WebhookChannelSettings(_ChannelBase):
    type: Literal["webhook"]
    url: str
    secret: SecretStr | None = None
    """Signing secret (Standard Webhooks: ``whsec_`` + base64, or any string)."""
    timeout: Duration = 10.0
    headers: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _secrets(cls, data: Any) -> Any:
        return _resolve_secret_refs(data, ("secret",))

    @field_validator("url")
    @classmethod
    def _url_scheme(cls, v: str) -> str:
        if not re.match(r"^https?://", v):
            raise ValueError(f"expected an http:// or https:// URL, got {v!r}")
        return v


class EmailChannelSettings(_ChannelBase):
    type: Literal["email"]
    host: str = "localhost"
    port: int = Field(default=25, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    security: Literal["none", "starttls", "tls"] = "none"
    """``starttls`` upgrades a plain connection; ``tls`` connects with TLS (port 465)."""
    sender: str = Field(default="feedwatch@localhost", alias="from")
    to: tuple[str, ...] = Field(min_length=1)
    timeout: Duration = 30.0

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _secrets(cls, data: Any) -> Any:
        return _resolve_secret_refs(data, ("password",))


class AppriseChannelSettings(_ChannelBase):
    """Any service Apprise reaches by URL (Slack, Teams, Telegram, Discord, ntfy,
    ...); needs the ``apprise`` extra."""

    type: Literal["apprise"]
    urls: tuple[SecretStr, ...] = Field(min_length=1)
    """Apprise URLs; they carry tokens, so they are masked in logs and reprs."""
    timeout: Duration = 30.0

    @model_validator(mode="before")
    @classmethod
    def _secrets(cls, data: Any) -> Any:
        # ``urls_env: VAR`` / ``urls_file: PATH``: one URL per line (or space).
        data = _resolve_secret_refs(data, ("urls",))
        if isinstance(data, dict) and isinstance(data.get("urls"), str):
            data = {**data, "urls": tuple(data["urls"].split())}
        return data


ChannelSettings = Annotated[
    ConsoleChannelSettings
    | FileChannelSettings
    | WebhookChannelSettings
    | EmailChannelSettings
    | AppriseChannelSettings,
    Field(discriminator="type"),
]


class DeliverySettings(_Section):
    interval: Duration = 5.0
    """How often the outbox is drained."""
    max_attempts: int = Field(default=10, ge=1)
    """After this many failures a delivery is dead (``alerts redeliver`` revives it)."""
    backoff_base: Duration = 5.0
    backoff_max: Duration = 3600.0
    batch: int = Field(default=100, ge=1)
    lease: Duration = Field(default=300.0, gt=0)
    """How long a claimed delivery is reserved for its worker; a worker that dies
    mid-send leaves it to be sent again after this (must exceed ``send_timeout``)."""
    send_timeout: Duration = Field(default=120.0, gt=0)
    """Longest one send may take before it counts as a retryable failure."""

    @model_validator(mode="after")
    def _lease_outlasts_a_send(self) -> DeliverySettings:
        if self.lease <= self.send_timeout:
            raise ValueError(
                f"lease ({self.lease:g}s) must be longer than send_timeout "
                f"({self.send_timeout:g}s), or a slow send could be claimed twice"
            )
        return self


class StorySettings(_Section):
    window: Duration = 5 * 86400.0
    """Reports this close in time may join one story."""
    threshold: float = Field(default=0.3, gt=0, le=1)
    """Similarity at which two reports are one story (0.3: best F1 on the tuning
    half of benchmarks/data/stories.jsonl, see docs/BENCHMARKS.md, story clustering)."""


class DigestSchedule(_Section):
    """A digest sent on a cron schedule through a channel."""

    name: str
    cron: str
    """Five-field crontab expression ("0 8 * * *" = 08:00 every day)."""
    timezone: str = "UTC"
    """IANA zone the cron expression is read in ("Asia/Seoul")."""
    channel: str
    """Name of the channel that carries it."""
    since: Duration = 86400.0
    """How far back the digest looks."""

    @model_validator(mode="after")
    def _valid_cron(self) -> DigestSchedule:
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(self.cron, timezone=self.timezone)
        except Exception as e:  # apscheduler raises ValueError or zoneinfo errors
            raise ValueError(
                f"expected a 5-field cron expression and an IANA time zone, "
                f"got cron={self.cron!r} timezone={self.timezone!r}: {e}"
            ) from e
        return self


class ApiSettings(_Section):
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    token: SecretStr | None = None
    """Bearer token for everything but health checks."""
    public_url: str | None = None
    """The API's base URL as WebSub hubs reach it (``https://feeds.example.org``);
    callbacks are ``<public_url>/websub/<feed id>``. WebSub is off while unset."""
    websub: bool = True
    """Subscribe to the hubs feeds advertise (needs ``public_url``)."""

    @model_validator(mode="before")
    @classmethod
    def _secrets(cls, data: Any) -> Any:
        return _resolve_secret_refs(data, ("token",))

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, v: str | None) -> str | None:
        if v is None:
            return None
        if not re.match(r"^https?://[^/?#\s]+", v) or re.search(r"[?#\s]", v):
            raise ValueError(
                f"expected an http:// or https:// base URL without query, got {v!r}"
            )
        return v.rstrip("/")


def default_cache_dir() -> str | None:
    """``$XDG_CACHE_HOME/feedwatch``, else ``~/.cache/feedwatch`` (None: no home)."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if os.path.isabs(xdg):  # the XDG spec says to ignore a relative value
        return str(Path(xdg) / "feedwatch")
    try:
        return str(Path.home() / ".cache" / "feedwatch")
    except RuntimeError:
        return None


def _default_channels() -> tuple[ChannelSettings, ...]:
    return (
        ConsoleChannelSettings(type="console", name="console"),
        FileChannelSettings(type="file", name="file", path="data/alerts.jsonl"),
    )


class Settings(BaseModel):
    """Everything feedwatch can be told; see ``feedwatch.example.yaml``.

    ``Settings(**values)`` reads the sources the way pydantic-settings does (the
    values given, then ``FEEDWATCH_*`` variables, ``FEEDWATCH_<KEY>_FILE``
    variables, the YAML file being loaded, the defaults); pydantic-settings itself
    (~50 ms to import) is loaded only when a ``FEEDWATCH_*`` variable is set or a
    value is given under a name that is not a field's own.
    """

    # validate_default as BaseSettings has it.
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    def __init__(self, **values: Any) -> None:
        super().__init__(**_source_values(values))

    database: str = "sqlite:///data/feedwatch.db"
    """SQLAlchemy URL: sqlite:///path or postgresql://user@host/db."""
    rules: str | None = None
    """Directory of rule files; default the bundled rules."""
    cache_dir: str | None = Field(default_factory=default_cache_dir)
    """Where compiled rules are cached (mode 0700); null or empty: no cache."""
    feeds: tuple[FeedSettings, ...] = ()
    channels: tuple[ChannelSettings, ...] = Field(default_factory=_default_channels)
    poll: PollSettings = Field(default_factory=PollSettings)
    fetch: FetchSettings = Field(default_factory=FetchSettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    stories: StorySettings = Field(default_factory=StorySettings)
    digests: tuple[DigestSchedule, ...] = ()
    api: ApiSettings = Field(default_factory=ApiSettings)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("database")
    @classmethod
    def _database_url(cls, v: str) -> str:
        if not re.match(r"^(sqlite|postgresql)(\+\w+)?://", v):
            raise ValueError(
                "expected a SQLAlchemy URL starting sqlite:/// or postgresql://, "
                f"got {v!r}"
            )
        return v

    @field_validator("channels")
    @classmethod
    def _unique_channel_names(
        cls, v: tuple[ChannelSettings, ...]
    ) -> tuple[ChannelSettings, ...]:
        seen: set[str] = set()
        for ch in v:
            if ch.name in seen:
                raise ValueError(f"channel name {ch.name!r} is used twice")
            seen.add(ch.name)
        return v

    @model_validator(mode="after")
    def _digest_channels_exist(self) -> Settings:
        names = {c.name for c in self.channels}
        for i, d in enumerate(self.digests):
            if d.channel not in names:
                raise ValueError(
                    f"digests.{i}.channel: no channel named {d.channel!r} "
                    f"(known: {', '.join(sorted(names)) or 'none'})"
                )
        return self

    def channel(self, name: str) -> ChannelSettings:
        """The channel called ``name``; ConfigError naming the known ones if none."""
        for ch in self.channels:
            if ch.name == name:
                return ch
        known = ", ".join(c.name for c in self.channels) or "none"
        raise ConfigError(
            None, "channels", f"no channel named {name!r} (known: {known})"
        )


# The YAML document for the settings being built. Sources are read inside the
# constructor, so the document travels through a global set only by load_settings
# (single-threaded start-up).
_yaml_data: dict[str, Any] = {}


def _deep_update(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``update`` merged in, mappings key by key (pydantic-settings'
    merge of one source over the next)."""
    out = base.copy()
    for key, value in update.items():
        if isinstance(out.get(key), dict) and isinstance(value, dict):
            out[key] = _deep_update(out[key], value)
        else:
            out[key] = value
    return out


def _needs_env_sources(values: dict[str, Any]) -> bool:
    """True if pydantic-settings could find more than the YAML and ``values``: a
    ``FEEDWATCH_*`` variable (names are matched case-insensitively) other than
    ``FEEDWATCH_CONFIG``, or a value given by another name than its field's."""
    prefix = ENV_PREFIX.lower()
    for name in os.environ:
        low = name.lower()
        if low.startswith(prefix) and low != "feedwatch_config":
            return True
    return not Settings.model_fields.keys() >= values.keys()


def _source_values(values: dict[str, Any]) -> dict[str, Any]:
    """The input Settings validates: ``values`` over the environment over the YAML."""
    if not _needs_env_sources(values):
        return _deep_update(_yaml_data, values)
    return _collect_sources(_settings_sources(), values)


class _Collected(Exception):
    """Carries the merged input of the sources out of the collector."""

    def __init__(self, values: dict[str, Any]) -> None:
        super().__init__()
        self.values = values


def _collect_sources(cls: type[BaseSettings], values: dict[str, Any]) -> dict[str, Any]:
    from pydantic_settings import SettingsError

    try:
        cls(**values)
    except _Collected as c:
        return c.values
    except SettingsError as e:
        raise _undecodable_variable(e) from e
    raise AssertionError("the sources' collector did not stop before validation")


def _undecodable_variable(e: Exception) -> ConfigError:
    """ConfigError naming the ``FEEDWATCH_*`` variables of the field whose value
    pydantic-settings could not read (JSON for a list or mapping)."""
    m = re.search(r'field "(\w+)"', str(e))
    field = m.group(1) if m else ""
    name = f"{ENV_PREFIX}{field.upper()}"
    found = sorted(
        n for n in os.environ if n.upper() == name or n.upper().startswith(f"{name}__")
    )
    cause = f": {e.__cause__}" if e.__cause__ else ""
    return ConfigError(
        "environment",
        f"{' or '.join(found) or name} ({field})" if field else "",
        f"expected a JSON list or mapping{cause}",
    )


@functools.cache
def _settings_sources() -> type[BaseSettings]:
    """A pydantic-settings class with Settings' fields that merges the sources
    (pydantic-settings' own rules: env parsing, nested ``__`` keys, JSON values)
    and hands the merged input back unvalidated; Settings validates it."""
    from pydantic import ModelWrapValidatorHandler, create_model
    from pydantic_settings import (
        BaseSettings,
        NoDecode,
        PydanticBaseSettingsSource,
        SettingsConfigDict,
    )

    class YamlSource(PydanticBaseSettingsSource):
        def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
            return _yaml_data.get(field_name), field_name, False

        def __call__(self) -> dict[str, Any]:
            return dict(_yaml_data)

    class EnvFileSecretsSource(PydanticBaseSettingsSource):
        """``FEEDWATCH_DATABASE_FILE=/run/secrets/db`` sets ``database`` from the file."""

        def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
            return None, field_name, False

        def __call__(self) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for name in self.settings_cls.model_fields:
                var = f"{ENV_PREFIX}{name.upper()}_FILE"
                path = os.environ.get(var)
                if path is None:
                    continue
                try:
                    out[name] = Path(path).read_text(encoding="utf-8").strip()
                except OSError as e:
                    raise ConfigError(
                        var, name, f"cannot read secret file {path!r}: {e}"
                    ) from e
            return out

    class Collector(BaseSettings):
        model_config = SettingsConfigDict(
            env_prefix=ENV_PREFIX,
            env_nested_delimiter="__",
            extra="forbid",
            frozen=True,
        )

        @model_validator(mode="wrap")
        @classmethod
        def _collect(cls, data: Any, handler: ModelWrapValidatorHandler[Any]) -> Any:
            raise _Collected(data)

        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (
                init_settings,
                env_settings,
                EnvFileSecretsSource(settings_cls),
                YamlSource(settings_cls),
            )

    # The env source reads the fields' types (JSON for complex values, ``__``
    # for nested keys): the same fields as Settings.
    fields: dict[str, Any] = {
        name: (info.annotation, info) for name, info in Settings.model_fields.items()
    }
    # FEEDWATCH_FETCH__NO_PROXY="a.example, .internal" as NO_PROXY is written: the
    # env source hands the string over undecoded (NoDecode; its validator reads
    # JSON lists too). Only the sources see this subclass; Settings validates.
    fetch_sources = create_model(
        "FetchSources",
        __base__=FetchSettings,
        no_proxy=(
            Annotated[tuple[str, ...], NoDecode],
            FetchSettings.model_fields["no_proxy"],
        ),
    )
    fields["fetch"] = (fetch_sources, Settings.model_fields["fetch"])
    SettingsSources: type[BaseSettings] = create_model(
        "SettingsSources", __base__=Collector, **fields
    )
    return SettingsSources


def find_config_file(explicit: str | os.PathLike[str] | None) -> Path | None:
    """``--config``, else ``$FEEDWATCH_CONFIG``, else ``./feedwatch.yaml`` if present."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("FEEDWATCH_CONFIG")
    if env:
        return Path(env)
    default = Path(DEFAULT_CONFIG_NAME)
    return default if default.is_file() else None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(
            str(path), "", f"cannot read the config file: {e.strerror}"
        ) from e
    data = _read_json(text)
    if data is _NOT_JSON:
        data = _load_yaml(path, text)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            str(path), "", "expected a mapping of settings at the top level"
        )
    return data


_NOT_JSON: Any = object()
_PLAIN_JSON_FLOAT = re.compile(r"-?\d+\.\d+")


def _plain_float(text: str) -> float:
    # YAML 1.1 (PyYAML) reads 1e5 and 1.5e5 as strings and has no NaN/Infinity
    # spelled that way: such documents go to the YAML parser.
    if not _PLAIN_JSON_FLOAT.fullmatch(text):
        raise ValueError(text)
    return float(text)


def _not_yaml_constant(text: str) -> Any:
    raise ValueError(text)


def _short_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # PyYAML refuses keys of 1024 characters or more in a flow mapping.
    if any(len(key) > 1000 for key, _ in pairs):
        raise ValueError("long key")
    return dict(pairs)


def _read_json(text: str) -> Any:
    """The document if it is JSON that PyYAML reads the same way, else _NOT_JSON:
    a JSON config file is read without importing PyYAML (~10 ms). Tabs (PyYAML
    refuses them between tokens), ``\\u`` escapes (it keeps surrogate pairs
    apart), exponents and NaN/Infinity (it reads them as strings) go to PyYAML."""
    if not text.lstrip(" \r\n").startswith("{") or "\t" in text or "\\u" in text:
        return _NOT_JSON
    try:
        return json.loads(
            text,
            parse_float=_plain_float,
            parse_constant=_not_yaml_constant,
            object_pairs_hook=_short_keys,
        )
    except ValueError:
        return _NOT_JSON


def _load_yaml(path: Path, text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(str(path), where, f"not valid YAML: {problem}") from e


def _key_path(loc: tuple[int | str, ...]) -> str:
    # Drop the discriminator tag pydantic inserts for unions ("channels.0.webhook.url").
    parts = [str(p) for p in loc]
    if len(parts) >= 3 and parts[0] == "channels":
        parts = [p for i, p in enumerate(parts) if not (i == 2 and p in _CHANNEL_TYPES)]
    return ".".join(parts)


_CHANNEL_TYPES = {"console", "file", "webhook", "email", "apprise"}
# Keys whose values are never shown in an error message (SecretStr fields).
_SECRET_KEYS = frozenset({"token", "password", "secret", "urls"})


def _env_variable(key: str, overrides: dict[str, Any]) -> str | None:
    """The ``FEEDWATCH_*`` variable the value at ``key`` (a key path) came from, the
    nearest one holding it as pydantic-settings reads them; None if it came from
    the YAML file, the defaults or ``overrides``."""
    parts = key.split(".") if key else []
    if not parts or parts[0] in overrides:
        return None
    prefix = ENV_PREFIX.upper()
    # pydantic-settings matches names case-insensitively.
    names = {n.upper(): n for n in os.environ if n.upper().startswith(prefix)}
    for i in range(len(parts), 0, -1):
        name = prefix + "__".join(parts[:i]).upper()
        # FEEDWATCH_<KEY> is read before FEEDWATCH_<KEY>_FILE.
        for candidate in (name, f"{name}_FILE") if i == 1 else (name,):
            if candidate in names and _holds(os.environ[names[candidate]], parts[i:]):
                return names[candidate]
    return None


def _holds(text: str, parts: list[str]) -> bool:
    """True if the JSON ``text`` has a value at ``parts`` (a variable holding part
    of a section: the rest may come from the file)."""
    if not parts:
        return True
    try:
        node: Any = json.loads(text)
    except ValueError:
        return False
    for part in parts:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return True


def load_settings(
    path: str | os.PathLike[str] | None = None, **overrides: Any
) -> Settings:
    """Build the settings, or raise ConfigError naming the file, key path and fault."""
    global _yaml_data
    config_path = find_config_file(path)
    if config_path is not None and not config_path.is_file():
        raise ConfigError(str(config_path), "", "the config file does not exist")
    _yaml_data = _read_yaml(config_path) if config_path else {}
    where = str(config_path) if config_path else None
    try:
        return Settings(**overrides)
    except ValidationError as e:
        err = e.errors()[0]
        key = _key_path(tuple(err["loc"]))
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check its spelling against feedwatch.example.yaml)"
        if (
            "input" in err
            and err["type"] not in ("missing", "extra_forbidden")
            and not isinstance(err["input"], dict | list | tuple)
            and not _SECRET_KEYS.intersection(map(str, err["loc"]))
        ):
            shown = repr(err["input"])
            if len(shown) > 80:
                shown = shown[:77] + "..."
            if shown not in msg:
                msg = f"{msg} (got {shown})"
        more = len(e.errors()) - 1
        if more:
            msg += f" (and {more} more problem{'s' if more > 1 else ''})"
        var = _env_variable(key, overrides)
        if var is not None:
            raise ConfigError("environment", f"{var} ({key})", msg) from e
        raise ConfigError(where, key, msg) from e
    finally:
        _yaml_data = {}
