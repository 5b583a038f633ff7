"""Schedule strings and next-run times, daylight-saving changes included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.schedule import ScheduleSyntaxError, next_runs, parse_schedule, runs_between

PARIS = ZoneInfo("Europe/Paris")


@pytest.mark.parametrize(("text", "days", "canonical"), [
    ("daily 22:00", set(range(7)), "daily 22:00"),
    ("weekdays 21:00", {0, 1, 2, 3, 4}, "weekdays 21:00"),
    ("weekends 9:05", {5, 6}, "weekends 09:05"),
    ("mon,wed,fri 20:30", {0, 2, 4}, "mon,wed,fri 20:30"),
    ("lun,mer,ven 20:30", {0, 2, 4}, "mon,wed,fri 20:30"),
    ("  Sat,sun   07:00 ", {5, 6}, "weekends 07:00"),
])
def test_parse(text: str, days: set[int], canonical: str) -> None:
    sched = parse_schedule(text)
    assert sched.days == days
    assert sched.describe() == canonical


@pytest.mark.parametrize(("text", "fragment"), [
    ("daily", "expected"),
    ("daily 22h00", "bad time '22h00'"),
    ("daily 24:00", "does not exist"),
    ("daily 12:60", "does not exist"),
    ("mon,fry 10:00", "unknown day 'fry'"),
    ("every day 10:00", "expected"),
    ("", "expected"),
])
def test_parse_errors_say_what_was_expected(text: str, fragment: str) -> None:
    with pytest.raises(ScheduleSyntaxError, match=fragment):
        parse_schedule(text)


def _paris(*args: int) -> datetime:
    return datetime(*args, tzinfo=PARIS).astimezone(UTC)


def test_next_runs_are_local_wall_clock_times() -> None:
    sched = parse_schedule("weekdays 21:00")
    friday_noon = _paris(2026, 11, 27, 12, 0)
    runs = next_runs(sched, PARIS, friday_noon, 3)
    assert [r.astimezone(PARIS).strftime("%a %d %H:%M") for r in runs] == [
        "Fri 27 21:00", "Mon 30 21:00", "Tue 01 21:00",
    ]


def test_a_run_exactly_now_is_not_next() -> None:
    sched = parse_schedule("daily 22:00")
    at = _paris(2026, 11, 23, 22, 0)
    assert next_runs(sched, PARIS, at, 1)[0] == at + timedelta(days=1)


def test_keeps_wall_clock_across_daylight_saving() -> None:
    sched = parse_schedule("daily 22:00")
    runs = list(runs_between(sched, PARIS, _paris(2026, 3, 27, 12, 0), _paris(2026, 3, 30, 12, 0)))
    assert [r.astimezone(PARIS).hour for r in runs] == [22, 22, 22]
    # 23 hours between the two runs around the spring change (29 March 2026).
    assert runs[1] - runs[0] == timedelta(hours=24)
    assert runs[2] - runs[1] == timedelta(hours=23)


def test_nonexistent_time_runs_an_hour_later_once() -> None:
    sched = parse_schedule("daily 02:30")
    runs = list(runs_between(sched, PARIS, _paris(2026, 3, 28, 12, 0), _paris(2026, 3, 30, 12, 0)))
    assert [r.astimezone(PARIS).strftime("%d %H:%M") for r in runs] == ["29 03:30", "30 02:30"]


def test_repeated_autumn_time_runs_once() -> None:
    sched = parse_schedule("daily 02:30")
    start, end = _paris(2026, 10, 24, 12, 0), _paris(2026, 10, 26, 12, 0)
    runs = list(runs_between(sched, PARIS, start, end))
    assert len(runs) == 2
    assert runs[0].astimezone(PARIS).utcoffset() == timedelta(hours=2)  # first occurrence (CEST)


@given(
    days=st.sets(st.integers(0, 6), min_size=1),
    hour=st.integers(0, 23),
    minute=st.integers(0, 59),
    start=st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2030, 1, 1),
                       timezones=st.just(UTC)),
)
def test_runs_are_ordered_on_scheduled_days_and_strictly_after(
    days: set[int], hour: int, minute: int, start: datetime
) -> None:
    names = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    sched = parse_schedule(",".join(names[d] for d in sorted(days)) + f" {hour:02d}:{minute:02d}")
    runs = next_runs(sched, PARIS, start, 5)
    assert len(runs) == 5
    assert all(r > start for r in runs)
    assert runs == sorted(set(runs))
    for r in runs:
        local = r.astimezone(PARIS)
        assert local.weekday() in days
    # Nothing scheduled is skipped between start and the fifth run.
    assert list(runs_between(sched, PARIS, start, runs[-1])) == runs
