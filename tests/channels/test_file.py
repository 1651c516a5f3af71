"""File channel: JSON Lines appended atomically, parent directories created."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from channels.samples import hostile_alert, sample_alert
from worker.alerts import render_alert
from worker.channels.file import FileChannel
from worker.errors import DeliveryError
from worker.models import Envelope


def test_appends_one_json_line_per_envelope(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "alerts.jsonl"
    channel = FileChannel("file", path)
    envs = [render_alert(sample_alert()), render_alert(hostile_alert())]

    async def send_all() -> None:
        for env in envs:
            await channel.send(env)
        await channel.aclose()

    asyncio.run(send_all())
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [e.data for e in envs]
    # Non-ASCII stays readable, and a hostile title cannot break the line structure.
    assert len(lines) == 2


def test_keeps_existing_lines(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    path.write_text('{"earlier": true}\n', encoding="utf-8")
    asyncio.run(FileChannel("file", path).send(render_alert(sample_alert())))
    lines = path.read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[0]) == {"earlier": True}
    assert json.loads(lines[1])["type"] == "feedwatch.alert"


def test_concurrent_writers_never_interleave_lines(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    # Two channels on one file (as two replicas would be), big lines, many at once.
    writers = [FileChannel("a", path), FileChannel("b", path)]
    envs = [
        Envelope(id=f"al_{i}", subject="s", text="t", data={"i": i, "pad": "x" * 20000})
        for i in range(60)
    ]

    async def send_all() -> None:
        await asyncio.gather(*(writers[i % 2].send(env) for i, env in enumerate(envs)))

    asyncio.run(send_all())
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b""
    seen = sorted(json.loads(line)["i"] for line in lines[:-1])
    assert seen == list(range(60))


def test_unwritable_path_is_permanent(tmp_path: Path) -> None:
    target = tmp_path / "is-a-dir"
    target.mkdir()
    env = render_alert(sample_alert())
    with pytest.raises(DeliveryError) as info:
        asyncio.run(FileChannel("file", target).send(env))
    assert not info.value.retryable
    assert str(target) in str(info.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_permission_denied_is_permanent(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(DeliveryError) as info:
        asyncio.run(
            FileChannel("file", locked / "a.jsonl").send(render_alert(sample_alert()))
        )
    assert not info.value.retryable
