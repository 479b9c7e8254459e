"""``loyalty worker``: fans events out to webhook deliveries, delivers what is due, publishes the broker stream and
runs scheduled jobs, until stopped. Several workers share the work through leases held in the database."""
from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from .. import campaigns, webhooks
from ..campaigns import email, gateways
from ..db import new_id
from ..events import advance_cursor, claim_cursor, envelope, read
from ..program import Program
from . import jobs as scheduled
from .stream import Publisher, StreamSettings

log = logging.getLogger("loyalty.worker")

STREAM_CURSOR = "nats"  # the event cursor the broker stream follows


@dataclass
class Stats:
    """What a worker did (the CLI prints it; tests read it)."""

    fanned_out: int = 0
    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    published: int = 0
    jobs: dict[str, int] = field(default_factory=dict)
    messages: Counter[str] = field(default_factory=Counter)  # sent, retry, failed, suppressed, delayed, cancelled

    def add(self, counts: dict[str, int]) -> None:
        self.delivered += counts.get("delivered", 0)
        self.retrying += counts.get("pending", 0)
        self.failed += counts.get("failed", 0)


def worker_id() -> str:
    """This worker's name in leases: host, process and a random tail (a restarted process is another worker)."""
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{new_id('w')[-8:]}"


class Worker:
    """One worker's state: its id, settings, thread pool and optional broker connection."""

    def __init__(self, session_factory: Callable[[], Session], program: Program, settings: webhooks.Settings,
                 jobs: Sequence[scheduled.PeriodicJob] = (), stream: StreamSettings | None = None,
                 stop_event: threading.Event | None = None, owner: str | None = None,
                 messages: campaigns.MessageSettings | None = None):
        self.session_factory, self.program, self.settings = session_factory, program, settings
        self.messages = messages
        self.jobs, self.stream_settings = list(jobs), stream
        self.stop_event = stop_event or threading.Event()
        self.owner = owner or worker_id()
        self.stats = Stats()
        self.publisher: Publisher | None = None
        self._pool = ThreadPoolExecutor(max_workers=settings.concurrency, thread_name_prefix="webhook")

    # -- one step each; each returns how much it did

    def fan_out(self) -> int:
        with self.session_factory() as session:
            count = webhooks.fan_out(session, self.settings, owner=self.owner, now=self.program.now())
            session.commit()
        self.stats.fanned_out += count
        return count

    def deliver(self) -> int:
        """Claim due deliveries (one short transaction), POST them with none open, record them (another)."""
        with self.session_factory() as session:
            claimed = webhooks.claim(session, self.settings, owner=self.owner, now=self.program.now())
            session.commit()
        if not claimed:
            return 0
        results: list[tuple[webhooks.Job, webhooks.http.Answer]] = []
        unsent: list[tuple[webhooks.Job, None]] = []
        futures = [(job, self._pool.submit(self._send, job)) for job in claimed]
        for job, future in futures:
            answer = future.result()
            if answer is None:
                unsent.append((job, None))
            else:
                results.append((job, answer))
        with self.session_factory() as session:
            self.stats.add(webhooks.record(session, self.owner, results, self.settings, self.program.now(),
                                           self.program.random))
            webhooks.release(session, self.owner, [job for job, _ in unsent])
            session.commit()
        return len(results)

    def _send(self, job: webhooks.Job) -> webhooks.http.Answer | None:
        if self.stop_event.is_set():
            return None  # stopping: a delivery not yet started is given back, not sent
        return webhooks.send(job, self.settings)

    def send_messages(self) -> int:
        """Campaign messages: claim what is due (one short transaction that also suppresses, delays and issues
        coupons), send with no transaction open (email on one SMTP connection, each outcome recorded as it comes;
        sms and push to their gateways in the thread pool), give back what was not sent."""
        settings = self.messages
        if settings is None:
            return 0
        channels = tuple(c for c in campaigns.CHANNELS if settings.url_for(c))
        if not channels:
            return 0
        with self.session_factory() as session:
            claimed = campaigns.claim(session, self.program, settings, owner=self.owner, now=self.program.now(),
                                      channels=channels)
            session.commit()
        self.stats.messages.update({"suppressed": sum(claimed.suppressed.values()), "delayed": claimed.delayed,
                                    "cancelled": claimed.cancelled})
        if not claimed.jobs:
            return claimed.handled
        # Stop sending well before the lease ends: a message sent after it could be another worker's by then.
        deadline = time.monotonic() + settings.lease.total_seconds() - 2 * settings.timeout
        mails = [j for j in claimed.jobs if j.channel == "email"]
        others = [j for j in claimed.jobs if j.channel != "email"]
        unsent: list[campaigns.Job] = []
        with self.session_factory() as session:
            if mails:
                # Outcomes are recorded by a thread of their own as they come (a short transaction each, several
                # together when they queue up), while the next message is on the wire: a worker killed now resends
                # only what it had sent and not yet recorded, a message or two, with the same Message-ID.
                recorder = _Recorder(self, settings)
                relay = email.Relay(settings.smtp_url or "", settings.timeout)
                try:
                    unsent += email.send_batch(relay, mails, mail_from=settings.sender(self.program.public_url),
                                               host=urlsplit(self.program.public_url).hostname or "localhost",
                                               record=recorder.put, stop=self.stop_event.is_set, deadline=deadline)
                finally:
                    relay.close()
                    recorder.close()
            if others:
                futures = [(job, self._pool.submit(self._send_message, job, settings)) for job in others]
                results = []
                for job, future in futures:
                    outcome = future.result()
                    if outcome is None:
                        unsent.append(job)
                    else:
                        results.append((job, outcome))
                self.stats.messages.update(campaigns.record(session, self.owner, results, settings,
                                                            self.program.now(), self.program.random))
                session.commit()
            if unsent:
                campaigns.release(session, self.owner, unsent)
                session.commit()
        return claimed.handled

    def _send_message(self, job: campaigns.Job, settings: campaigns.MessageSettings) -> campaigns.Outcome | None:
        if self.stop_event.is_set():
            return None
        return gateways.send(job, settings)

    def publish(self, batch: int = 500) -> int:
        """Publish the next committed events to JetStream; the cursor moves only once JetStream acknowledged them."""
        if self.publisher is None:
            return 0
        now = self.program.now()
        with self.session_factory() as session:
            claimed = claim_cursor(session, STREAM_CURSOR, self.owner, now, self.settings.lease)
            events = read(session, claimed.after, limit=batch) if claimed else []
            envelopes = [(e.cursor, envelope(e)) for e in events]
            session.commit()
        if claimed is None:
            return 0
        try:
            self.stats.published += self.publisher.publish([e for _, e in envelopes])
        except Exception:
            log.exception("publishing to NATS failed; the same events are published again next time")
            with self.session_factory() as session:
                advance_cursor(session, claimed, claimed.after, release=True, now=self.program.now())
                session.commit()
            return 0
        with self.session_factory() as session:
            advance_cursor(session, claimed, envelopes[-1][0] if envelopes else claimed.after, release=True,
                           now=self.program.now())
            session.commit()
        return len(envelopes)

    def run_jobs(self) -> int:
        ran = 0
        for job in self.jobs:
            if self.stop_event.is_set():
                break
            with self.session_factory() as session:
                mine = scheduled.claim_due(session, job, owner=self.owner, now=self.program.now(),
                                           lease=timedelta(hours=1))
                session.commit()
            if not mine:
                continue
            done = 0
            with self.session_factory() as session:
                try:
                    while not self.stop_event.is_set():
                        step = job.run(session, self.program)
                        session.commit()
                        done += step or 0
                        if not step:
                            break
                except Exception:
                    session.rollback()
                    log.exception("job %s failed", job.name)
                scheduled.finished(session, job, owner=self.owner, now=self.program.now(), done=done)
                session.commit()
            self.stats.jobs[job.name] = self.stats.jobs.get(job.name, 0) + done
            ran += 1
        return ran

    def step(self) -> int:
        """One round of everything; how much it did (0: nothing was due)."""
        work = self.fan_out() + self.publish()
        work += self.deliver()
        work += self.send_messages()
        work += self.run_jobs()
        return work

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        if self.publisher is not None:
            self.publisher.close()


class _Recorder:
    """Records message outcomes on a thread of its own, in the order they came, several per transaction when they
    queue up."""

    def __init__(self, owner: Worker, settings: campaigns.MessageSettings):
        self.worker, self.settings = owner, settings
        self.queue: queue.SimpleQueue[tuple[campaigns.Job, campaigns.Outcome] | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name="message-records", daemon=True)
        self.thread.start()

    def put(self, job: campaigns.Job, outcome: campaigns.Outcome) -> None:
        self.queue.put((job, outcome))

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()

    def _run(self) -> None:
        worker, done = self.worker, False
        with worker.session_factory() as session:
            while not done:
                batch = []
                item = self.queue.get()
                while item is not None:
                    batch.append(item)
                    if self.queue.empty() or len(batch) >= 500:
                        break
                    item = self.queue.get()
                done = item is None
                if not batch:
                    continue
                try:
                    worker.stats.messages.update(campaigns.record(session, worker.owner, batch, self.settings,
                                                                  worker.program.now(), worker.program.random))
                    session.commit()
                except Exception:
                    session.rollback()  # the messages stay leased, and go again after the lease (same Message-ID)
                    log.exception("recording %d message outcomes failed", len(batch))


def run(session_factory: Callable[[], Session], program: Program, *, settings: webhooks.Settings | None = None,
        jobs: Sequence[scheduled.PeriodicJob] = (), stream: StreamSettings | None = None, once: bool = False,
        stop_event: threading.Event | None = None, poll: float = 0.5, owner: str | None = None,
        messages: campaigns.MessageSettings | None = None) -> Stats:
    """Work until ``stop_event`` is set (or, with ``once``, until nothing is due); returns what was done."""
    worker = Worker(session_factory, program, settings or webhooks.Settings(), jobs, stream, stop_event, owner,
                    messages)
    try:
        if stream is not None:
            worker.publisher = Publisher(stream)
            log.info("NATS stream: %s", worker.publisher.start())
        while not worker.stop_event.is_set():
            try:
                work = worker.step()
            except Exception:
                if once:
                    raise
                log.exception("worker round failed; trying again")
                work = 0
            if once and not work:
                break
            if not work:
                worker.stop_event.wait(poll)
    finally:
        worker.close()
    return worker.stats
