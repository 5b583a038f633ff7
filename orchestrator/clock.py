"""Time is passed in, never read from a global, so that tests and the demo can freeze it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware, in UTC."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FrozenClock:
    """A clock that only moves when told to (tests, simulated nights of the demo)."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FrozenClock needs a timezone-aware datetime")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        self._now += delta

    def set(self, when: datetime) -> None:
        if when.tzinfo is None:
            raise ValueError("FrozenClock needs a timezone-aware datetime")
        self._now = when.astimezone(UTC)


class SimulatedClock:
    """A clock set to chosen instants that then runs at real speed (simulated nights: each
    run starts at its scheduled time and lasts as long as it really takes). ``sleep`` moves
    it forward without waiting."""

    def __init__(self, start: datetime) -> None:
        import time

        self._monotonic = time.monotonic
        self.set(start)

    def set(self, when: datetime) -> None:
        if when.tzinfo is None:
            raise ValueError("SimulatedClock needs a timezone-aware datetime")
        self._base = when.astimezone(UTC)
        self._started = self._monotonic()

    def now(self) -> datetime:
        return self._base + timedelta(seconds=self._monotonic() - self._started)

    def sleep(self, seconds: float) -> None:
        self._base += timedelta(seconds=seconds)
