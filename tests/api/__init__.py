"""Tests of worker/api.py and worker/metrics.py against real servers and databases."""
