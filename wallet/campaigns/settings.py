"""How messages are sent; api/ builds this from the environment (LOYALTY_SMTP_URL, LOYALTY_MAIL_FROM,
LOYALTY_SMS_GATEWAY_URL, LOYALTY_PUSH_GATEWAY_URL, LOYALTY_GATEWAY_SECRET), tests build their own."""
from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit


@dataclass(frozen=True)
class MessageSettings:
    smtp_url: str | None = None  # smtp://[user:password@]host[:port], smtp+starttls://..., smtps://...
    mail_from: str | None = None  # default: club@<host of the public URL>
    sms_gateway_url: str | None = None
    push_gateway_url: str | None = None
    gateway_secret: str | None = None  # whsec_<base64>, or any other string (used as the key's bytes)
    timeout: float = 10.0  # seconds an SMTP server or a gateway has to answer
    lease: timedelta = timedelta(seconds=60)  # a claimed message is another worker's to take after this
    batch: int = 200  # messages claimed at once (one SMTP connection sends them)
    max_attempts: int = 12  # a message retried this often fails (the backoff makes that about 8 hours)
    first_delay: float = 5.0  # seconds before the first retry; doubled each attempt
    max_delay: float = 3600.0

    def __post_init__(self) -> None:
        if self.lease.total_seconds() < 2 * self.timeout:
            raise ValueError("the message lease must be at least twice the SMTP/gateway timeout")

    def sender(self, public_url: str) -> str:
        return self.mail_from or f"club@{urlsplit(public_url).hostname or 'localhost'}"

    def signing_secret(self) -> str | None:
        """The gateway secret in the Standard Webhooks form (``whsec_`` + base64) that ``webhooks.sign`` takes."""
        if not self.gateway_secret:
            return None
        if self.gateway_secret.startswith("whsec_"):
            return self.gateway_secret
        return "whsec_" + base64.b64encode(self.gateway_secret.encode()).decode()

    def url_for(self, channel: str) -> str | None:
        return {"email": self.smtp_url, "sms": self.sms_gateway_url, "push": self.push_gateway_url}.get(channel)
