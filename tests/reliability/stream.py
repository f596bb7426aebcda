"""A client that sends the same request again and again, in a thread, while a test breaks things:
every answer (or transport error) is recorded with its time, so a test can say what a client saw
before, during and after a fault."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from tests.support.waiting import wait_until


@dataclass
class Seen:
    at: float  # monotonic time the request was sent
    status: int | None  # None: no HTTP answer (connection refused or dropped)
    elapsed: float
    body: Any = None
    error: str = ""


class RequestStream:
    def __init__(
        self, base_url: str, method: str, path: str, timeout: float, **request: Any
    ) -> None:
        self._client = httpx.Client(base_url=base_url, timeout=timeout)
        self._call = lambda: self._client.request(method, path, **request)
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"stream {path}")

    def __enter__(self) -> RequestStream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        # Hang up on a request still in flight (the gateway then drops its backend call) rather
        # than wait for an answer nobody reads.
        self._client.close()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        while not self._stop.is_set():
            sent = time.monotonic()
            try:
                answer = self._call()
                body = (
                    answer.json()
                    if answer.headers.get("content-type", "").startswith("application/json")
                    else answer.text
                )
                seen = Seen(sent, answer.status_code, time.monotonic() - sent, body)
            except httpx.TimeoutException as exc:
                seen = Seen(sent, None, time.monotonic() - sent, error=f"timeout: {exc!r}")
            except Exception as exc:  # a transport error, or the client closed
                if self._stop.is_set():
                    return
                if not isinstance(exc, httpx.TransportError):
                    raise
                seen = Seen(sent, None, time.monotonic() - sent, error=repr(exc))
                time.sleep(0.05)  # a refused connection answers at once: no busy loop
            with self._lock:
                self.seen.append(seen)

    def since(self, moment: float) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.at >= moment]

    def wait_for(
        self, check: Callable[[Seen], bool], after: float, timeout: float, what: str
    ) -> Seen:
        """The first answer sent at or after `after` for which `check` holds."""
        found: list[Seen] = []

        def done() -> bool:
            found[:] = [s for s in self.since(after) if check(s)]
            return bool(found)

        wait_until(done, timeout, what)
        return found[0]
