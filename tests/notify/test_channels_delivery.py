"""Email over STARTTLS to a real SMTP server (aiosmtpd) and Slack's incoming-webhook format.

The SMTP server runs on 127.0.0.1 with a self-signed certificate made here with `cryptography`,
requires STARTTLS before anything else and requires authentication (only over TLS); the channel
trusts the certificate through `ca_pem`, so the client really verifies the server.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from services.core.db.models import Notification
from services.core.db.session import session_factory
from services.notify.outbox import enqueue

SMTP_USER, SMTP_PASSWORD = "notifier", "smtp-pa55-Wordy"


def self_signed(tmp: Path) -> tuple[str, Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_text(pem)
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ))
    return pem, cert_path, key_path


@dataclass
class Mailbox:
    messages: list[Message] = field(default_factory=list)
    envelopes: list[tuple[str, list[str], bool]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        self.messages.append(message_from_bytes(envelope.content))
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos), session.ssl is not None))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp_server(tmp_path: Path) -> Iterator[tuple[int, str, Mailbox]]:
    pem, cert_path, key_path = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    mailbox = Mailbox()

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (SMTP_USER.encode(), SMTP_PASSWORD.encode())
        if ok:
            mailbox.logins.append(data.login.decode())
        return AuthResult(success=ok)

    controller = Controller(
        mailbox, hostname="127.0.0.1", port=free_port(), tls_context=context, require_starttls=True,
        authenticator=authenticate, auth_required=True, auth_require_tls=True,
    )
    controller.start()
    try:
        yield controller.port, pem, mailbox
    finally:
        controller.stop()


def queue_failed(db: str, channel: str) -> uuid.UUID:
    execution_id = uuid.uuid4()
    details = {
        "workflow": "nightly-report", "schedule": "nightly", "timezone": "Europe/Berlin",
        "fire_time": dt.datetime(2026, 11, 29, 1, 30, tzinfo=dt.UTC), "execution_id": execution_id,
        "status": "failed", "error": "step 'fetch' failed: HTTP 503", "attempt": 3, "max_attempts": 3,
    }
    with session_factory(db)() as session, session.begin():
        enqueue(session, "failed", str(execution_id), [channel], details, execution_id=execution_id)
    return execution_id


def test_email_over_starttls_with_credentials_reaches_the_smtp_server(db, smtp_server, add_channel, make_sender) -> None:
    port, pem, mailbox = smtp_server
    add_channel("ops-mail", {
        "type": "email", "host": "127.0.0.1", "port": port, "username": SMTP_USER, "password": SMTP_PASSWORD,
        "from": "runtime@example.test", "to": ["oncall@example.test", "lead@example.test"], "ca_pem": pem,
    })
    execution_id = queue_failed(db, "ops-mail")
    assert make_sender().run_once().sent == 1
    [mail] = mailbox.messages
    assert mailbox.envelopes == [("runtime@example.test", ["oncall@example.test", "lead@example.test"], True)]
    assert mailbox.logins == [SMTP_USER]
    assert mail["Subject"] == "[workflow-runtime] nightly-report: run failed (schedule nightly)"
    assert mail["X-Idempotency-Key"] == f"failed:{execution_id}:ops-mail"
    body = mail.get_payload(decode=True).decode()
    assert "fire time 2026-11-29 02:30 CET" in body and "attempt 3 of 3" in body and "HTTP 503" in body
    assert f"https://console.example.test/executions/{execution_id}" in body


def test_email_refuses_a_server_it_cannot_verify(db, smtp_server, add_channel, make_sender) -> None:
    port, _, mailbox = smtp_server
    add_channel("ops-mail", {
        "type": "email", "host": "127.0.0.1", "port": port, "username": SMTP_USER, "password": SMTP_PASSWORD,
        "from": "runtime@example.test", "to": "oncall@example.test",
    })
    queue_failed(db, "ops-mail")
    assert make_sender().run_once().retrying == 1
    with session_factory(db)() as session:
        row = session.scalars(select(Notification)).one()
    assert "CERTIFICATE_VERIFY_FAILED" in row.last_error
    assert SMTP_PASSWORD not in row.last_error and mailbox.messages == []


def test_slack_receives_a_valid_incoming_webhook_payload(db, receiver, add_channel, make_sender) -> None:
    add_channel("team-slack", {"type": "slack", "url": receiver.url})
    execution_id = queue_failed(db, "team-slack")
    assert make_sender().run_once().sent == 1
    [request] = receiver.requests
    assert request.headers["content-type"] == "application/json"
    payload = request.json()
    assert set(payload) == {"text", "blocks"}
    assert payload["text"].startswith("[failed] nightly-report: run failed · schedule nightly")
    [block] = payload["blocks"]
    assert block["type"] == "section" and block["text"]["type"] == "mrkdwn"
    link = f"<https://console.example.test/executions/{execution_id}|Open in the console>"
    assert block["text"]["text"].endswith(link)


def test_slack_text_never_turns_an_error_into_a_link() -> None:
    from services.notify.message import slack_body

    details = {"workflow": "w", "status": "failed", "error": "see <https://evil.example|your invoice> & pay"}
    body = slack_body("failed", details, None)
    for text in (body["text"], body["blocks"][0]["text"]["text"]):
        assert "<https://evil.example|" not in text and "&lt;https://evil.example|your invoice&gt; &amp; pay" in text
