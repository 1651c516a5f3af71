"""Hostile OPML: deep nesting and non-feed xmlUrl values are clear SourceFileErrors."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.sources import SourceFileError, read_feed_list


def test_deeply_nested_opml_is_read_without_recursion(tmp_path: Path) -> None:
    depth = 5000
    p = tmp_path / "deep.opml"
    p.write_text(
        "<opml><body>"
        + '<outline text="f">' * depth
        + '<outline xmlUrl="https://news.example/feed.xml"/>'
        + "</outline>" * depth
        + "</body></opml>"
    )
    [feed] = read_feed_list(p, interval=60)
    assert feed.url == "https://news.example/feed.xml"
    assert feed.tags == ("f",)


@pytest.mark.parametrize(
    "url", ["javascript:alert(1)", "ftp://x.example/f", "https://"]
)
def test_opml_outline_with_a_non_feed_url_is_refused(tmp_path: Path, url: str) -> None:
    p = tmp_path / "subs.opml"
    p.write_text(
        '<opml version="2.0"><body>'
        '<outline text="ok" xmlUrl="https://news.example/a.xml"/>'
        f'<outline text="Bad one" xmlUrl="{url}"/>'
        "</body></opml>"
    )
    with pytest.raises(SourceFileError) as info:
        read_feed_list(p, interval=60)
    msg = str(info.value)
    assert str(p) in msg and "Bad one" in msg and "xmlUrl" in msg
