"""Behaviour wrapped around any Target: retry, bandwidth limit, dry-run.

``RetryTarget(LimitTarget(SftpTarget(...)))``: each wrapper is a Target itself and adds one
thing, so the adapters stay simple and every combination is testable on its own.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from orchestrator.baie.target import (
    Data,
    Entry,
    Target,
    check_name,
    is_append_only,
    joined,
    size_of,
)
from orchestrator.errors import BaieError, HvbError

log = logging.getLogger(__name__)
T = TypeVar("T")


class RetryTarget:
    """Retries retryable errors with exponential backoff; stops at once on permanent ones
    (bad credentials, unknown host key, full baie)."""

    def __init__(self, inner: Target, attempts: int = 5, first_delay_s: float = 2.0,
                 max_delay_s: float = 120.0, sleep: Callable[[float], None] = time.sleep) -> None:
        self.inner = inner
        self.label = inner.label
        self.append_only = is_append_only(inner)
        self.attempts = attempts
        self.first_delay_s = first_delay_s
        self.max_delay_s = max_delay_s
        self._sleep = sleep

    def _retry(self, doing: str, fn: Callable[[], T]) -> T:
        delay = self.first_delay_s
        for attempt in range(1, self.attempts + 1):
            try:
                return fn()
            except HvbError as exc:
                if exc.permanent or attempt == self.attempts:
                    if attempt > 1:
                        exc.message += f" (after {attempt} attempts)"
                    raise
                log.warning("%s: %s failed (%s); retry %d/%d in %.0f s", self.label, doing, exc,
                            attempt, self.attempts - 1, delay)
                self._sleep(delay)
                delay = min(delay * 2, self.max_delay_s)
        raise AssertionError("unreachable")

    def put(self, name: str, data: Data) -> None:
        self._retry(f"writing {name}", lambda: self.inner.put(name, data))

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        return self._retry(f"reading {name}", lambda: self.inner.get(name, offset, length))

    def stat(self, name: str) -> int | None:
        return self._retry(f"looking at {name}", lambda: self.inner.stat(name))

    def list(self, prefix: str) -> Iterator[Entry]:
        yield from self._retry(f"listing {prefix}", lambda: list(self.inner.list(prefix)))

    def delete(self, name: str) -> None:
        self._retry(f"deleting {name}", lambda: self.inner.delete(name))

    def flush(self) -> None:
        self._retry("flushing", self.inner.flush)

    def close(self) -> None:
        self.inner.close()


class TokenBucket:
    """Sustained rate with bursts: ``rate`` bytes/s on average, up to ``burst`` bytes at once.
    Thread-safe; ``take`` blocks until the bytes may go."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.rate = rate
        self.burst = max(burst, 1.0)
        self._tokens = self.burst
        self._clock = clock
        self._sleep = sleep
        self._last = clock()
        self._lock = threading.Lock()

    def take(self, amount: int) -> None:
        while amount > 0:
            portion = min(amount, int(self.burst))
            with self._lock:
                now = self._clock()
                self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
                self._last = now
                self._tokens -= portion
                wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
            if wait > 0:
                self._sleep(wait)
            amount -= portion


class LimitTarget:
    """Caps upload bandwidth: ``sustained_mbps`` on average, ``burst_mbps`` over one second."""

    def __init__(self, inner: Target, sustained_mbps: float, burst_mbps: float | None = None,
                 slice_bytes: int = 256 * 1024, bucket: TokenBucket | None = None) -> None:
        self.inner = inner
        self.label = inner.label
        self.append_only = is_append_only(inner)
        rate = sustained_mbps * 1_000_000 / 8
        burst = (burst_mbps or sustained_mbps) * 1_000_000 / 8
        self.bucket = bucket or TokenBucket(rate, burst)
        self.slice_bytes = slice_bytes

    def put(self, name: str, data: Data) -> None:
        # Pay for the bytes before they go; the whole file is then written at once.
        size = size_of(data)
        for start in range(0, size, self.slice_bytes):
            self.bucket.take(min(self.slice_bytes, size - start))
        self.inner.put(name, data)

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        return self.inner.get(name, offset, length)

    def stat(self, name: str) -> int | None:
        return self.inner.stat(name)

    def list(self, prefix: str) -> Iterator[Entry]:
        return self.inner.list(prefix)

    def delete(self, name: str) -> None:
        self.inner.delete(name)

    def flush(self) -> None:
        self.inner.flush()

    def close(self) -> None:
        self.inner.close()


class DryRunTarget:
    """Reads the real baie; writes and deletes are only recorded (``hvbackup ... --dry-run``).
    What was 'written' reads back and what was 'deleted' is missing, so a whole backup can run
    without changing the baie. Pack bytes (``data/...``) are not kept — a night's packs would
    fill the orchestrator's memory: a pack put here stats and lists as size 0 and reading it
    reaches the real baie. Names are checked as the real baie checks them, so a name that
    would fail the real run fails the dry run too."""

    def __init__(self, inner: Target) -> None:
        self.inner = inner
        self.label = inner.label + " (dry run)"
        self.append_only = False  # nothing is written: no write path, no canary
        self.written: dict[str, bytes] = {}
        self.deleted: set[str] = set()
        self._lock = threading.Lock()

    def put(self, name: str, data: Data) -> None:
        check_name(name)
        with self._lock:
            self.written[name] = b"" if name.startswith("data/") else bytes(joined(data))
            self.deleted.discard(name)

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        if name in self.deleted:
            raise BaieError(f"baie {self.label}: {name} is missing (deleted in this dry run)")
        if name in self.written and not name.startswith("data/"):
            data = self.written[name]
            return data[offset:] if length is None else data[offset:offset + length]
        return self.inner.get(name, offset, length)

    def stat(self, name: str) -> int | None:
        if name in self.deleted:
            return None
        if name in self.written:
            return len(self.written[name])
        return self.inner.stat(name)

    def list(self, prefix: str) -> Iterator[Entry]:
        # In name order, as every Target lists: the real files merged with the recorded ones,
        # which stand for them (as in stat) when both have a name.
        entries = {e.name: e for e in self.inner.list(prefix)}
        folder = prefix.rstrip("/") + "/" if prefix else ""
        with self._lock:
            written, deleted = dict(self.written), set(self.deleted)
        entries.update((name, Entry(name, len(data))) for name, data in written.items()
                       if name.startswith(folder))
        for name in sorted(entries.keys() - deleted):
            yield entries[name]

    def delete(self, name: str) -> None:
        check_name(name)
        with self._lock:
            self.deleted.add(name)
            self.written.pop(name, None)

    def flush(self) -> None:
        pass  # nothing was written

    def close(self) -> None:
        self.inner.close()
