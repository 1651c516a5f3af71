"""Email channel against a real aiosmtpd server on loopback: the message's shape,
threading headers, escaping, and how SMTP failures are classified."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from receivers import (
    SmtpReceiver,
    client_tls_context,
    closed_port,
    make_self_signed_cert,
    server_tls_context,
)

from channels.samples import hostile_alert, sample_alert
from worker.alerts import render_alert
from worker.channels.email import EmailChannel, message_id
from worker.errors import DeliveryError
from worker.models import Envelope

FIXED = datetime(2025, 1, 3, 12, 0, tzinfo=UTC)


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    with SmtpReceiver() as server:
        yield server


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    made = make_self_signed_cert(tmp_path_factory.mktemp("tls"))
    if made is None:
        pytest.skip("the openssl command is not installed; cannot make a certificate")
    return made


def channel_for(server: SmtpReceiver, **kwargs: Any) -> EmailChannel:
    options: dict[str, Any] = {
        "to": ("ops@example.org", "desk@example.org"),
        "sender": "feedwatch@example.org",
        "host": server.host,
        "port": server.port,
        "timeout": 5.0,
        "local_hostname": "feedwatch.test",
        "clock": lambda: FIXED,
    }
    options.update(kwargs)
    return EmailChannel("mail", **options)


def send(channel: EmailChannel, envelope: Envelope) -> None:
    asyncio.run(channel.send(envelope))


def send_error(channel: EmailChannel, envelope: Envelope) -> DeliveryError:
    with pytest.raises(DeliveryError) as info:
        send(channel, envelope)
    return info.value


def test_sends_multipart_text_and_html_with_threading_headers(
    smtp: SmtpReceiver,
) -> None:
    env = render_alert(sample_alert())
    send(channel_for(smtp), env)
    [mail] = smtp.wait_for(1)
    assert mail.mail_from == "feedwatch@example.org"
    assert mail.rcpt_tos == ("ops@example.org", "desk@example.org")
    msg = mail.message
    assert msg["Subject"] == env.subject
    assert msg["From"] == "feedwatch@example.org"
    assert msg["To"] == "ops@example.org, desk@example.org"
    assert msg["Message-ID"] == f"<{env.id}@feedwatch>"
    assert msg["In-Reply-To"] == msg["References"] == "<st_xi_lee@feedwatch>"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["Date"] == "Fri, 03 Jan 2025 12:00:00 +0000"
    assert msg.get_content_type() == "multipart/alternative"
    parts = [p.get_content_type() for p in msg.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text is not None and html is not None
    # Lines travel as CRLF on the wire.
    assert text.get_content().replace("\r\n", "\n") == env.text
    assert env.html is not None
    assert html.get_content().replace("\r\n", "\n").rstrip("\n") == env.html


def test_a_status_change_replies_to_the_alert_it_updates(smtp: SmtpReceiver) -> None:
    first = sample_alert()
    update = sample_alert(id="al_update", supersedes=first.id)
    channel = channel_for(smtp)
    send(channel, render_alert(first))
    send(channel, render_alert(update))
    one, two = (m.message for m in smtp.wait_for(2))
    root = "<st_xi_lee@feedwatch>"
    assert one["References"] == root
    assert two["Message-ID"] == "<al_update@feedwatch>"
    assert two["In-Reply-To"] == one["Message-ID"]
    assert two["References"].split() == [root, one["Message-ID"]]


def test_text_only_envelope_is_a_single_part(smtp: SmtpReceiver) -> None:
    env = Envelope(
        id="dg_2025-01-03", kind="digest", subject="Digest", text="Nothing new.\n"
    )
    send(channel_for(smtp), env)
    [mail] = smtp.wait_for(1)
    assert mail.message.get_content_type() == "text/plain"
    assert mail.message["In-Reply-To"] is None
    assert mail.message["X-Feedwatch-Kind"] == "digest"


def test_hostile_alert_cannot_inject_headers_or_markup(smtp: SmtpReceiver) -> None:
    env = render_alert(hostile_alert())
    send(channel_for(smtp), env)
    [mail] = smtp.wait_for(1)
    # Exactly the configured recipients: the "Bcc: evil@x" in the title did nothing.
    assert mail.rcpt_tos == ("ops@example.org", "desk@example.org")
    msg = mail.message
    assert msg["Bcc"] is None and msg["X-Injected"] is None
    head = mail.data.split(b"\r\n\r\n", 1)[0]
    assert not any(
        line.startswith((b"Bcc:", b"X-Injected:")) for line in head.split(b"\r\n")
    )
    subject = msg["Subject"]
    assert "\r" not in subject and "\n" not in subject
    assert "<script>alert(1)</script> Bcc: evil@x" in subject
    html = msg.get_body(("html",))
    assert html is not None
    body = html.get_content()
    assert "<script" not in body and "<img" not in body and "javascript:" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body


def test_subject_with_line_breaks_is_flattened_even_if_rendering_missed_it(
    smtp: SmtpReceiver,
) -> None:
    # Envelope.subject promises one line; the channel does not rely on the promise.
    env = Envelope(id="al_x", subject="Hi\r\nBcc: evil@x\r\n\r\nbody", text="t")
    send(channel_for(smtp), env)
    [mail] = smtp.wait_for(1)
    assert mail.message["Subject"] == "Hi Bcc: evil@x body"
    assert mail.message["Bcc"] is None


def test_non_ascii_subject_and_body(smtp: SmtpReceiver) -> None:
    env = Envelope(
        id="al_cjk", subject="[feedwatch] 習近平 李在明 首脳会談", text="日中韓\n"
    )
    send(channel_for(smtp), env)
    [mail] = smtp.wait_for(1)
    assert mail.message["Subject"] == env.subject
    assert mail.message.get_content().replace("\r\n", "\n") == "日中韓\n"


def test_message_id_of_unusual_keys_is_still_valid() -> None:
    assert message_id("al_0123") == "<al_0123@feedwatch>"
    odd = message_id("digest 2025-01-03 <x>@y")
    assert odd.startswith("<h") and odd.endswith("@feedwatch>") and " " not in odd
    assert odd == message_id("digest 2025-01-03 <x>@y")


def test_server_down_is_retryable() -> None:
    channel = EmailChannel(
        "mail", to=("a@example.org",), host="127.0.0.1", port=closed_port(), timeout=2
    )
    err = send_error(channel, render_alert(sample_alert()))
    assert err.retryable
    assert "smtp://127.0.0.1:" in str(err)


def test_outage_then_recovery_on_the_same_port(smtp: SmtpReceiver) -> None:
    channel = channel_for(smtp)
    env = render_alert(sample_alert())
    smtp.stop()
    assert send_error(channel, env).retryable
    smtp.start()
    send(channel, env)
    assert len(smtp.wait_for(1)) == 1


def test_4xx_at_data_is_retryable_then_succeeds(smtp: SmtpReceiver) -> None:
    smtp.fail_next(1, "451 4.3.0 Mailbox busy, try later")
    channel = channel_for(smtp)
    env = render_alert(sample_alert())
    err = send_error(channel, env)
    assert err.retryable and "451" in str(err)
    send(channel, env)
    assert len(smtp.wait_for(1)) == 1


def test_550_at_data_is_permanent(smtp: SmtpReceiver) -> None:
    smtp.fail_next(1, "550 5.7.1 Message rejected as spam")
    err = send_error(channel_for(smtp), render_alert(sample_alert()))
    assert not err.retryable
    assert "550" in str(err) and "rejected as spam" in str(err)
    assert smtp.messages == []


def test_every_recipient_refused(smtp: SmtpReceiver) -> None:
    smtp.fail_next(2, "550 5.1.1 No such user", at="RCPT")
    err = send_error(channel_for(smtp), render_alert(sample_alert()))
    assert not err.retryable and "No such user" in str(err)
    smtp.fail_next(1, "550 5.1.1 No such user", at="RCPT")
    smtp.fail_next(1, "452 4.2.2 Mailbox full", at="RCPT")
    assert send_error(channel_for(smtp), render_alert(sample_alert())).retryable


def test_some_recipients_refused_counts_as_delivered(
    smtp: SmtpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    smtp.fail_next(1, "550 5.1.1 No such user", at="RCPT")
    send(channel_for(smtp), render_alert(sample_alert()))
    [mail] = smtp.wait_for(1)
    assert mail.rcpt_tos == ("desk@example.org",)
    assert "refused by ops@example.org" in caplog.text


def test_sender_refused_4xx_is_retryable(smtp: SmtpReceiver) -> None:
    smtp.fail_next(1, "421 4.7.0 Too many connections", at="MAIL")
    assert send_error(channel_for(smtp), render_alert(sample_alert())).retryable


def test_implicit_tls(cert: tuple[Path, Path]) -> None:
    with SmtpReceiver(tls_context=server_tls_context(*cert)) as server:
        channel = channel_for(
            server, security="tls", tls_context=client_tls_context(cert[0])
        )
        send(channel, render_alert(sample_alert()))
        [mail] = server.wait_for(1)
        assert mail.tls


def test_starttls_with_login(cert: tuple[Path, Path]) -> None:
    with SmtpReceiver(
        starttls_context=server_tls_context(*cert),
        require_starttls=True,
        credentials={"ops": "s3cret"},
    ) as server:
        channel = channel_for(
            server,
            security="starttls",
            tls_context=client_tls_context(cert[0]),
            username="ops",
            password="s3cret",
        )
        send(channel, render_alert(sample_alert()))
        [mail] = server.wait_for(1)
        assert mail.tls and mail.login == "ops"
        bad = channel_for(
            server,
            security="starttls",
            tls_context=client_tls_context(cert[0]),
            username="ops",
            password="wrong",
        )
        err = send_error(bad, render_alert(sample_alert()))
        assert not err.retryable and "535" in str(err)


def test_untrusted_certificate_is_an_error(cert: tuple[Path, Path]) -> None:
    with SmtpReceiver(tls_context=server_tls_context(*cert)) as server:
        # The default context trusts the system CAs, not our self-signed certificate.
        err = send_error(
            channel_for(server, security="tls"), render_alert(sample_alert())
        )
        assert "certificate" in str(err).lower()
        assert server.messages == []


def test_starttls_required_but_not_offered(smtp: SmtpReceiver) -> None:
    err = send_error(
        channel_for(smtp, security="starttls"), render_alert(sample_alert())
    )
    assert not err.retryable
    assert "STARTTLS" in str(err)


def test_login_without_auth_offered_is_permanent(smtp: SmtpReceiver) -> None:
    channel = channel_for(smtp, username="ops", password="pw")
    err = send_error(channel, render_alert(sample_alert()))
    assert not err.retryable
    assert "AUTH (login) is not offered without TLS" in str(err)
    assert smtp.messages == []


def test_display_names_in_headers_bare_addresses_in_the_envelope(
    smtp: SmtpReceiver,
) -> None:
    channel = channel_for(
        smtp,
        sender="Feedwatch <fw@example.org>",
        to=('"Desk, Asia" <desk@example.org>',),
    )
    send(channel, render_alert(sample_alert()))
    [mail] = smtp.wait_for(1)
    assert mail.mail_from == "fw@example.org"
    assert mail.rcpt_tos == ("desk@example.org",)
    assert mail.message["From"] == "Feedwatch <fw@example.org>"
    assert mail.message["To"] == '"Desk, Asia" <desk@example.org>'
