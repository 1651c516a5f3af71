"""feedwatch: watches news feeds for diplomatic events and alerts once per story."""

from __future__ import annotations

__version__ = "0.1.0"
