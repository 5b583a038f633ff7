"""Times as technicians read them: local wall clock, day first."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def local_str(when: datetime, tz: ZoneInfo) -> str:
    """``Mon 23/11/2026 22:00`` in ``tz``."""
    local = when.astimezone(tz)
    return f"{_DAYS[local.weekday()]} {local:%d/%m/%Y %H:%M}"


def snapshot_time(meta: dict[str, Any], tz: ZoneInfo) -> str:
    """When a snapshot was taken (its meta's ISO ``time``), in ``tz``."""
    try:
        return local_str(datetime.fromisoformat(str(meta["time"])), tz)
    except (KeyError, ValueError):
        return "?"


def age_str(delta: timedelta) -> str:
    """A rounded age: ``29 days``, ``11 months``."""
    days = round(delta.total_seconds() / 86400)
    if days >= 90:
        return f"{round(days / 30.4)} months"
    return f"{days} day{'s' if days != 1 else ''}"
