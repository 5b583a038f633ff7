"""Schedule strings and the pure computation of next run times.

A job's ``schedule`` is one of::

    daily HH:MM                 every day
    weekdays HH:MM              Monday to Friday
    weekends HH:MM              Saturday and Sunday
    mon,wed,fri HH:MM           the days listed (English or French abbreviations:
                                mon tue wed thu fri sat sun / lun mar mer jeu ven sam dim)

Times are wall-clock times in the MSP's timezone. Across daylight-saving changes a run keeps
its wall-clock time; a time that does not exist on the spring-forward day (02:30 in Paris) runs
an hour later (03:30), and a time that happens twice in autumn runs once, at the first
occurrence.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

_DAY_NAMES = {
    "mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6,
    "lun": 0, "mar": 1, "mer": 2, "jeu": 3, "ven": 4, "sam": 5, "dim": 6,
}  # fmt: skip
_ENGLISH = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_GROUPS = {
    "daily": frozenset(range(7)),
    "weekdays": frozenset(range(5)),
    "weekends": frozenset({5, 6}),
}
_FORMAT_HELP = 'expected "daily HH:MM", "weekdays HH:MM", "weekends HH:MM" or "mon,wed,fri HH:MM"'


class ScheduleSyntaxError(ValueError):
    """The schedule string cannot be read; the message says what was expected."""


@dataclass(frozen=True)
class Schedule:
    """Days of the week (0 = Monday) and a wall-clock time."""

    days: frozenset[int]
    at: time
    text: str

    def __str__(self) -> str:
        return self.text

    def describe(self) -> str:
        """A canonical form, e.g. ``weekdays 21:00`` or ``mon,wed,fri 22:30``."""
        hhmm = self.at.strftime("%H:%M")
        for name, days in _GROUPS.items():
            if self.days == days:
                return f"{name} {hhmm}"
        return ",".join(_ENGLISH[d] for d in sorted(self.days)) + f" {hhmm}"


def parse_schedule(text: str) -> Schedule:
    """Parse a schedule string; raises :class:`ScheduleSyntaxError` naming what is wrong."""
    if not isinstance(text, str):
        raise ScheduleSyntaxError(f"{_FORMAT_HELP}, got a {type(text).__name__}")
    parts = text.strip().split()
    if len(parts) != 2:
        raise ScheduleSyntaxError(f"{_FORMAT_HELP}, got {text!r}")
    days_part, time_part = parts[0].lower(), parts[1]
    if days_part in _GROUPS:
        days = _GROUPS[days_part]
    else:
        names = [n.strip() for n in days_part.split(",")]
        unknown = [n for n in names if n not in _DAY_NAMES]
        if unknown:
            raise ScheduleSyntaxError(
                f"unknown day {unknown[0]!r} in {text!r}; {_FORMAT_HELP} "
                "(days: mon tue wed thu fri sat sun, or lun mar mer jeu ven sam dim)"
            )
        days = frozenset(_DAY_NAMES[n] for n in names)
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", time_part)
    if not match:
        raise ScheduleSyntaxError(f"bad time {time_part!r} in {text!r}: expected HH:MM, 24-hour")
    hour, minute = int(match[1]), int(match[2])
    if hour > 23 or minute > 59:
        raise ScheduleSyntaxError(f"time {time_part!r} does not exist: hours 00-23, minutes 00-59")
    return Schedule(days=days, at=time(hour, minute), text=text.strip())


def local_instant(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The UTC instant at which the wall clock in ``tz`` shows ``day`` ``at``.

    A wall time that does not exist (spring-forward gap) moves forward by the length of the gap
    (02:30 becomes 03:30 in Paris); one that happens twice (autumn) is its first occurrence.
    Both follow from ``fold=0`` in :mod:`zoneinfo`.
    """
    return datetime.combine(day, at).replace(tzinfo=tz, fold=0).astimezone(UTC)


def runs_between(
    schedule: Schedule, tz: ZoneInfo, start: datetime, end: datetime
) -> Iterator[datetime]:
    """Scheduled instants (UTC) with ``start < t <= end``, in order."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("runs_between needs timezone-aware datetimes")
    day = start.astimezone(tz).date() - timedelta(days=1)
    last_day = end.astimezone(tz).date() + timedelta(days=1)
    while day <= last_day:
        if day.weekday() in schedule.days:
            instant = local_instant(day, schedule.at, tz)
            if start < instant <= end:
                yield instant
        day += timedelta(days=1)


def next_runs(schedule: Schedule, tz: ZoneInfo, after: datetime, count: int) -> list[datetime]:
    """The next ``count`` scheduled instants (UTC) strictly after ``after``."""
    found: list[datetime] = []
    horizon = after
    while len(found) < count:
        window_end = horizon + timedelta(days=14)
        found.extend(runs_between(schedule, tz, horizon, window_end))
        horizon = window_end
    return found[:count]
