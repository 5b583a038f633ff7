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
