"""A files job read as the onboarded account: a file or folder whose own NTFS permissions
refuse that account (inheritance disabled: Administrators and SYSTEM only) is refused through
the per-run share although the share grants Read (the stricter of share and NTFS wins). The run
names it and reads everything else: AVERTISSEMENT with the list, not a silent skip and not a
failed night (docs/host-scripts.md, "Files the account may not read")."""

from __future__ import annotations

import hashlib
from pathlib import Path

from sqlalchemy import select

from orchestrator.history.models import RunRow, RunStepRow
from tests.world import SIMULATED, Setup

JEA = SIMULATED + ", jea: true"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_file_and_a_folder_the_account_may_not_read_are_named_and_the_rest_is_read(
        tmp_path: Path) -> None:
    s = Setup(tmp_path, simulated=JEA, vm="\n        mode: export")
    host = s.host()
    live = host.local_path("D:\\Partages")
    private = live / "Direction"
    private.mkdir()
    (private / "salaires.xlsx").write_bytes(b"confidentiel")
    (live / "dossier1" / "contrat.docx").write_bytes(b"signed")
    host.world.ntfs_protect("D:\\Partages\\Direction")
    host.world.ntfs_protect("D:\\Partages\\dossier1\\contrat.docx")

    result = s.run("partages")

    assert result.status == "AVERTISSEMENT", result
    [finding] = [f for f in result.findings if f.kind == "files_unreadable"]
    assert finding.object == "D:\\Partages" and finding.code == "HVB-SOURCE-DENIED"
    assert "2 file(s) or folder(s) not backed up" in finding.message
    assert "D:\\Partages\\Direction" in finding.message
    assert "D:\\Partages\\dossier1\\contrat.docx" in finding.message
    with s.sessions() as session:
        run = session.scalars(select(RunRow).where(RunRow.uid == result.uid)).one()
        read = session.scalars(select(RunStepRow).where(
            RunStepRow.run_id == run.id, RunStepRow.name == "read")).one()
        assert read.status == "ok"
    out = tmp_path / "out"
    s.restore("partages", out)
    restored = out / "D" / "Partages"
    names = {p.relative_to(restored).as_posix() for p in restored.rglob("*") if p.is_file()}
    readable = {p.relative_to(live).as_posix() for p in live.rglob("*") if p.is_file()
                and not p.name.endswith("-00001.txt")} - {
        "Direction/salaires.xlsx", "dossier1/contrat.docx"}
    assert names == readable  # every other file, with its bytes
    assert all(sha(restored / n) == sha(live / n) for n in names)
    assert host.run("Get-HvbInventory")["leftovers"]["shadow_copies"] == []


def test_a_file_protected_after_the_copy_is_still_read_from_the_copy(tmp_path: Path) -> None:
    """The copy keeps the permissions the volume had when it was made."""
    s = Setup(tmp_path, simulated=JEA, vm="\n        mode: export")
    host = s.host()
    made = host.run("New-HvbShadowCopy", Path=["D:\\Partages"], RunId="r1")
    host.world.ntfs_protect("D:\\Partages\\dossier1")
    from orchestrator.mover.open import open_source

    source = open_source(s.loaded.host("acme/hv01"))
    exposed = made["paths"][0]["exposed"]
    assert not any(f.denied for f in source.walk(exposed))
    host.run("Remove-HvbShadowCopy", ShadowId=[made["shadows"][0]["id"]], RunId="r1",
             LinkPath=[made["shadows"][0]["link"]], ShareName=[made["shadows"][0]["share"]])
