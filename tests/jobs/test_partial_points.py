"""A night where one VM of a job fails and the other is saved: the restore point is partial,
and retention does not let it push a complete point out."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from orchestrator.findings import RunStatus
from orchestrator.store.open import open_for_writing
from tests.world import Setup


def _points(s: Setup) -> list[tuple[str, list[str]]]:
    repo = open_for_writing(s.loaded.repository("acme", "site-a"), create=False)
    try:
        return [(str(x.meta["run"]), list(x.meta.get("incomplete", [])))
                for x in repo.snapshots() if x.meta.get("job") == "erp"]
    finally:
        repo.close()
        repo.target.close()


def test_a_partial_night_keeps_the_last_complete_point(tmp_path: Path) -> None:
    # keep_last: 1; DC01's checkpoint fails on the second night only (24/11 in Paris).
    s = Setup(tmp_path, faults=f"{{kind: checkpoint-failure, target: DC01, "
                               f"dates: [{date(2026, 11, 24).isoformat()}]}}",
              vm="\n        retention: {keep_last: 1}")
    first = s.run("erp")
    assert first.status == RunStatus.REUSSIE
    s.clock.advance(timedelta(days=1))
    second = s.run("erp")
    assert second.status == RunStatus.ECHEC
    points = _points(s)
    # The partial point is kept (newest copy of ERP01), and so is the complete one before it
    # (the only copy of DC01): keep_last 1 counts complete points.
    assert sorted(run for run, _ in points) == sorted([first.uid, second.uid])
    assert dict(points)[second.uid] == ["DC01"] and dict(points)[first.uid] == []
    s.clock.advance(timedelta(days=1))
    third = s.run("erp")
    assert third.status == RunStatus.REUSSIE
    assert _points(s) == [(third.uid, [])]  # a complete point again: the others go
