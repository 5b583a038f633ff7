"""Sizes, durations and ages as people read them, in French ("fr") or English (anything else).

One place for the whole package: e-mail reports, sanity reasons, the dashboard and the CLI say a
size or a delay the same way. French writes a decimal comma and counts in octets (``1,5 Go``),
English a decimal point and bytes (``1.5 GB``); both put a space before the unit. Units are
powers of 1000, as disk vendors and subscribed volumes count them.

Pure functions of their arguments, no dependencies: any layer may import this module.
"""

from __future__ import annotations

import re

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
    """How long a run took, true to what happened: under a minute in seconds (``0,1 s``,
    ``8,4 s``, ``42 s``; a decimal comma in French), then to the minute (``4 min``), from two
    hours on ``3 h 05``. ``s``, ``min`` and ``h`` are SI symbols in both languages."""
    if seconds < 59.5:
        if seconds <= 0:
            return "0 s"
        digits = 1 if seconds < 10 else 0
        text = f"{max(seconds, 0.1):.{digits}f} s"
        return text.replace(".", ",") if _french(language) else text
    minutes = round(seconds / 60)
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d}"


def age(seconds: float, language: str) -> str:
    """How long ago, as a hotline operator reads it: ``5 h 10 min`` under two days, then days
    and hours (``3 j 4 h``, in English ``3 d 4 h``)."""
    hours = int(seconds // 3600)
    if hours >= 48:
        return f"{hours // 24} {'j' if _french(language) else 'd'} {hours % 24} h"
    return f"{hours} h {int(seconds % 3600 // 60):02d} min"


_UNIT_AFTER_NUMBER = re.compile(
    r"(?<=\d) (?=(?:o|Ko|Mo|Go|To|%|s|min|h|j|jours?)(?![\w]))")
_HOURS_MINUTES = re.compile(r"(?<=\d\u00a0h) (?=\d\d\b)")
_BEFORE_COLON = re.compile(r"[ \u00a0\u202f]+:(?=\s|$)")
_BEFORE_PUNCT = re.compile(r"[ \u00a0\u202f]+([;!?])(?=\s|$|[\"'<)])")
_INSIDE_QUOTES = (re.compile(r"«[ \u00a0\u202f]+"), re.compile(r"[ \u00a0\u202f]+»"))


def typography(text: str, language: str) -> str:
    """French typography on text made for a reader: a no-break space (U+00A0) before ":" and
    between a number and its unit (``134\u00a0Mo``, ``10\u00a0%``, ``3\u00a0h\u00a005``), a
    narrow one (U+202F) before ";", "!" and "?", a no-break one inside « guillemets ». Only
    where a space was written: ``ERP01:``, ``http://`` and ``a;b`` are left as they are. Any
    other language: unchanged."""
    if not _french(language):
        return text
    text = _UNIT_AFTER_NUMBER.sub("\u00a0", text)
    text = _HOURS_MINUTES.sub("\u00a0", text)
    text = _BEFORE_COLON.sub("\u00a0:", text)
    text = _INSIDE_QUOTES[1].sub("\u00a0»", _INSIDE_QUOTES[0].sub("«\u00a0", text))
    return _BEFORE_PUNCT.sub("\u202f\\1", text)
