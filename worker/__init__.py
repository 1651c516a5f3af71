"""feedwatch: watches news feeds for diplomatic events and alerts once per story."""

__version__ = "0.1.0"
