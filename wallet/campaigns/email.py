"""Email over SMTP: one connection for a batch, RFC 8058 one-click unsubscribe headers, a stable Message-ID per
campaign and member (a message sent again after a lost acceptance carries the same one, so the relay or the
mailbox can drop the copy). A 5xx answer fails the message for good; a 4xx, a timeout or a dropped connection is
retried later. Tracking (wallet.campaigns.tracking) changes neither header: only the body's own links and the
open pixel go through the club."""
from __future__ import annotations

import html
import smtplib
import ssl
import time
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import formatdate
from urllib.parse import unquote, urlsplit

from .sending import Job, Outcome

Record = Callable[[Job, Outcome], None]


def build(job: Job, *, mail_from: str, host: str) -> EmailMessage:
    """The message as it goes to the relay."""
    message = EmailMessage()
    message["From"] = mail_from
    message["To"] = job.to
    message["Subject"] = job.subject or ""
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = f"<{job.key}@{host}>"
    message["List-Unsubscribe"] = f"<{job.unsubscribe_url}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(f"{job.text}\n\n--\nUnsubscribe: {job.unsubscribe_url}\n")
    link = html.escape(job.unsubscribe_url, quote=True)
    # A tracked member's email (the profiling consent) loads the open pixel; the unsubscribe link is never tracked.
    pixel = (f'<img src="{html.escape(job.open_url, quote=True)}" width="1" height="1" alt="" '
             'style="display:block;border:0">' if job.open_url else "")
    # job.html is the template rendered with its text and every value escaped, its links anchors
    # (templates.render_html)
    message.add_alternative(f'<!doctype html><html><body><div>{job.html}</div><p style="font-size:small">'
                            f'<a href="{link}">Unsubscribe</a></p>{pixel}</body></html>\n', subtype="html")
    return message


def classify(code: int | None, error: str) -> Outcome:
    if code is not None and 500 <= code < 600:
        return Outcome("failed", error, code)
    return Outcome("retry", error, code)


class Relay:
    """An SMTP connection to LOYALTY_SMTP_URL, opened when first needed and kept for the batch."""

    def __init__(self, url: str, timeout: float):
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps", "smtp+starttls") or not parts.hostname:
            raise ValueError("LOYALTY_SMTP_URL is smtp://host[:port], smtp+starttls://... or smtps://...")
        self.scheme, self.host = parts.scheme, parts.hostname
        self.port = parts.port or (465 if parts.scheme == "smtps" else 25)
        self.user = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.timeout = timeout
        self.connection: smtplib.SMTP | None = None

    def open(self) -> smtplib.SMTP:
        if self.connection is None:
            if self.scheme == "smtps":
                connection: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout,
                                                            context=ssl.create_default_context())
            else:
                connection = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
                if self.scheme == "smtp+starttls":
                    connection.starttls(context=ssl.create_default_context())
            if self.user:
                connection.login(self.user, self.password or "")
            self.connection = connection
        return self.connection

    def drop(self) -> None:
        if self.connection is not None:
            try:
                self.connection.close()
            finally:
                self.connection = None

    def close(self) -> None:
        if self.connection is not None:
            try:
                self.connection.quit()
            except (smtplib.SMTPException, OSError):
                pass
            self.drop()

    def send(self, job: Job, *, mail_from: str, host: str) -> Outcome:
        """One message on the open connection (opened if need be); never raises for what the server does."""
        try:
            connection = self.open()
        except (smtplib.SMTPException, OSError) as error:
            self.drop()
            code = getattr(error, "smtp_code", None)
            return classify(code if isinstance(code, int) else None, f"connect: {type(error).__name__}: {error}"[:240])
        try:
            message = build(job, mail_from=mail_from, host=host)
        except (ValueError, TypeError) as error:  # a header that can't be written (stored data from before checks)
            return Outcome("failed", f"unwritable: {error}"[:240])
        try:
            refused = connection.send_message(message, from_addr=mail_from, to_addrs=[job.to])
        except UnicodeError as error:  # an address the relay can't take (non-ASCII without SMTPUTF8)
            return Outcome("failed", f"unsendable address: {error}"[:240])
        except smtplib.SMTPRecipientsRefused as error:
            code, text = next(iter(error.recipients.values()), (None, b""))
            return classify(code, f"RCPT {code}: {_text(text)}")
        except smtplib.SMTPResponseException as error:
            if error.smtp_code == 421:  # the server is closing the connection
                self.drop()
            return classify(error.smtp_code, f"{error.smtp_code}: {_text(error.smtp_error)}")
        except (smtplib.SMTPException, OSError) as error:
            # A timeout, a dropped connection mid-message: the server may or may not have the message; sending it
            # again with the same Message-ID lets it drop the copy. This connection is no longer usable.
            self.drop()
            return Outcome("retry", f"{type(error).__name__}: {error}"[:240])
        if refused:
            code, text = next(iter(refused.values()))
            return classify(code, f"RCPT {code}: {_text(text)}")
        return Outcome("sent")


def _text(value: bytes | str) -> str:
    return (value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value))[:200]


def send_batch(relay: Relay, jobs: list[Job], *, mail_from: str, host: str, record: Record,
               stop: Callable[[], bool], deadline: float) -> list[Job]:
    """Send jobs one after another on one connection, recording each outcome as it comes; the jobs not sent
    (stopping, or too close to the end of the lease) are returned, to be given back."""
    for i, job in enumerate(jobs):
        if stop() or time.monotonic() > deadline:
            return jobs[i:]
        outcome = relay.send(job, mail_from=mail_from, host=host)
        record(job, outcome)
        if outcome.error and outcome.error.startswith("connect:"):
            # The relay can't be reached: the rest wait for their retry rather than each waiting for a timeout.
            for rest in jobs[i + 1:]:
                record(rest, Outcome("retry", outcome.error))
            return []
    return []
