"""Nights against a baie that lies: the newest restore point deleted on both baies, a
snapshot file planted, padded duplicates meant to push real points out of retention."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from orchestrator.baie.local import LocalTarget
from orchestrator.dashboard.problems import problems
from orchestrator.history.models import AlertRow
from orchestrator.store import format as fmt
from orchestrator.store.open import open_for_writing
from tests.world import Setup


def _snapshot_ids(s: Setup, baie: str) -> list[str]:
    repo = open_for_writing(s.loaded.repository("acme", baie), create=False)
    try:
        return [x.id for x in repo.snapshots()]
    finally:
        repo.close()


def _padded_twin(target: LocalTarget, snap_id: str, extra: int) -> str:
    """The same snapshot with its sealed key padded: under the old format, a valid twin."""
    data = target.get(f"snapshots/{snap_id}")
    parts = fmt._split_snapshot(data, snap_id)
    out = [fmt.SNAP2_MAGIC, len(parts.meta_ct).to_bytes(4, "big"), parts.meta_ct,
           len(parts.segments).to_bytes(4, "big")]
    for segment in parts.segments:
        out += [len(segment).to_bytes(4, "big"), segment]
    sealed = parts.sealed + bytes(extra)
    out += [len(sealed).to_bytes(4, "big"), sealed, len(parts.tree_ct).to_bytes(4, "big"),
            parts.tree_ct, parts.signature]
    blob = b"".join(out)
    twin = fmt.sha256(blob).hex()
    target.put(f"snapshots/{twin}", blob)
    return twin


def test_newest_point_deleted_on_both_baies_is_an_alert_at_the_next_backup(tmp_path: Path
                                                                           ) -> None:
    s = Setup(tmp_path)
    first = s.run("partages")
    s.clock.advance(timedelta(days=1))
    second = s.run("partages")
    assert first.status == second.status == "REUSSIE"
    for baie in ("baie-a", "baie-b"):  # rolled back: the newest point is gone everywhere
        (tmp_path / baie / "acme" / "snapshots" / str(second.snapshot)).unlink()
    s.clock.advance(timedelta(days=1))
    third = s.run("partages")
    missing = [f for f in third.findings if f.kind == "snapshot_missing"]
    assert sorted(f.object for f in missing) == ["site-a", "site-b"]
    assert all(str(second.snapshot)[:12] in f.message for f in missing)
    assert third.status == "AVERTISSEMENT"
    with s.sessions() as session:
        alerts = list(session.scalars(select(AlertRow).where(AlertRow.kind == "rollback")))
    assert len(alerts) == 1 and "gone from baie" in alerts[0].message
    [shown] = [p for p in problems(s.sessions, tz=s.loaded.config.msp.timezone,
                                   now=s.clock.now()) if p.job == "partages"]  # the dashboard
    assert (shown.job, shown.status) == ("partages", "AVERTISSEMENT")
    assert "gone from baie" in shown.message


def test_a_planted_snapshot_is_reported_and_never_counted(tmp_path: Path) -> None:
    s = Setup(tmp_path, vm="\n        retention: {keep_last: 2}")
    one = s.run("erp")
    s.clock.advance(timedelta(days=1))
    two = s.run("erp")
    target = LocalTarget("site-a", tmp_path / "baie-a" / "acme")
    twins = [_padded_twin(target, str(two.snapshot), n) for n in (100, 200)]
    s.clock.advance(timedelta(days=1))
    three = s.run("erp")
    # keep_last 2 on both baies: nights two and three, whatever site-a planted.
    for baie in ("site-a", "site-b"):
        assert _snapshot_ids(s, baie) == [two.snapshot, three.snapshot], baie
    assert one.snapshot not in _snapshot_ids(s, "site-b")
    unknown = [f for f in three.findings if f.kind == "snapshot_unknown"]
    # The copy carries every file by name, planted ones too: both baies report them.
    assert [f.object for f in unknown] == ["site-a", "site-b"]
    assert all(t[:12] in f.message for t in twins for f in unknown)
    planted = tmp_path / "baie-a" / "acme" / "snapshots"
    assert all((planted / t).exists() for t in twins)  # left as they are


def test_verify_compares_the_baie_with_the_history(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    s = Setup(tmp_path)
    s.run("partages")
    s.clock.advance(timedelta(days=1))
    second = s.run("partages")
    clean = cli("verify", "-c", str(s.config), "acme", "--baie", "site-b")
    assert clean.code == 0, clean.out + clean.err
    assert "no problem found" in clean.out
    (tmp_path / "baie-b" / "acme" / "snapshots" / str(second.snapshot)).unlink()
    rolled = cli("verify", "-c", str(s.config), "acme", "--baie", "site-b")
    assert rolled.code == 4
    assert "1 restore point(s) the history committed are gone from baie site-b" in rolled.out
    assert str(second.snapshot)[:12] in rolled.out


def test_a_point_written_by_a_run_killed_before_recording_it_is_adopted_not_alerted(
        tmp_path: Path) -> None:
    """A backup killed between writing its snapshot and recording it: the point is this
    client's (signed, naming its run); the next backup records it instead of calling it
    planted, and it keeps being judged like any other."""
    from orchestrator.history.models import SnapshotRow

    s = Setup(tmp_path)
    first = s.run("partages")
    with s.sessions() as session, session.begin():  # what the kill left: no catalogue row
        for row in session.scalars(select(SnapshotRow)):
            session.delete(row)
    s.clock.advance(timedelta(days=1))
    second = s.run("partages")
    assert [f.kind for f in second.findings if f.kind.startswith("snapshot_")] == []
    assert second.status == "REUSSIE"
    with s.sessions() as session:
        rows = {(r.snapshot_id, r.baie) for r in session.scalars(select(SnapshotRow))}
    assert (str(first.snapshot), "site-a") in rows and (str(first.snapshot), "site-b") in rows


def test_a_point_known_lost_is_marked_once_and_no_longer_reported(
        tmp_path: Path, cli, clock) -> None:  # type: ignore[no-untyped-def]
    """After the alert, the technician records that the point is lost (with why); the next
    nights are REUSSIE again instead of repeating the alert for ever."""
    s = Setup(tmp_path)
    s.run("partages")
    s.clock.advance(timedelta(days=1))
    second = s.run("partages")
    for baie in ("baie-a", "baie-b"):
        (tmp_path / baie / "acme" / "snapshots" / str(second.snapshot)).unlink()
    s.clock.advance(timedelta(days=1))
    assert s.run("partages").status == "AVERTISSEMENT"
    clock.set(s.clock.now())
    lost = str(second.snapshot)[:12]
    refused = cli("snapshots", "-c", str(s.config), "acme/partages", "--mark-lost", lost)
    assert refused.code == 2 and "needs --reason" in refused.err
    present = _snapshot_ids(s, "site-a")[0][:12]
    kept = cli("snapshots", "-c", str(s.config), "acme/partages", "--mark-lost", present,
               "--reason", "essai")
    assert kept.code == 2 and "is on site-a, readable: it is not lost" in kept.err
    for baie in ("site-a", "site-b"):
        done = cli("snapshots", "-c", str(s.config), "acme/partages", "--baie", baie,
                   "--mark-lost", lost, "--reason", "baie restaurée d'une sauvegarde du 24/11")
        assert done.code == 0, done.err
        assert f"restore point {lost} of acme/partages" in done.out
        assert f"recorded as lost on {baie}" in done.out
    s.clock.advance(timedelta(days=1))
    fourth = s.run("partages")
    assert fourth.status == "REUSSIE", [f.message for f in fourth.findings]
