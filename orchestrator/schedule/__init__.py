"""When jobs run: schedule strings, next-run computation (pure), and later the daemon loop."""

from __future__ import annotations

from orchestrator.schedule.spec import (
    Schedule,
    ScheduleSyntaxError,
    local_instant,
    next_runs,
    parse_schedule,
    runs_between,
)

__all__ = [
    "Schedule",
    "ScheduleSyntaxError",
    "local_instant",
    "next_runs",
    "parse_schedule",
    "runs_between",
]
