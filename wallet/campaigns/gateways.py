"""SMS and push through HTTP gateways: JSON signed as Standard Webhooks signs (``webhook-id`` = the message's key,
also sent as ``Idempotency-Key``, so a gateway drops a copy sent again after a lost answer)."""
from __future__ import annotations

import json
import time

from ..webhooks import http, sign
from .sending import Job, Outcome
from .settings import MessageSettings

USER_AGENT = "loyalty-messages/1"


def body_of(job: Job) -> bytes:
    payload: dict = {"id": job.key, "type": f"message.{job.channel}", "campaign_id": job.campaign_id}
    if job.channel == "sms":
        payload |= {"to": job.to, "text": job.text}
    else:
        payload |= {"to": job.to, "title": job.subject, "body": job.text}
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def send(job: Job, settings: MessageSettings) -> Outcome:
    """POST one message to its channel's gateway; 2xx is sent, 408, 425, 429, 5xx and no answer are retried, any
    other 4xx fails it for good."""
    url, secret = settings.url_for(job.channel), settings.signing_secret()
    if not url or not secret:
        return Outcome("retry", f"no gateway configured for {job.channel}")
    body = body_of(job)
    timestamp = int(time.time())
    headers = {"webhook-id": job.key, "webhook-timestamp": str(timestamp),
               "webhook-signature": sign(job.key, timestamp, body, [secret]), "Idempotency-Key": job.key,
               "User-Agent": USER_AGENT}
    # The gateways are the operator's own configuration, not a marketer's input: no SSRF guard on them.
    answer = http.post(url, body, headers, timeout=settings.timeout, max_body=65536, allow_private=True)
    code = answer.status
    if code is None:
        return Outcome("retry", answer.error)
    if 200 <= code < 300:
        return Outcome("sent", None, code)
    if code in (408, 425, 429) or code >= 500:
        return Outcome("retry", f"HTTP {code}", code)
    return Outcome("failed", f"HTTP {code}", code)
