"""Whether a job is late, from its schedule, its window, its last run and now alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from orchestrator.schedule import parse_schedule
from orchestrator.schedule.late import lateness

PARIS = ZoneInfo("Europe/Paris")
DAILY = parse_schedule("daily 22:00")  # 21:00 UTC in winter
WINDOW = timedelta(hours=8)
CREATED = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def test_on_time_after_last_nights_run() -> None:
    found = lateness(DAILY, WINDOW, PARIS, last_run=at(16, 21), expected_since=CREATED,
                     now=at(17, 8))
    assert (found.late, found.since, found.waiting) == (False, None, None)


def test_a_run_in_its_window_is_waiting_not_late() -> None:
    found = lateness(DAILY, WINDOW, PARIS, last_run=at(16, 21), expected_since=CREATED,
                     now=at(17, 23))
    assert (found.late, found.waiting) == (False, at(17, 21))


def test_the_scheduler_down_for_three_nights() -> None:
    found = lateness(DAILY, WINDOW, PARIS, last_run=at(16, 21), expected_since=CREATED,
                     now=at(20, 10))
    assert found.missed == [at(17, 21), at(18, 21), at(19, 21)]
    assert found.since == at(17, 21) and found.waiting is None
    # the window of the 19th's run ends at 05:00: a minute before, it is still waiting
    found = lateness(DAILY, WINDOW, PARIS, last_run=at(16, 21), expected_since=CREATED,
                     now=at(20, 4, 59))
    assert (found.missed, found.waiting) == ([at(17, 21), at(18, 21)], at(19, 21))


def test_nothing_is_expected_before_the_job_existed() -> None:
    found = lateness(DAILY, WINDOW, PARIS, last_run=None, expected_since=at(18, 9),
                     now=at(20, 10))
    assert found.missed == [at(18, 21), at(19, 21)]
    found = lateness(DAILY, WINDOW, PARIS, last_run=None, expected_since=at(18, 21),
                     now=at(19, 10))
    assert found.missed == [at(18, 21)]  # the instant of the change itself is due


def test_a_weekday_job_is_not_late_on_sunday() -> None:
    weekdays = parse_schedule("weekdays 22:00")
    # Friday 27 November ran; Saturday and Sunday are not scheduled
    found = lateness(weekdays, WINDOW, PARIS, last_run=at(27, 21), expected_since=CREATED,
                     now=at(30, 10))
    assert not found.late
    found = lateness(weekdays, WINDOW, PARIS, last_run=at(27, 21), expected_since=CREATED,
                     now=datetime(2026, 12, 1, 10, tzinfo=UTC))
    assert found.missed == [at(30, 21)]


def test_one_nights_instants() -> None:
    found = lateness(DAILY, WINDOW, PARIS, last_run=None, expected_since=at(17, 11),
                     now=at(20, 10), until=at(18, 11))
    assert found.missed == [at(17, 21)]
