"""Sizes, durations and ages as people read them, in French ("fr") or English (anything else).

One place for the whole package: e-mail reports, sanity reasons, the dashboard and the CLI say a
size or a delay the same way. French writes a decimal comma and counts in octets (``1,5 Go``),
English a decimal point and bytes (``1.5 GB``); both put a space before the unit. Units are
powers of 1000, as disk vendors and subscribed volumes count them.

Pure functions of their arguments, no dependencies: any layer may import this module.
"""

from __future__ import annotations

_UNITS = {"fr": ("o", "Ko", "Mo", "Go", "To"), "en": ("B", "KB", "MB", "GB", "TB")}


def _french(language: str) -> bool:
    return language == "fr"


def size(n: float, language: str, *, decimals: int | None = None) -> str:
    """``n`` bytes in the largest unit under 1000 of it (terabytes at most).

    Whole bytes always; above that, by default one decimal below 10 and none from 10 up
    (``4,2 Go``, ``41 Go``, ``107 GB``), which is what a report or a page needs. ``decimals``
    fixes the decimals of every unit above bytes instead (``human_bytes`` in the CLI: 1).
    """
    units = _UNITS["fr" if _french(language) else "en"]
    unit = units[0]
    for unit in units:
        if abs(n) < 1000 or unit == units[-1]:
            break
        n /= 1000
    if unit == units[0]:
        digits = 0
    elif decimals is not None:
        digits = decimals
    else:
        digits = 0 if abs(n) >= 10 else 1
    text = f"{n:.{digits}f} {unit}"
    return text.replace(".", ",") if _french(language) else text


def duration(seconds: float, language: str) -> str:
    """How long a run took, to the minute: ``4 min`` (1 min at least), from two hours on
    ``3 h 05``. The same in both languages: ``min`` and ``h`` are SI symbols."""
    minutes = round(seconds / 60)
    if minutes < 120:
        return f"{max(minutes, 1)} min"
    return f"{minutes // 60} h {minutes % 60:02d}"


def age(seconds: float, language: str) -> str:
    """How long ago, as a hotline operator reads it: ``5 h 10 min`` under two days, then days
    and hours (``3 j 4 h``, in English ``3 d 4 h``)."""
    hours = int(seconds // 3600)
    if hours >= 48:
        return f"{hours // 24} {'j' if _french(language) else 'd'} {hours % 24} h"
    return f"{hours} h {int(seconds % 3600 // 60):02d} min"
