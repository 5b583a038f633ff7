"""Which restore points to keep: a pure function of (snapshots, policy, now).

Rules, each optional, combined by union (a snapshot kept by any rule is kept):

* ``keep_days: N``   — every snapshot taken in the last N days (rolling window; the contract's
  "30 jours glissants");
* ``keep_last: N``   — the N newest snapshots;
* ``keep_daily: N``  — the newest snapshot of each of the last N days that have one;
* ``keep_weekly: N`` — the same per ISO week; ``keep_monthly: N`` — per calendar month.

Days, weeks and months are read on the MSP's wall clock (``tz``). Whatever the rules say, the
newest complete snapshot of a job is never forgotten, and a snapshot dated after ``now`` (a
clock that was ahead) is kept.

A partial snapshot (``complete`` False: a VM or a database of the job failed that night, the
others were saved) takes no place from a complete one: ``keep_last`` and the daily, weekly
and monthly slots go to complete snapshots. A partial one is kept while it is newer than the
newest complete one (it holds the newest copy of what did succeed), and by ``keep_days``.
When a job has no complete snapshot at all, the partial ones take the slots.

Two snapshots of one run count as one restore point (the newer one; the other shares its
decision). Snapshots written before snapshots were signed (``authenticated`` False) are ranked
among all the others but take no place from a signed one: the rules are applied to the signed
snapshots alone, then to all of them for the unsigned ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class RetentionPolicy:
    keep_days: int | None = None
    keep_last: int | None = None
    keep_daily: int | None = None
    keep_weekly: int | None = None
    keep_monthly: int | None = None

    def is_empty(self) -> bool:
        return all(
            v is None
            for v in (self.keep_days, self.keep_last, self.keep_daily, self.keep_weekly,
                      self.keep_monthly)
        )

    def describe(self) -> str:
        parts = []
        if self.keep_days:
            parts.append(f"{self.keep_days} days rolling")
        if self.keep_last:
            parts.append(f"last {self.keep_last}")
        if self.keep_daily:
            parts.append(f"{self.keep_daily} daily")
        if self.keep_weekly:
            parts.append(f"{self.keep_weekly} weekly")
        if self.keep_monthly:
            parts.append(f"{self.keep_monthly} monthly")
        return ", ".join(parts) or "nothing"


@dataclass(frozen=True)
class SnapshotRef:
    """What retention needs to know of a restore point."""

    id: str
    time: datetime
    complete: bool = True
    authenticated: bool = True
    run: str | None = None  # the run that wrote it: one run, one restore point


@dataclass(frozen=True)
class Decision:
    snapshot: SnapshotRef
    keep: bool
    reasons: tuple[str, ...]


def apply_policy(
    snapshots: Iterable[SnapshotRef],
    policy: RetentionPolicy,
    now: datetime,
    tz: ZoneInfo,
) -> list[Decision]:
    """Decide keep or forget for every snapshot, newest first, each with its reasons.

    A forgotten snapshot's reason says why no rule kept it. Pure: no I/O, ``now`` passed in.
    Raises ``ValueError`` for naive datetimes or an empty policy (which would forget everything
    but the newest, surely not what a technician meant).
    """
    if now.tzinfo is None:
        raise ValueError("apply_policy needs a timezone-aware 'now'")
    if policy.is_empty():
        raise ValueError("retention policy keeps nothing: set keep_days or keep_daily/...")
    ordered = sorted(snapshots, key=lambda s: (s.time, s.id), reverse=True)
    for snap in ordered:
        if snap.time.tzinfo is None:
            raise ValueError(f"snapshot {snap.id} has a naive time")
    twin: dict[str, SnapshotRef] = {}  # an older snapshot of a run -> the run's newest
    newest_of_run: dict[str, SnapshotRef] = {}
    for snap in ordered:
        if snap.run is None:
            continue
        if snap.run in newest_of_run:
            twin[snap.id] = newest_of_run[snap.run]
        else:
            newest_of_run[snap.run] = snap
    points = [s for s in ordered if s.id not in twin]
    signed = _reasons([s for s in points if s.authenticated], policy, now, tz)
    everything = _reasons(points, policy, now, tz)
    reasons = {s.id: (signed if s.authenticated else everything)[s.id] for s in points}
    for snap_id, newer in twin.items():
        reasons[snap_id] = [f"same run as {newer.id}"] if reasons[newer.id] else []

    decisions = []
    for snap in ordered:
        why = reasons[snap.id]
        if why:
            decisions.append(Decision(snap, True, tuple(why)))
        else:
            decisions.append(Decision(snap, False, (f"outside policy ({policy.describe()})",)))
    return decisions


def _reasons(ordered: list[SnapshotRef], policy: RetentionPolicy, now: datetime,
             tz: ZoneInfo) -> dict[str, list[str]]:
    """Why each of ``ordered`` (newest first) is kept; an empty list: by no rule."""
    reasons: dict[str, list[str]] = {s.id: [] for s in ordered}

    # A snapshot dated after `now` is kept, and takes no place from the rules below.
    for snap in ordered:
        if snap.time > now:
            reasons[snap.id].append("dated in the future")
    past = [s for s in ordered if s.time <= now]
    newest_complete = next((s for s in past if s.complete), None)
    if newest_complete is not None:
        reasons[newest_complete.id].append("newest restore point")
        for snap in past:
            if snap.time <= newest_complete.time:
                break
            reasons[snap.id].append("partial, newer than the newest complete restore point")
    # The slots go to complete snapshots (all of them when there is none).
    ranked = [s for s in past if s.complete] or past
    if policy.keep_days:
        cutoff = now - timedelta(days=policy.keep_days)
        for snap in past:
            if snap.time > cutoff:
                reasons[snap.id].append(f"within {policy.keep_days} days")
    if policy.keep_last:
        for snap in ranked[: policy.keep_last]:
            reasons[snap.id].append(f"last {policy.keep_last}")

    def bucketed(count: int | None, label: str, bucket: Callable[[datetime], str]) -> None:
        if not count:
            return
        seen: set[str] = set()
        for snap in ranked:
            if len(seen) >= count:
                break
            key = bucket(snap.time.astimezone(tz))
            if key not in seen:
                seen.add(key)
                reasons[snap.id].append(f"{label} {key}")

    bucketed(policy.keep_daily, "daily", lambda t: t.strftime("%Y-%m-%d"))
    bucketed(policy.keep_weekly, "weekly", lambda t: "{}-W{:02d}".format(*t.isocalendar()[:2]))
    bucketed(policy.keep_monthly, "monthly", lambda t: t.strftime("%Y-%m"))

    return reasons
