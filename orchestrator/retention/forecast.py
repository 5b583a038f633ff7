"""How many restore points a schedule and a retention policy keep once the job is established.

Pure: replays the schedule over a long enough past, applies the policy at the moment just after
a run, and counts. Used by ``hvbackup plan`` and by quota forecasts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from orchestrator.retention.policy import RetentionPolicy, SnapshotRef, apply_policy
from orchestrator.schedule.spec import Schedule, runs_between


@dataclass(frozen=True)
class RetentionForecast:
    points: int
    oldest_age: timedelta


def _horizon(policy: RetentionPolicy) -> timedelta:
    days = [
        policy.keep_days or 0,
        (policy.keep_last or 0) * 7,
        (policy.keep_daily or 0) * 7,
        (policy.keep_weekly or 0) * 7 * 2,
        (policy.keep_monthly or 0) * 31 * 2,
    ]
    return timedelta(days=max(days) + 31)


def forecast_retention(
    schedule: Schedule, policy: RetentionPolicy, tz: ZoneInfo, at: datetime
) -> RetentionForecast:
    """Restore points kept right after the last scheduled run at or before ``at``, assuming
    every run since long before succeeded."""
    start = at - _horizon(policy)
    instants = list(runs_between(schedule, tz, start, at))
    if not instants:
        return RetentionForecast(0, timedelta(0))
    now = instants[-1] + timedelta(minutes=1)
    snapshots = [SnapshotRef(id=str(i), time=t) for i, t in enumerate(instants)]
    kept = [d.snapshot for d in apply_policy(snapshots, policy, now, tz) if d.keep]
    oldest = min(s.time for s in kept)
    return RetentionForecast(len(kept), now - oldest)
