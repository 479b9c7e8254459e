"""How webhooks are delivered; api/ builds this from the environment, tests build their own."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class Settings:
    allow_private: bool = False  # LOYALTY_WEBHOOK_ALLOW_PRIVATE: loopback and private targets (development, tests)
    timeout: float = 10.0  # seconds a receiver has to answer
    lease: timedelta = timedelta(seconds=60)  # a claimed delivery is another worker's to take after this
    retry_for: timedelta = timedelta(hours=24)  # failing deliveries are retried at least this long, then failed
    max_body: int = 65536  # bytes of a receiver's answer read at most
    batch: int = 64  # deliveries claimed at once
    concurrency: int = 8  # deliveries in flight at once in one worker
    first_delay: float = 5.0  # seconds before the first retry; doubled each attempt
    max_delay: float = 3600.0  # the longest wait between two attempts

    def __post_init__(self) -> None:
        # A lease shorter than a delivery could take would let a second worker send it while the first still is.
        if self.lease.total_seconds() < 2 * self.timeout:
            raise ValueError("the delivery lease must be at least twice the receiver's timeout")
