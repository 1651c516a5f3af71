"""The /digest page in headless Chromium: the DOM a person's browser builds, and a
phone-width screenshot (copied to docs/digest.png with FEEDWATCH_UPDATE_SCREENSHOT=1).

Skips without Chromium, except under CI (``apt-get install -y chromium``).
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from worker.store.sql import SqlStore

from .conftest import TOKEN, Api, running_api
from .data import (
    SUMMIT_EVIDENCE,
    SUMMIT_TITLE,
    SUMMIT_TITLE_2,
    VISIT_EVIDENCE,
    VISIT_TITLE,
    add_hostile_story,
)

DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "digest.png"
BROWSER_TIMEOUT = 25.0


@pytest.fixture(scope="module")
def chromium() -> str:
    """The Chromium executable (skip without one; fail under CI)."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI"):
        pytest.fail("Chromium is required under CI: apt-get install -y chromium")
    pytest.skip("Chromium is not installed (apt-get install -y chromium)")


def run_chromium(chromium: str, profile: Path, args: Sequence[str]) -> str:
    """Run headless Chromium with a throwaway profile and no background traffic."""
    done = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=BROWSER_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_digest_page_dom(chromium: str, tmp_path: Path, sqlite_url: str) -> None:
    with running_api(sqlite_url) as served:
        assert isinstance(served.fw.store, SqlStore)
        add_hostile_story(served.fw.store)
        dom = run_chromium(
            chromium,
            tmp_path / "profile",
            ["--dump-dom", f"{served.url}/digest?token={TOKEN}"],
        )
    assert "<h1" in dom and "feedwatch digest" in dom
    for text in (SUMMIT_TITLE, VISIT_TITLE, SUMMIT_TITLE_2):
        assert text in dom, text
    for outlet in ("<strong>Kyodo News</strong>", "<strong>Yonhap</strong>"):
        assert outlet in dom
    assert "<mark " in dom
    for evidence in (SUMMIT_EVIDENCE, VISIT_EVIDENCE):
        assert f">{evidence}</mark>" in dom, evidence
    assert 'href="https://kyodo.example/summit"' in dom
    # The hostile outlet's markup is text, not elements, and its link is dropped.
    assert "&lt;script&gt;document.title" in dom
    assert "<script" not in dom
    assert "<b>meet</b>" not in dom and "&lt;b&gt;meet&lt;/b&gt;" in dom
    assert "javascript:" not in dom
    assert "<title>pwned</title>" not in dom


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_digest_page_screenshot_at_phone_width(
    chromium: str, tmp_path: Path, api: Api
) -> None:
    shot = tmp_path / "digest.png"
    run_chromium(
        chromium,
        tmp_path / "profile",
        [
            f"--screenshot={shot}",
            "--window-size=420,900",
            f"{api.url}/digest?token={TOKEN}",
        ],
    )
    assert _png_size(shot) == (420, 900)
    assert shot.stat().st_size > 10_000, "an almost empty picture"
    if os.environ.get("FEEDWATCH_UPDATE_SCREENSHOT"):
        shutil.copyfile(shot, DOCS_SCREENSHOT)
