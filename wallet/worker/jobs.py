"""Scheduled jobs: named periodic work (points expire, points release, triggers run ...) that several workers share,
each run once per period whichever worker gets there first."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import String, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from ..db import Base, on_postgres, rowcount
from ..program import Program


@dataclass(frozen=True)
class PeriodicJob:
    """``run(session, program)`` does one batch's worth of work and returns how much it did (0: nothing left);
    the worker commits after each batch and calls it again until it returns 0."""

    name: str
    every: timedelta
    run: Callable[[Session, Program], int]


class JobRun(Base):
    __tablename__ = "worker_jobs"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    last_started_at: Mapped[datetime | None]
    last_finished_at: Mapped[datetime | None]
    last_done: Mapped[int | None]  # how much the last run did
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]


def claim_due(session: Session, job: PeriodicJob, *, owner: str, now: datetime, lease: timedelta) -> bool:
    """Whether this worker runs the job now: it is due and no other worker holds it. The caller commits."""
    if session.get(JobRun, job.name) is None:
        insert = pg_insert if on_postgres(session) else sqlite_insert
        # Another worker may make it at the same moment: theirs is as good.
        session.execute(insert(JobRun).values(name=job.name).on_conflict_do_nothing())
    taken = session.execute(
        update(JobRun).where(JobRun.name == job.name,
                             (JobRun.last_started_at.is_(None)) | (JobRun.last_started_at <= now - job.every),
                             (JobRun.lease_until.is_(None)) | (JobRun.lease_until < now))
        .values(last_started_at=now, lease_owner=owner, lease_until=now + lease),
        execution_options={"synchronize_session": False})
    return rowcount(taken) == 1


def finished(session: Session, job: PeriodicJob, *, owner: str, now: datetime, done: int) -> None:
    """Record the end of a run and let the job go. The caller commits."""
    session.execute(update(JobRun).where(JobRun.name == job.name, JobRun.lease_owner == owner)
                    .values(last_finished_at=now, last_done=done, lease_owner=None, lease_until=None),
                    execution_options={"synchronize_session": False})
