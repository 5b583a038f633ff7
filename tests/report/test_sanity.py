"""Sanity checks against golden files (tests/report/golden/*.json): each scenario is a job's
history and tonight's figures; the golden file holds the flags, in French and English.
Regenerate after a deliberate change with HVB_UPDATE_GOLDEN=1 and review the diff."""

from __future__ import annotations

import json
import os
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from orchestrator.report.sanity import RunFigures, check

GOLDEN = Path(__file__).parent / "golden"
PARIS = ZoneInfo("Europe/Paris")
UPDATE = os.environ.get("HVB_UPDATE_GOLDEN") == "1"
GB = 1_000_000_000
START = datetime(2026, 10, 5, 21, 0, tzinfo=UTC)  # a Monday, 23:00 in Paris


def nights(count: int, volume: float = 108 * GB, files: int = 5000, change: float = 0.02,
           minutes: float = 55, seed: int = 1, weekend_volume: float | None = None
           ) -> list[RunFigures]:
    rng = random.Random(seed)
    out = []
    for i in range(count):
        when = START + timedelta(days=i)
        weekend = when.astimezone(PARIS).weekday() >= 5
        base = weekend_volume if weekend and weekend_volume is not None else volume
        size = int(base * rng.uniform(0.97, 1.03))
        out.append(RunFigures(when, size, int(files * rng.uniform(0.99, 1.01)),
                              int(size * change * rng.uniform(0.8, 1.2)),
                              minutes * 60 * rng.uniform(0.9, 1.1)))
    return out


def tonight(history: list[RunFigures], **changes: Any) -> RunFigures:
    last = history[-1]
    values = {"when": last.when + timedelta(days=1), "bytes_read": last.bytes_read,
              "files": last.files, "bytes_new": last.bytes_new, "duration_s": last.duration_s}
    values.update(changes)
    return RunFigures(**values)


def scenarios() -> dict[str, tuple[list[RunFigures], RunFigures]]:
    normal = nights(20)
    weekly = nights(28, volume=100 * GB, weekend_volume=10 * GB)
    saturday = weekly[:26]  # ends on a Friday: tonight is Saturday
    return {
        "normal-nights": (normal, tonight(normal)),
        "volume-drop": (normal, tonight(normal, bytes_read=41 * GB, bytes_new=int(0.8 * GB))),
        "zero-files": (normal, tonight(normal, files=0, bytes_read=0, bytes_new=0)),
        "change-ratio-spike": (normal, tonight(normal, bytes_new=int(normal[-1].bytes_read
                                                                     * 0.92))),
        "slow-run": (normal, tonight(normal, duration_s=3 * 3600)),
        "fast-run": (normal, tonight(normal, duration_s=4 * 60)),
        "too-little-history": (normal[:2], tonight(normal[:2], bytes_read=41 * GB)),
        "weekend-pattern-saturday-small": (saturday, tonight(saturday, bytes_read=11 * GB,
                                                             bytes_new=int(0.2 * GB))),
        "weekend-pattern-monday-small": (weekly, tonight(weekly, bytes_read=11 * GB,
                                                         bytes_new=int(0.2 * GB))),
    }


def _flags(history: list[RunFigures], run: RunFigures) -> dict[str, list[str]]:
    return {lang: [f"{f.figure}: {f.reason}" for f in check(run, history, PARIS, lang)]
            for lang in ("fr", "en")}


@pytest.mark.parametrize("name", sorted(scenarios()))
def test_golden(name: str) -> None:
    history, run = scenarios()[name]
    got = _flags(history, run)
    path = GOLDEN / f"{name}.json"
    if UPDATE:
        path.write_text(json.dumps(got, indent=1, ensure_ascii=False) + "\n")
    assert got == json.loads(path.read_text())


def test_the_examples_a_client_reads() -> None:
    s = scenarios()
    assert _flags(*s["normal-nights"]) == {"fr": [], "en": []}
    drop = _flags(*s["volume-drop"])["fr"]
    assert drop == ["volume: volume 62 % sous l'habituel (41 Go au lieu de 107 Go)"]
    assert _flags(*s["zero-files"])["fr"][0] == "files: 0 fichier"
    assert _flags(*s["change-ratio-spike"])["fr"] == [
        "change: 92 % des données ont changé : possible chiffrement par un rançongiciel"]
    assert _flags(*s["fast-run"])["fr"] == ["duration: durée 4 min au lieu de 54 min"]
    assert _flags(*s["too-little-history"]) == {"fr": [], "en": []}
    assert _flags(*s["weekend-pattern-saturday-small"]) == {"fr": [], "en": []}
    assert _flags(*s["weekend-pattern-monday-small"])["en"][0].startswith(
        "volume: volume 89 % below usual")
