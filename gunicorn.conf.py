"""Gunicorn settings read from the project root (gunicorn loads ./gunicorn.conf.py by default).

Flags given on the command line (bind, workers, --preload) still win; this file holds what every run wants.
"""
import gc


def post_worker_init(worker):
    """Once a worker has the app loaded, move every object that exists now (the app, its schemas, its
    mappers: hundreds of thousands, all living as long as the worker) out of the garbage collector's sight.
    Otherwise each full collection walks them all again, a pause of tens of milliseconds at random requests:
    the p99 of every endpoint. Garbage made by requests is collected as before."""
    gc.freeze()
