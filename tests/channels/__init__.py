"""Tests of worker/channels (a package so tests/ is on sys.path for ``receivers``)."""
