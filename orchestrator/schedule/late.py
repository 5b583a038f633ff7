"""Whether a job is late: from its schedule, its window, its last run and ``now`` alone (pure).

The scheduler records a missed run NON EXECUTEE, but only while it runs: a scheduler stopped
for days records nothing. Every place that tells whether a job is up to date (the dashboard's
"À traiter", the client pages, the digest, the API, /metrics) asks this function instead of
trusting that a run was recorded::

    expected_since      last run            t1 (missed)       t2 (missed)     t3 (waiting)   now
    ──────┼──────────────────┼───────────────────┼─────────────────┼──────────────┼────────┼──
                                              window of t1 passed: late since t1

A scheduled instant is *missed* when its window has passed without a run scheduled at or
after it, *waiting* when its window is still open (the run may still start: its host busy,
the queue long).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from orchestrator.schedule.spec import Schedule, parse_schedule, runs_between

_JUST_BEFORE = timedelta(microseconds=1)


@dataclass(frozen=True)
class Lateness:
    """``missed``: the scheduled instants whose window passed with no run, oldest first;
    ``waiting``: the first instant due whose window is still open (None when none)."""

    missed: list[datetime] = field(default_factory=list)
    waiting: datetime | None = None

    @property
    def late(self) -> bool:
        return bool(self.missed)

    @property
    def since(self) -> datetime | None:
        """Late since: the first scheduled instant that had no run."""
        return self.missed[0] if self.missed else None


ON_TIME = Lateness()

# A scheduler finishes a cycle every 30 s; one not seen for this long is stopped (or stuck).
SCHEDULER_LATE_AFTER = timedelta(minutes=5)


def scheduler_late(last_seen: datetime | None, now: datetime) -> bool:
    """Whether no scheduler has been seen lately (or ever)."""
    return last_seen is None or now - last_seen > SCHEDULER_LATE_AFTER


def lateness(schedule: Schedule, window: timedelta, tz: ZoneInfo, *,
             last_run: datetime | None, expected_since: datetime, now: datetime,
             until: datetime | None = None) -> Lateness:
    """The job's scheduled instants after ``last_run`` (the ``scheduled_for`` of its latest
    run in the history, whatever its state; None when it never ran) and from
    ``expected_since`` on (nothing was due before the job existed or had this schedule), up to
    ``now`` (and before ``until``, when given: one night's instants), split into missed and
    waiting."""
    start = expected_since - _JUST_BEFORE
    if last_run is not None and last_run >= start:
        start = last_run
    end = now if until is None else min(now, until - _JUST_BEFORE)
    if end <= start:
        return ON_TIME
    missed: list[datetime] = []
    waiting = None
    for instant in runs_between(schedule, tz, start, end):
        if instant + window <= now:
            missed.append(instant)
        elif waiting is None:
            waiting = instant
    return Lateness(missed, waiting) if missed or waiting else ON_TIME


def due_edges(kinds: list[tuple[str, float]], tz: ZoneInfo, now: datetime
              ) -> dict[tuple[str, float], datetime]:
    """For each ``(schedule, window_hours)``: its latest instant whose window has passed at
    ``now``. A job is late exactly when it was expected before that instant and has no run
    from it on (``lateness``: what is missed lies after the last run and after
    ``expected_since``, and ends at the last such instant)."""
    out = {}
    for text, window_h in kinds:
        edge = now - timedelta(hours=window_h)
        instants = list(runs_between(parse_schedule(text), tz, edge - timedelta(days=8), edge))
        if instants:  # every schedule has an instant a week; an empty one is never late
            out[(text, window_h)] = instants[-1]
    return out


def of_jobs(rows: list[Any], tz: ZoneInfo, now: datetime) -> dict[int, Lateness]:
    """Each job's lateness, from ``history.queries.schedules_and_last_runs`` rows. Nothing is
    expected of a client whose contract has ended. Jobs alike (the same schedule, window,
    last run and start) are worked out once: a server of a thousand clients has a few
    schedules and nights for thousands of jobs."""
    today = now.astimezone(tz).date()
    out = {}
    seen: dict[tuple[Any, ...], Lateness] = {}
    for job_id, _client, _job, text, window_h, since, last, offboard_on in rows:
        if offboard_on is not None and offboard_on <= today:
            out[job_id] = ON_TIME
            continue
        key = (text, window_h, since, last)
        found = seen.get(key)
        if found is None:
            found = seen[key] = lateness(parse_schedule(text), timedelta(hours=window_h), tz,
                                         last_run=_aware(last),
                                         expected_since=_aware(since) or now, now=now)
        out[job_id] = found
    return out


def _aware(value: datetime | str | None) -> datetime | None:
    """Subquery results bypass the column type: SQLite gives naive UTC, or even text."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)
