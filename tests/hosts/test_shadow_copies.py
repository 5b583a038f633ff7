"""New-HvbShadowCopy and Remove-HvbShadowCopy on the simulated host: nothing left behind when
a copy is made but cannot be exposed, and the removal touches nothing of another run."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestrator.clock import FrozenClock
from orchestrator.errors import ScriptFailed
from orchestrator.hosts.simulated import Fault
from tests.hosts.test_simulated import make_host


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 11, 23, 21, 0, tzinfo=UTC))


def _devices(root: Path) -> list[str]:
    devices = root / "devices"
    return sorted(p.name for p in devices.iterdir()) if devices.exists() else []


def test_a_copy_made_but_not_exposed_is_removed_with_the_call_s_others(
        tmp_path: Path, clock: FrozenClock) -> None:
    """DiskShadow creates the copy of the second volume, then fails to expose it: that copy,
    and the first volume's copy, mount folder and share, are removed before the error."""
    host = make_host(tmp_path, clock, Fault("expose-failure", target="D:\\Partages\\Data\\"))
    host.local_path("D:\\Partages\\Data\\Plans").mkdir(parents=True)
    host.world.state["mount_points"] = ["D:\\Partages\\Data\\"]
    host.world.save()
    with pytest.raises(ScriptFailed) as info:
        host.run("New-HvbShadowCopy", Path=["D:\\Partages\\dossier0", "D:\\Partages\\Data\\Plans"],
                 RunId="r1")
    assert info.value.script_code == "VSS_LINK_FAILED"
    assert "D:\\Partages\\Data\\" in info.value.message
    assert host.world.state["shadow_copies"] == {}
    assert _devices(tmp_path) == []
    for mount in ("C:\\ProgramData\\hvbackup\\shadow\\r1-1",
                  "C:\\ProgramData\\hvbackup\\shadow\\r1-2"):
        assert not host.local_path(mount).is_symlink() and not host.local_path(mount).exists()
    assert not (tmp_path / "shares").exists() or list((tmp_path / "shares").iterdir()) == []
    assert host.run("Get-HvbInventory")["leftovers"]["shadow_copies"] == []


def test_a_run_removes_only_its_own_shares(tmp_path: Path, clock: FrozenClock) -> None:
    """Remove-HvbShadowCopy -RunId r1 refuses another run's share, or a staging share, before
    anything is removed: the other run keeps reading its copy."""
    host = make_host(tmp_path, clock)
    mine = host.run("New-HvbShadowCopy", Path=["D:\\Partages"], RunId="r1")["shadows"][0]
    other = host.run("New-HvbShadowCopy", Path=["D:\\Partages"], RunId="r1-2")["shadows"][0]
    for share in (other["share"], "hvb-r2-1$", "hvb-r1-sql$", "hvb-r1-vm$"):
        with pytest.raises(ScriptFailed) as info:
            host.run("Remove-HvbShadowCopy", ShadowId=[mine["id"]], RunId="r1",
                     ShareName=[mine["share"], share])
        assert info.value.script_code == "SHARE_OTHER_RUN" and share in info.value.message
    assert (tmp_path / "shares" / other["share"]).is_symlink()  # r1-2 still reads its copy
    assert (tmp_path / "shares" / mine["share"]).is_symlink()  # nothing removed at all
    assert set(host.world.state["shadow_copies"]) == {mine["id"], other["id"]}
    removed = host.run("Remove-HvbShadowCopy", ShadowId=[mine["id"]], RunId="r1",
                       ShareName=[mine["share"].upper()], LinkPath=[mine["link"]])
    assert removed["shares"] == [{"name": "HVB-R1-1$", "removed": True}]
    assert set(host.world.state["shadow_copies"]) == {other["id"]}


@pytest.mark.parametrize("link", [
    "D:\\Partages\\dossier0",  # exists
    "D:\\Partages\\nothing-here",  # does not
    "C:\\Windows\\System32\\config",  # exists on any host
    "C:\\ProgramData\\hvbackup\\shadow\\r2-1",  # another run's mount name, absent
])
def test_a_refused_link_path_says_nothing_of_whether_it_exists(
        tmp_path: Path, clock: FrozenClock, link: str) -> None:
    host = make_host(tmp_path, clock)
    host.local_path("C:\\Windows\\System32\\config").mkdir(parents=True)
    mine = host.run("New-HvbShadowCopy", Path=["D:\\Partages"], RunId="r1")["shadows"][0]
    with pytest.raises(ScriptFailed) as info:
        host.run("Remove-HvbShadowCopy", ShadowId=[mine["id"]], RunId="r1", LinkPath=[link])
    assert info.value.script_code == "PATH_NOT_ALLOWED"
    assert info.value.message.endswith(
        f": {link} is not a mount folder of shadow copy {mine['id']} of run r1 on acme/hv01; "
        "hvbackup removes no other folder.")
    assert mine["id"] in host.world.state["shadow_copies"]


def test_a_removal_repeated_after_it_succeeded_still_succeeds(
        tmp_path: Path, clock: FrozenClock) -> None:
    """The answer of the first call lost, the orchestrator calls again: the record lines are
    struck by then, and the run's own mount folder name is still accepted."""
    host = make_host(tmp_path, clock)
    mine = host.run("New-HvbShadowCopy", Path=["D:\\Partages"], RunId="r1")["shadows"][0]
    call = {"ShadowId": [mine["id"]], "RunId": "r1", "LinkPath": [mine["link"]],
            "ShareName": [mine["share"]]}
    host.run("Remove-HvbShadowCopy", **call)
    again = host.run("Remove-HvbShadowCopy", **call)
    assert again["shadow_copies"] == [{"id": mine["id"], "removed": False,
                                       "already_absent": True}]
    assert again["links"] == [{"path": mine["link"], "removed": False}]
