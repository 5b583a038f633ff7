"""The demo's mornings (config/demo.yaml, run by `make demo` with the scheduler down from
22:30 on the 17th to 07:45 on the 18th): normal mornings have every job done before the
07:00 reports, and exactly one morning has a run still in progress as its report goes out,
so the demo shows « en cours » and the « Complément » that follows once, not every day."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from orchestrator.config import load_config
from orchestrator.jobs.morning import REPORT_HOUR
from orchestrator.jobs.night import due_runs
from orchestrator.schedule.spec import local_instant
from tests.conftest import REPO

STOPPED = ("2026-11-17T22:30", "2026-11-18T07:45")  # as scripts/demo.sh says


def test_one_demo_morning_has_a_run_in_progress_at_report_time() -> None:
    loaded = load_config(REPO / "config" / "demo.yaml")
    tz = loaded.config.msp.timezone
    start = local_instant(datetime(2026, 11, 16).date(), time(12), tz)
    runs = due_runs(list(loaded.jobs()), tz, start, start + timedelta(days=5))
    down, back = (datetime.fromisoformat(t).replace(tzinfo=tz) for t in STOPPED)
    # No job starts as the reports are made (the report of the night would catch it).
    assert not [d.ref.label for d in runs
                if d.scheduled_for.astimezone(tz).time() == time(REPORT_HOUR)]
    # The runs started at the report's tick: those due while the scheduler was down whose
    # window is still open when it comes back at 07:45, as the late reports go out.
    late = [d.ref.label for d in runs if down <= d.scheduled_for < back <= d.window_end]
    assert late == ["acme/bureau"]
