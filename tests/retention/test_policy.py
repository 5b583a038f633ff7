"""Retention decisions against golden files (tests/retention/golden/*.json).

Each golden file holds a scenario (policy, now, snapshots) and the expected decision for every
snapshot with its reasons. To regenerate after a deliberate change, run with
HVB_UPDATE_GOLDEN=1 and review the diff like code.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from orchestrator.retention.forecast import forecast_retention
from orchestrator.retention.policy import RetentionPolicy, SnapshotRef, apply_policy
from orchestrator.schedule import parse_schedule

GOLDEN = Path(__file__).parent / "golden"
PARIS = ZoneInfo("Europe/Paris")
UPDATE = os.environ.get("HVB_UPDATE_GOLDEN") == "1"  # read before fixtures clean the env


def _nightly(start: datetime, days: int, hour: int = 21, skip: frozenset[int] = frozenset()
             ) -> list[dict[str, Any]]:
    out = []
    for i in range(days):
        if i in skip:
            continue
        t = (start + timedelta(days=i)).replace(hour=hour)
        out.append({"id": f"s{i:03d}", "time": t.isoformat(), "complete": True})
    return out


def scenarios() -> dict[str, dict[str, Any]]:
    start = datetime(2026, 9, 1, tzinfo=UTC)
    return {
        "rolling-30-days-after-40-nights": {
            "policy": {"keep_days": 30},
            "now": (start + timedelta(days=39, hours=21, minutes=30)).isoformat(),
            "snapshots": _nightly(start, 40),
        },
        "daily-weekly-monthly-with-gaps": {
            "policy": {"keep_daily": 7, "keep_weekly": 4, "keep_monthly": 3},
            "now": (start + timedelta(days=119, hours=22)).isoformat(),
            "snapshots": _nightly(start, 120, skip=frozenset({115, 116, 100, 101, 102})),
        },
        "all-runs-failed-for-45-days": {
            "policy": {"keep_days": 30},
            "now": (start + timedelta(days=60)).isoformat(),
            "snapshots": _nightly(start, 15),
        },
        "newest-is-incomplete": {
            "policy": {"keep_days": 2},
            "now": (start + timedelta(days=20)).isoformat(),
            "snapshots": [
                *_nightly(start, 10),
                {"id": "partial", "time": (start + timedelta(days=19)).isoformat(),
                 "complete": False},
            ],
        },
        "clock-ahead-and-several-per-day": {
            "policy": {"keep_daily": 2, "keep_last": 1},
            "now": datetime(2026, 11, 23, 10, 0, tzinfo=UTC).isoformat(),
            "snapshots": [
                {"id": "mon-early", "time": "2026-11-23T01:00:00+00:00", "complete": True},
                {"id": "mon-late", "time": "2026-11-23T08:00:00+00:00", "complete": True},
                {"id": "sun-late", "time": "2026-11-22T22:30:00+00:00", "complete": True},
                {"id": "sun-early", "time": "2026-11-22T05:00:00+00:00", "complete": True},
                {"id": "future", "time": "2026-11-24T03:00:00+00:00", "complete": True},
            ],
        },
        # Two unsigned (older format) points dated after the signed ones, and a second
        # snapshot of the newest run: neither pushes a signed night out of keep_last.
        "unsigned-and-duplicates-take-no-place": {
            "policy": {"keep_last": 3},
            "now": (start + timedelta(days=10)).isoformat(),
            "snapshots": [
                *[{**s, "run": f"r{s['id']}"} for s in _nightly(start, 4)],
                {"id": "s003-twin", "time": (start + timedelta(days=3, hours=21)).isoformat(),
                 "complete": True, "run": "rs003"},
                {"id": "old-a", "time": (start + timedelta(days=5)).isoformat(),
                 "complete": True, "authenticated": False},
                {"id": "old-b", "time": (start + timedelta(days=6)).isoformat(),
                 "complete": True, "authenticated": False},
            ],
        },
    }


def _decide(scenario: dict[str, Any]) -> list[dict[str, Any]]:
    snaps = [SnapshotRef(s["id"], datetime.fromisoformat(s["time"]), s["complete"],
                         s.get("authenticated", True), s.get("run"))
             for s in scenario["snapshots"]]
    decisions = apply_policy(snaps, RetentionPolicy(**scenario["policy"]),
                             datetime.fromisoformat(scenario["now"]), PARIS)
    return [{"id": d.snapshot.id, "keep": d.keep, "reasons": list(d.reasons)} for d in decisions]


@pytest.mark.parametrize("name", sorted(scenarios()))
def test_golden(name: str) -> None:
    scenario = scenarios()[name]
    got = _decide(scenario)
    path = GOLDEN / f"{name}.json"
    if UPDATE:
        path.write_text(json.dumps({**scenario, "expected": got}, indent=1) + "\n")
    golden = json.loads(path.read_text())
    assert golden["snapshots"] == scenario["snapshots"], "scenario changed: regenerate"
    assert got == golden["expected"]


def test_rolling_30_days_keeps_30_points_after_40_nights() -> None:
    got = _decide(scenarios()["rolling-30-days-after-40-nights"])
    kept = [d["id"] for d in got if d["keep"]]
    assert len(kept) == 30
    assert kept[0] == "s039" and kept[-1] == "s010"


def test_newest_complete_point_survives_a_long_outage() -> None:
    got = _decide(scenarios()["all-runs-failed-for-45-days"])
    kept = [d for d in got if d["keep"]]
    assert [d["id"] for d in kept] == ["s014"]
    assert kept[0]["reasons"] == ["newest restore point"]


def test_unsigned_points_and_twins_of_a_run_push_no_signed_point_out() -> None:
    got = {d["id"]: d for d in _decide(scenarios()["unsigned-and-duplicates-take-no-place"])}
    assert [i for i, d in got.items() if d["keep"]] == [
        "old-b", "old-a", "s003-twin", "s003", "s002", "s001"]
    assert got["s003"]["reasons"] == ["same run as s003-twin"]
    assert got["old-a"]["reasons"] == ["last 3"]
    assert got["s000"]["keep"] is False


def test_empty_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="keeps nothing"):
        apply_policy([], RetentionPolicy(), datetime.now(UTC), PARIS)


@pytest.mark.parametrize(("schedule", "policy", "points"), [
    ("daily 22:00", RetentionPolicy(keep_days=30), 30),
    ("daily 22:00", RetentionPolicy(keep_days=35), 35),
    ("weekdays 21:00", RetentionPolicy(keep_days=28), 20),
    ("daily 23:00", RetentionPolicy(keep_daily=30, keep_monthly=12), 40),
    ("mon,wed,fri 20:30", RetentionPolicy(keep_daily=14, keep_weekly=5), 14),
])
def test_forecast_counts_points_in_steady_state(schedule: str, policy: RetentionPolicy,
                                                points: int) -> None:
    at = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    assert forecast_retention(parse_schedule(schedule), policy, PARIS, at).points == points


def test_partial_points_take_no_slot_from_complete_ones() -> None:
    """keep_last: 2 while one VM of the job failed on the last three nights: the two newest
    complete points are kept (not pushed out by three partial ones), and of the partial
    points only those newer than the newest complete one."""
    start = datetime(2026, 11, 1, 21, 0, tzinfo=UTC)
    snaps = [SnapshotRef(f"s{i}", start + timedelta(days=i), complete=i not in (3, 5, 6))
             for i in range(7)]
    decisions = apply_policy(snaps, RetentionPolicy(keep_last=2), start + timedelta(days=7),
                             PARIS)
    kept = {d.snapshot.id: d.reasons for d in decisions if d.keep}
    assert sorted(kept) == ["s2", "s4", "s5", "s6"]
    assert kept["s6"] == ("partial, newer than the newest complete restore point",)
    assert "last 2" in kept["s2"] and "newest restore point" in kept["s4"]


def test_partial_points_take_the_daily_slots_only_when_nothing_is_complete() -> None:
    start = datetime(2026, 11, 1, 21, 0, tzinfo=UTC)
    snaps = [SnapshotRef(f"p{i}", start + timedelta(days=i), complete=False) for i in range(5)]
    decisions = apply_policy(snaps, RetentionPolicy(keep_daily=3), start + timedelta(days=5),
                             PARIS)
    assert [d.snapshot.id for d in decisions if d.keep] == ["p4", "p3", "p2"]
