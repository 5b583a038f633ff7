"""Is tonight's run usual? The checks a client was told to do by eye, done for them.

For each figure of a successful run (volume read, number of files, share of data that changed,
duration), the usual band is learned from the job's last successful runs: the median and a
robust spread (median absolute deviation), about 14 runs, only the same kind of day (weekday or
weekend) when the job's weekends clearly differ. A run outside a band is flagged INHABITUELLE
with a plain reason. Nothing here changes a run's status. Pure functions, no I/O.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from orchestrator.humanize import duration, size

WINDOW = 14  # successful runs the band is learned from
MIN_HISTORY = 3  # below this, no band: too little to call anything unusual
RANSOM_RATIO = 0.5  # half the data changed in one night


@dataclass(frozen=True)
class RunFigures:
    when: datetime
    bytes_read: int
    files: int
    bytes_new: int
    duration_s: float

    @property
    def change_ratio(self) -> float:
        return self.bytes_new / self.bytes_read if self.bytes_read else 0.0


@dataclass(frozen=True)
class Band:
    median: float
    low: float
    high: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


@dataclass(frozen=True)
class Flag:
    figure: str  # volume | files | change | duration
    reason: str  # the sentence shown to the client, in their language
    value: float
    usual: float


# Relative tolerance per figure: whatever the spread, a change smaller than this is usual.
TOLERANCE = {"volume": 0.25, "files": 0.25, "duration": 0.6}


def band(values: list[float], figure: str) -> Band | None:
    if len(values) < MIN_HISTORY:
        return None
    median = statistics.median(values)
    mad = statistics.median(abs(v - median) for v in values)
    spread = max(3 * 1.4826 * mad, TOLERANCE[figure] * median)
    return Band(median, max(0.0, median - spread), median + spread)


def _weekend(when: datetime, tz: ZoneInfo) -> bool:
    return when.astimezone(tz).weekday() >= 5


def comparable(history: list[RunFigures], when: datetime, tz: ZoneInfo) -> list[RunFigures]:
    """The last successful runs to compare with, same kind of day when weekends differ."""
    recent = history[-WINDOW * 2:]
    weekend = [r for r in recent if _weekend(r.when, tz)]
    weekdays = [r for r in recent if not _weekend(r.when, tz)]
    if len(weekend) >= MIN_HISTORY and len(weekdays) >= MIN_HISTORY:
        w_med = statistics.median(r.bytes_read for r in weekend)
        d_med = statistics.median(r.bytes_read for r in weekdays)
        if max(w_med, d_med) > 1.5 * max(1, min(w_med, d_med)):
            same = weekend if _weekend(when, tz) else weekdays
            return same[-WINDOW:]
    return recent[-WINDOW:]


def check(run: RunFigures, history: list[RunFigures], tz: ZoneInfo,
          language: str = "fr") -> list[Flag]:
    """Flags for ``run`` against ``history`` (earlier successful runs, oldest first)."""
    words = _WORDS[language]
    base = comparable(history, run.when, tz)
    flags: list[Flag] = []
    if run.files == 0 and any(r.files > 0 for r in history[-WINDOW:]):
        usual = statistics.median(r.files for r in history[-WINDOW:])
        flags.append(Flag("files", words["zero_files"], 0, usual))
    volume = band([float(r.bytes_read) for r in base], "volume")
    if volume and not volume.contains(run.bytes_read):
        share = abs(run.bytes_read - volume.median) / volume.median * 100 if volume.median else 0
        way = words["below"] if run.bytes_read < volume.median else words["above"]
        flags.append(Flag("volume", words["volume"].format(
            pct=f"{share:.0f}", way=way, value=size(run.bytes_read, language),
            usual=size(volume.median, language)), run.bytes_read, volume.median))
    files = band([float(r.files) for r in base], "files")
    if files and run.files > 0 and not files.contains(run.files):
        flags.append(Flag("files", words["files"].format(
            value=run.files, usual=f"{files.median:.0f}"), run.files, files.median))
    if len(base) >= MIN_HISTORY and run.change_ratio >= RANSOM_RATIO:
        usual_ratio = statistics.median(r.change_ratio for r in base)
        if usual_ratio < RANSOM_RATIO / 2:
            flags.append(Flag("change", words["change"].format(pct=f"{run.change_ratio * 100:.0f}"),
                              run.change_ratio, usual_ratio))
    took = band([r.duration_s for r in base], "duration")
    if took and took.median >= 60 and not took.contains(run.duration_s):
        flags.append(Flag("duration", words["duration"].format(
            value=duration(run.duration_s, language), usual=duration(took.median, language)),
            run.duration_s, took.median))
    return flags


_WORDS = {
    "fr": {
        "zero_files": "0 fichier",
        "below": "sous", "above": "au-dessus de",
        "volume": "volume {pct} % {way} l'habituel ({value} au lieu de {usual})",
        "files": "{value} fichiers au lieu de {usual} habituellement",
        "change": "{pct} % des données ont changé : possible chiffrement par un rançongiciel",
        "duration": "durée {value} au lieu de {usual}",
    },
    "en": {
        "zero_files": "0 files",
        "below": "below", "above": "above",
        "volume": "volume {pct} % {way} usual ({value} instead of {usual})",
        "files": "{value} files instead of the usual {usual}",
        "change": "{pct} % of the data changed: possible encryption by ransomware",
        "duration": "took {value} instead of {usual}",
    },
}
