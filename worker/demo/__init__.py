"""Offline demo: bundled sample feeds (``feeds/``) and a loopback server for them.

Input: nothing but the package's data files; output: feed URLs for ``feedwatch demo``
and tests. Import :mod:`worker.demo.server` for the API (kept out of this module so
``python -m worker.demo.server`` runs without a double import).
"""

from __future__ import annotations
