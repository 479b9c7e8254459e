"""A rate-limit storage shared by every process of one host: counters in a memory-mapped file (``host://<path>``).

gunicorn runs several worker processes; flask-limiter's default ``memory://`` storage counts in each of them
alone, so a limit of 20 let 20 per worker through. This storage keeps the counters in one file that every process
maps (``<instance>/ratelimits.shm`` by default): a fixed table of buckets of ``WAYS`` slots (key hash, expiry,
count), each bucket guarded by a byte-range lock (``fcntl.lockf``, between processes) and a thread lock (between a
process's threads). A hit is a hash, two lock calls and a few struct reads: microseconds, no database and no
network. Counters live as long as their window; the file is reset by deleting it.

Limits: a full bucket forgets its soonest-expiring counter (an attacker would need tens of thousands of live keys
hashing into one bucket of 8); counts are per host: several hosts share limits through Redis
(``LOYALTY_RATELIMIT_STORAGE_URI=redis://...``).
"""
from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
import struct
import threading
import time
from typing import Any

from limits.storage import Storage

BUCKETS = 8192
WAYS = 8
SLOT = struct.Struct("<Qdq")  # key hash (0: free), expiry (epoch seconds), count
HEADER = 64
SIZE = HEADER + BUCKETS * WAYS * SLOT.size
STRIPES = 256  # byte-range locks past the end of the table, one per group of buckets


def _hash(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little") or 1


class HostStorage(Storage):
    STORAGE_SCHEME = ["host"]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options: Any) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        path = (uri or "").split("://", 1)[-1] or os.path.join("/tmp", f"loyalty-ratelimits-{os.getuid()}.shm")
        self.path = path
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        if os.fstat(self._fd).st_size < SIZE:
            os.ftruncate(self._fd, SIZE)  # zeros: every slot free; two processes doing this at once agree
        self._map = mmap.mmap(self._fd, SIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self._threads = [threading.Lock() for _ in range(STRIPES)]

    @property
    def base_exceptions(self) -> type[Exception]:
        return OSError

    # ------------------------------------------------------------------ the table
    def _locked(self, h: int):
        bucket = h % BUCKETS
        return bucket, _Lock(self._fd, self._threads[bucket % STRIPES], SIZE + bucket % STRIPES)

    def _find(self, bucket: int, h: int, now: float) -> tuple[int, int, float] | None:
        """(offset, count, expiry) of the key's live slot in its bucket, if any."""
        base = HEADER + bucket * WAYS * SLOT.size
        for way in range(WAYS):
            offset = base + way * SLOT.size
            key, expiry, count = SLOT.unpack_from(self._map, offset)
            if key == h:
                return (offset, count, expiry) if expiry > now else None
        return None

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        h, now = _hash(key), time.time()
        bucket, lock = self._locked(h)
        base = HEADER + bucket * WAYS * SLOT.size
        with lock:
            free = oldest = None
            oldest_expiry = float("inf")
            for way in range(WAYS):
                offset = base + way * SLOT.size
                k, exp, count = SLOT.unpack_from(self._map, offset)
                if k == h:
                    if exp > now:
                        count += amount
                        SLOT.pack_into(self._map, offset, h, exp, count)
                        return count
                    free = offset  # this key's expired window: start a new one here
                    break
                if free is None and (k == 0 or exp <= now):
                    free = offset
                elif exp < oldest_expiry:
                    oldest, oldest_expiry = offset, exp
            target = free if free is not None else oldest
            assert target is not None
            SLOT.pack_into(self._map, target, h, now + expiry, amount)
            return amount

    def get(self, key: str) -> int:
        h = _hash(key)
        bucket, lock = self._locked(h)
        with lock:
            found = self._find(bucket, h, time.time())
        return found[1] if found else 0

    def get_expiry(self, key: str) -> float:
        h, now = _hash(key), time.time()
        bucket, lock = self._locked(h)
        with lock:
            found = self._find(bucket, h, now)
        return found[2] if found else now

    def clear(self, key: str) -> None:
        h = _hash(key)
        bucket, lock = self._locked(h)
        with lock:
            found = self._find(bucket, h, time.time())
            if found:
                SLOT.pack_into(self._map, found[0], 0, 0.0, 0)

    def check(self) -> bool:
        return not self._map.closed

    def reset(self) -> int | None:
        now, live = time.time(), 0
        for bucket in range(BUCKETS):
            _, lock = self._locked(bucket)
            with lock:
                base = HEADER + bucket * WAYS * SLOT.size
                for way in range(WAYS):
                    k, exp, _count = SLOT.unpack_from(self._map, base + way * SLOT.size)
                    live += bool(k and exp > now)
                self._map[base:base + WAYS * SLOT.size] = bytes(WAYS * SLOT.size)
        return live


class _Lock:
    """A bucket stripe's thread lock, then its byte-range lock in the file (other processes)."""

    __slots__ = ("fd", "thread", "at")

    def __init__(self, fd: int, thread: threading.Lock, at: int) -> None:
        self.fd, self.thread, self.at = fd, thread, at

    def __enter__(self) -> None:
        self.thread.acquire()
        try:
            fcntl.lockf(self.fd, fcntl.LOCK_EX, 1, self.at)
        except BaseException:
            self.thread.release()
            raise

    def __exit__(self, *exc: object) -> None:
        try:
            fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, self.at)
        finally:
            self.thread.release()
