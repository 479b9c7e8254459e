"""Gunicorn settings read from the project root (gunicorn loads ./gunicorn.conf.py by default).

Flags given on the command line (bind, workers, --preload) still win; this file holds what every run wants.

Workers are threaded (:mod:`api.serving`): idle and slow clients wait in each worker's poller, not in a thread,
so they cannot stall the API (a sync worker is held by one idle connection). Requests mostly wait on the
database, so a few threads per worker keep the cores busy; CPU-heavy sign-ins are capped separately
(``LOYALTY_PASSWORD_HASH_CONCURRENCY``). With ``LOYALTY_METRICS=1`` and ``PROMETHEUS_MULTIPROC_DIR`` set, a worker
that exits has its metrics files marked dead.
"""
import gc
import os

worker_class = "api.serving.Worker"
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
worker_connections = 1000  # per worker: idle connections beyond the threads wait in the poller
timeout = 30  # a worker whose main loop is silent this long is restarted
graceful_timeout = 10
keepalive = 5  # seconds an idle kept-alive connection (and a new one that has sent nothing) stays open
limit_request_line = 8190
limit_request_fields = 100


def post_worker_init(worker):
    """Once a worker has the app loaded, move every object that exists now (the app, its schemas, its
    mappers: hundreds of thousands, all living as long as the worker) out of the garbage collector's sight.
    Otherwise each full collection walks them all again, a pause of tens of milliseconds at random requests:
    the p99 of every endpoint. Garbage made by requests is collected as before."""
    gc.freeze()


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess
        multiprocess.mark_process_dead(worker.pid)
