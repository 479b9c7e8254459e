"""The broker stream: every event published to NATS JetStream (stream LOYALTY, subjects ``loyalty.<type>``), in
commit order, with ``Nats-Msg-Id`` = the event id so JetStream drops a re-publish within its duplicate window."""
from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass
from typing import Any

STREAM = "LOYALTY"
SUBJECT_PREFIX = "loyalty."


@dataclass(frozen=True)
class StreamSettings:
    url: str  # LOYALTY_EVENTS_NATS_URL
    duplicate_window: float = 7200.0  # LOYALTY_EVENTS_NATS_DUPLICATE_WINDOW, seconds
    stream: str = STREAM
    timeout: float = 5.0  # seconds to wait for JetStream's acknowledgement


def subject(event_type: str) -> str:
    return SUBJECT_PREFIX + event_type


class Publisher:
    """A NATS connection on its own event loop thread, used from the worker's synchronous loop."""

    def __init__(self, settings: StreamSettings):
        try:
            import nats  # noqa: F401  (optional: only a worker with LOYALTY_EVENTS_NATS_URL needs nats-py)
        except ImportError as error:
            raise RuntimeError("LOYALTY_EVENTS_NATS_URL is set but nats-py is not installed") from error
        self.settings = settings
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="nats", daemon=True)
        self._thread.start()
        self._nc: Any = None
        self._js: Any = None

    def _run(self, coroutine: Any, timeout: float) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def start(self) -> dict[str, Any]:
        """Connect, and create the stream or check (and widen) its subjects and duplicate window."""
        return self._run(self._start(), self.settings.timeout * 4)

    async def _start(self) -> dict[str, Any]:
        import nats
        from nats.js.api import StreamConfig
        from nats.js.errors import NotFoundError
        self._nc = await nats.connect(self.settings.url, connect_timeout=self.settings.timeout,
                                      max_reconnect_attempts=-1)
        self._js = self._nc.jetstream(timeout=self.settings.timeout)
        wanted = SUBJECT_PREFIX + ">"
        try:
            info = await self._js.stream_info(self.settings.stream)
        except NotFoundError:
            info = await self._js.add_stream(StreamConfig(name=self.settings.stream, subjects=[wanted],
                                                          duplicate_window=self.settings.duplicate_window))
            return {"created": True, "duplicate_window": info.config.duplicate_window}
        config = info.config
        if wanted not in (config.subjects or []) or (config.duplicate_window or 0) < self.settings.duplicate_window:
            config.subjects = sorted({*(config.subjects or []), wanted})
            config.duplicate_window = max(config.duplicate_window or 0, self.settings.duplicate_window)
            info = await self._js.update_stream(config)
        return {"created": False, "duplicate_window": info.config.duplicate_window}

    def publish(self, envelopes: list[dict[str, Any]]) -> int:
        """Publish events (envelopes) and wait for every acknowledgement; how many were new to the stream."""
        if not envelopes:
            return 0
        return self._run(self._publish(envelopes), self.settings.timeout * 2 + len(envelopes) * 0.01)

    async def _publish(self, envelopes: list[dict[str, Any]]) -> int:
        # Sent one after another on one connection (so in commit order), acknowledged together.
        acks = await asyncio.gather(*[
            self._js.publish(subject(e["type"]), json.dumps(e, separators=(",", ":")).encode(),
                             headers={"Nats-Msg-Id": e["id"]}) for e in envelopes])
        return sum(1 for ack in acks if not ack.duplicate)

    @staticmethod
    async def _cancel_the_rest() -> None:
        """nats-py leaves tasks behind after a failed connect; end them before the loop closes."""
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def close(self) -> None:
        """Flush and close the connection, then stop the loop's thread."""
        try:
            if self._nc is not None and not self._nc.is_closed:
                self._run(self._nc.drain(), self.settings.timeout)
        except Exception:  # closing anyway: what was not acknowledged is published again by the next worker
            pass
        finally:
            try:
                self._run(self._cancel_the_rest(), self.settings.timeout)
            except Exception:  # the loop may already be stuck; the thread is a daemon
                pass
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=self.settings.timeout)
            if not self._thread.is_alive():
                self._loop.close()
