"""Console channel: text and JSON output to a given stream or stdout."""

from __future__ import annotations

import asyncio
import io
import json

import pytest

from channels.samples import hostile_alert, sample_alert
from worker.alerts import render_alert
from worker.channels.console import ConsoleChannel
from worker.errors import DeliveryError


def test_text_format_prints_subject_and_text() -> None:
    out = io.StringIO()
    env = render_alert(sample_alert())
    asyncio.run(ConsoleChannel("console", stream=out).send(env))
    printed = out.getvalue()
    assert printed.startswith(env.subject + "\n")
    assert env.text.rstrip() in printed
    assert printed.endswith("\n\n")


def test_json_format_prints_one_line_of_data() -> None:
    out = io.StringIO()
    channel = ConsoleChannel("console", format="json", stream=out)
    envs = [render_alert(sample_alert()), render_alert(hostile_alert())]

    async def send_all() -> None:
        for env in envs:
            await channel.send(env)

    asyncio.run(send_all())
    lines = out.getvalue().splitlines()
    assert [json.loads(line) for line in lines] == [e.data for e in envs]


def test_defaults_to_stdout_at_send_time(capsys: pytest.CaptureFixture[str]) -> None:
    channel = ConsoleChannel()
    env = render_alert(sample_alert())
    asyncio.run(channel.send(env))
    assert env.subject in capsys.readouterr().out


def test_hostile_text_reaches_the_terminal_without_escapes() -> None:
    out = io.StringIO()
    asyncio.run(ConsoleChannel("c", stream=out).send(render_alert(hostile_alert())))
    assert "\x1b" not in out.getvalue()
    assert "\r" not in out.getvalue()


def test_closed_stream_is_a_retryable_delivery_error() -> None:
    out = io.StringIO()
    out.close()
    env = render_alert(sample_alert())
    with pytest.raises(DeliveryError) as info:
        asyncio.run(ConsoleChannel("c", stream=out).send(env))
    assert info.value.retryable
    assert info.value.channel == "c" and info.value.envelope_id == env.id
