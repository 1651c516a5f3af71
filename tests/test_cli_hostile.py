"""CLI time options past the calendar's range: exit 2 naming the option, no traceback."""

from __future__ import annotations

from pathlib import Path

from conftest import write_config
from test_cli import run


def test_out_of_range_since_exits_2_naming_the_option(tmp_path: Path) -> None:
    cfg = write_config(
        tmp_path / "c.yaml", {"database": f"sqlite:///{tmp_path / 'db.sqlite'}"}
    )
    for value in ("9999999999999d", "0001-01-01T00:00:00+14:00"):
        res = run("digest", "--since", value, "--config", str(cfg), cwd=tmp_path)
        assert res.returncode == 2, res.stderr
        assert "--since" in res.stderr and "out of range" in res.stderr
        assert "Traceback" not in res.stderr


def test_classify_out_of_range_published_names_the_line(tmp_path: Path) -> None:
    items = tmp_path / "items.jsonl"
    items.write_text(
        '{"id": "a", "title": "t", "published": "2026-01-01"}\n'
        '{"id": "b", "title": "t", "published": "0001-01-01T00:00:00+14:00"}\n'
    )
    res = run("classify", str(items), cwd=tmp_path)
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stderr
    assert "items.jsonl:2" in res.stderr and "published" in res.stderr
