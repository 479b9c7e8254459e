"""The worker: webhook fan-out and delivery, the broker stream, scheduled jobs."""
from .jobs import JobRun, PeriodicJob
from .loop import Stats, Worker, run, worker_id
from .stream import Publisher, StreamSettings

__all__ = ["JobRun", "PeriodicJob", "Publisher", "Stats", "StreamSettings", "Worker", "run", "worker_id"]
