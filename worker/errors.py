"""The feedwatch error tree; every error names its subject so a user can act on it.

```
FeedwatchError
├── ConfigError(path, key_path, expected)      -> exit status 2
├── RuleError(path, line, field)               (also ValueError)
├── FeedError(url)
│   ├── FetchError(url, stage)                 (timeout, too large, private address, status)
│   └── ParseError(url)                        (malformed document)
├── StoreError                                 (from SQLAlchemy / driver errors)
│   └── NotFoundError(kind, key)               (also LookupError)
└── DeliveryError(channel, envelope_id, retryable, retry_after)
```

Third-party exceptions are translated at the boundary with ``raise ... from e``.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DeliveryError",
    "FeedError",
    "FeedwatchError",
    "FetchError",
    "NotFoundError",
    "ParseError",
    "RuleError",
    "StoreError",
]


class FeedwatchError(Exception):
    """Base of every error feedwatch raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(FeedwatchError):
    """The configuration is wrong: names the file, the key path and what was expected."""

    def __init__(
        self, path: str | None, key_path: str, expected: str, value: object = None
    ) -> None:
        self.path = path
        self.key_path = key_path
        self.expected = expected
        self.value = value
        where = path or "<defaults/environment>"
        key = f": {key_path}" if key_path else ""
        super().__init__(f"{where}{key}: {expected}")


class RuleError(FeedwatchError, ValueError):
    """A rule or gazetteer file is wrong: names the file, the line and the field."""

    def __init__(
        self, path: str, line: int | None, field: str | None, problem: str
    ) -> None:
        self.path = path
        self.line = line
        self.field = field
        self.problem = problem
        loc = path if line is None else f"{path}:{line}"
        fld = f": {field}" if field else ""
        super().__init__(f"{loc}{fld}: {problem}")


class FeedError(FeedwatchError):
    """Something went wrong with one feed; the other feeds carry on."""

    def __init__(self, url: str, message: str) -> None:
        self.url = url
        super().__init__(f"{url}: {message}")


class FetchError(FeedError):
    """The feed could not be fetched; ``stage`` says where (connect, status, size, ...)."""

    def __init__(
        self,
        url: str,
        stage: str,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.stage = stage
        self.status = status
        self.retry_after = retry_after
        super().__init__(url, f"{stage}: {message}")


class ParseError(FeedError):
    """The document is not a feed feedwatch can read."""


class StoreError(FeedwatchError):
    """The database failed or refused an operation."""


class NotFoundError(StoreError, LookupError):
    """A feed, alert or story that was asked for does not exist."""

    def __init__(self, kind: str, key: object) -> None:
        self.kind = kind
        self.key = key
        super().__init__(f"no {kind} {key!r}")


class DeliveryError(FeedwatchError):
    """A channel could not deliver; ``retryable`` tells the outbox to try again later."""

    def __init__(
        self,
        channel: str,
        envelope_id: str,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
    ) -> None:
        self.channel = channel
        self.envelope_id = envelope_id
        self.retryable = retryable
        self.retry_after = retry_after
        super().__init__(f"channel {channel!r}, alert {envelope_id}: {message}")
