"""Delivering one notification over a channel: webhook, Slack or email (docs/notifications.md).

Each function either returns (delivered) or raises `DeliveryError` with one line that never
contains a secret of the channel (its URL, signing secret or SMTP credentials).

Webhook signature: `X-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>`, with
the Unix timestamp in `X-Signature-Timestamp`, so a receiver can check both who sent it and
that it is fresh (reject timestamps older than a few minutes: replay protection).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import ssl
import time
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

import httpx

from services.core.db.models import ChannelType
from services.notify import message
from services.notify.channels import ChannelConfig, redact

SIGNATURE_HEADER = "X-Signature"
TIMESTAMP_HEADER = "X-Signature-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
EVENT_HEADER = "X-Workflow-Runtime-Event"
USER_AGENT = "workflow-runtime-notify/1"
TIMEOUT_SECONDS = 10.0
MAX_ERROR_CHARS = 500


class DeliveryError(Exception):
    """The channel did not accept the notification (one line, secrets removed)."""


@dataclass(frozen=True)
class Notice:
    """One notification to deliver: what happened and the key that makes re-sends recognisable."""

    event: str
    details: dict[str, Any]
    idempotency_key: str
    created_at: datetime


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>` over `<timestamp>.<body>` (what a receiver recomputes to verify)."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> httpx.Response:
    with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
        return client.post(url, content=body, headers={"Content-Type": "application/json", **headers})


def _check(response: httpx.Response, what: str) -> None:
    if not 200 <= response.status_code < 300:
        snippet = " ".join(response.text.split())[:200]
        raise DeliveryError(f"{what} answered HTTP {response.status_code}" + (f": {snippet}" if snippet else ""))


def deliver_webhook(config: ChannelConfig, notice: Notice, console_url: str | None, timeout: float) -> None:
    body = json.dumps(
        message.payload(notice.event, notice.details, notice.idempotency_key, console_url, notice.created_at),
        separators=(",", ":"),
    ).encode()
    timestamp = str(int(time.time()))
    headers = {
        IDEMPOTENCY_HEADER: notice.idempotency_key,
        EVENT_HEADER: notice.event,
        TIMESTAMP_HEADER: timestamp,
        "User-Agent": USER_AGENT,
    }
    if config.get("secret"):
        headers[SIGNATURE_HEADER] = sign(config["secret"], timestamp, body)
    _check(_post(config["url"], body, headers, timeout), "the webhook")


def deliver_slack(config: ChannelConfig, notice: Notice, console_url: str | None, timeout: float) -> None:
    body = json.dumps(message.slack_body(notice.event, notice.details, console_url)).encode()
    headers = {IDEMPOTENCY_HEADER: notice.idempotency_key, "User-Agent": USER_AGENT}
    _check(_post(config["url"], body, headers, timeout), "Slack")


def _tls_context(config: ChannelConfig) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if config.get("ca_pem"):
        context.load_verify_locations(cadata=config["ca_pem"])
    return context


def build_email(config: ChannelConfig, notice: Notice, console_url: str | None) -> EmailMessage:
    mail = EmailMessage()
    mail["Subject"] = message.email_subject(notice.event, notice.details)
    mail["From"] = config["from"]
    mail["To"] = ", ".join(config["to"])
    mail["Date"] = formatdate(localtime=False)
    mail["Message-ID"] = make_msgid(domain="workflow-runtime")
    mail["X-Idempotency-Key"] = notice.idempotency_key
    mail.set_content(message.email_body(notice.event, notice.details, console_url, notice.idempotency_key))
    return mail


def deliver_email(config: ChannelConfig, notice: Notice, console_url: str | None, timeout: float) -> None:
    mail = build_email(config, notice, console_url)
    with smtplib.SMTP(config["host"], config["port"], timeout=timeout) as smtp:
        smtp.ehlo()
        if config.get("starttls", True):
            if not smtp.has_extn("starttls"):
                raise DeliveryError("the SMTP server does not offer STARTTLS")
            smtp.starttls(context=_tls_context(config))
            smtp.ehlo()
        if config.get("username"):
            smtp.login(config["username"], config["password"])
        smtp.send_message(mail)


DELIVERERS = {
    ChannelType.WEBHOOK.value: deliver_webhook,
    ChannelType.SLACK.value: deliver_slack,
    ChannelType.EMAIL.value: deliver_email,
}


def deliver(config: ChannelConfig, notice: Notice, console_url: str | None, timeout: float = TIMEOUT_SECONDS) -> None:
    """Deliver over the channel's transport; any failure becomes a one-line `DeliveryError`."""
    try:
        DELIVERERS[config["type"]](config, notice, console_url, timeout)
    except DeliveryError as error:
        raise DeliveryError(redact(str(error), config)[:MAX_ERROR_CHARS]) from None
    except (httpx.HTTPError, OSError, smtplib.SMTPException, ssl.SSLError, ValueError) as error:
        text = " ".join(f"{type(error).__name__}: {error}".split())
        raise DeliveryError(redact(text, config)[:MAX_ERROR_CHARS]) from None
