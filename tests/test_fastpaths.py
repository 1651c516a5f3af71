"""The poll-speed shortcuts give what the general code gives.

Differential checks, seeded and bounded: html_to_text's plain-markup walk against
HTMLParser, canonical_url's plain-URL path against the urllib one, the migration
check against Alembic, and the lazily registered CLI commands.
"""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

import worker.parse as wp
from worker.store import open_store

_HTML_PIECES = [
    "<p>",
    "</p>",
    "<P>",
    "<br/>",
    "<br />",
    "<br>",
    '<img src="/i/1.jpg"/>',
    "<img src='x'>",
    "<a href=x/>",
    '<a href="a>b">',
    "<script>",
    "</script>",
    '<SCRIPT type="text/javascript">',
    "</ script >",
    "<style>",
    "</style>",
    "<script/>",
    "<div class=x>",
    "</div >",
    "<!-- c -->",
    "<?pi?>",
    "< p>",
    "<",
    ">",
    "&amp;",
    "&nbsp;",
    "&#8217;",
    "&bogus;",
    "&",
    "text ",
    "\n",
    "\xa0",
    "中文",
    "<p\xa0class=x>",
    "<o:p>",
    "<h1>",
    "<li>",
    "a<b",
    "<a b c=d e='f' g=\"h\">",
    "</>",
    "<img\nsrc=x>",
    "<br\v>",
]


def _reference_text(markup: str) -> str:
    """html_to_text as it was before the plain-markup walk."""
    if "<" not in markup:
        return wp.normalize_text(wp.html.unescape(markup), 80)
    parser = wp._TextExtractor()
    try:
        parser.feed(markup)
        parser.close()
        text = "".join(parser.parts)
    except Exception:
        text = wp.html.unescape(wp._TAG.sub(" ", wp._SCRIPT.sub(" ", markup)))
    return wp.normalize_text(text, 80)


def test_plain_markup_walk_matches_htmlparser() -> None:
    rng = random.Random(7)
    walked = 0
    for _ in range(20_000):
        markup = "".join(rng.choice(_HTML_PIECES) for _ in range(rng.randint(1, 12)))
        walked += wp._plain_markup_text(markup) is not None
        assert wp.html_to_text(markup, 80) == _reference_text(markup), markup
    assert walked > 1_000  # the shortcut itself was exercised


def test_plain_markup_walk_on_feed_like_markup() -> None:
    markup = (
        '<p>Talks continue.&nbsp;&mdash; R&amp;D</p><img src="/i/1.jpg"/>'
        "<script>track('<p>')</script><STYLE>p{}</STYLE>done"
    )
    assert wp._plain_markup_text(markup) is not None
    assert wp.html_to_text(markup) == "Talks continue. — R&D done"
    assert wp.html_to_text(markup) == _reference_text(markup)


def _reference_url(url: str, base: str | None) -> str:
    out = wp._canonical_once(url, base)
    for _ in range(4):
        again = wp._canonical_once(out, None)
        if again == out:
            break
        out = again
    return out


def test_plain_url_path_matches_urllib() -> None:
    rng = random.Random(11)
    chars = "ABCxyz019-._~%!$&'()*+,;=:@/?#"
    odd = ' \t[]é<>"{}|\\^`'
    bases = [None, "http://feed.example/rss", "https://F.Example:443/a?x=1", "ftp://x/"]
    fast = 0
    for _ in range(20_000):
        tail = "".join(
            rng.choice(chars if rng.random() < 0.97 else odd)
            for _ in range(rng.randint(0, 12))
        )
        url = (
            rng.choice(["http", "https", "HTTP"])
            + "://"
            + rng.choice(["a.com", "Ex.COM", "a.com.", "x"])
            + rng.choice(["", ":80", ":443", ":", ":0080", ":8080"])
            + rng.choice(["", "/", "//"])
            + tail
        )
        if rng.random() < 0.5:
            url += "?" + "&".join(
                rng.choice(["utm_source=x", "a=1", "", "fbclid", "%75tm_a=1", "b"])
                for _ in range(rng.randint(0, 3))
            )
        base = rng.choice(bases)
        fast += wp._canonical_plain(url, base) is not None
        wp._CANONICAL.clear()
        assert wp.canonical_url(url, base) == _reference_url(url, base), (url, base)
    assert fast > 2_000


def test_schema_check_skips_alembic_only_when_current(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 'fw.db'}") as store:
        assert not store.schema_is_current()  # no alembic_version table yet
        store.migrate()
        assert store.schema_is_current()
        store.migrate()  # current: returns without Alembic, changes nothing
        with store.engine.begin() as conn:
            (head,) = conn.exec_driver_sql("SELECT version_num FROM alembic_version")
            conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0002'")
        assert not store.schema_is_current()
        with store.engine.begin() as conn:
            conn.exec_driver_sql(
                "UPDATE alembic_version SET version_num = ?", (head[0],)
            )
        assert store.schema_is_current()


@pytest.mark.parametrize("args", [["--help"], ["rules", "--help"], ["eval", "--help"]])
def test_plugin_commands_load_on_demand(args: list[str]) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "worker", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    if args == ["--help"]:
        assert "rules" in out
        assert "eval" in out
    else:
        assert "Usage:" in out
