"""Forty simulated nights with keep_days: 30, and a prune racing a backup."""

from __future__ import annotations

import hashlib
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orchestrator.clock import FrozenClock
from orchestrator.jobs.run import run_job
from orchestrator.mover.source import LocalSource
from orchestrator.store.backup import Backup
from orchestrator.store.locks import Lock
from orchestrator.store.open import open_for_reading, open_for_writing
from orchestrator.store.prune import prune
from orchestrator.store.restore import Restorer, local_relative
from orchestrator.store.verify import verify
from tests.world import Setup

DISK = "D:\\Hyper-V\\ERP01\\Virtual Hard Disks\\ERP01.vhdx"


@pytest.mark.slow
def test_forty_nights_keep_thirty_restorable_points_on_both_baies(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    s.clock = FrozenClock(datetime(2026, 10, 1, 20, 0, tzinfo=UTC))  # 22:00 in Paris
    s.ctx.clock = s.clock
    ref = s.loaded.job("acme/erp")
    on_day: dict[str, str] = {}
    for night in range(40):
        result = run_job(s.ctx, ref, scheduled_for=s.clock.now(), trigger="schedule")
        assert result.status == "REUSSIE", (night, result)
        on_day[result.snapshot or ""] = hashlib.sha256(
            s.host().local_path(DISK).read_bytes()).hexdigest()
        s.clock.advance(timedelta(days=1))
    counts = {}
    for baie in ("site-a", "site-b"):
        repo = open_for_writing(s.loaded.repository("acme", baie))
        snaps = [x for x in repo.snapshots() if x.meta["job"] == "erp"]
        counts[baie] = sorted(x.id for x in snaps)
        prune(repo)
        assert verify(repo).ok
        repo.close()
    assert 30 <= len(counts["site-a"]) <= 31
    assert counts["site-a"] == counts["site-b"]
    repo = open_for_reading(s.loaded.repository("acme", "site-b"), s.key, tmp_path / "rc")
    repo.sync_index()
    snaps = [x for x in repo.snapshots() if x.meta["job"] == "erp"]
    for info in (snaps[0], snaps[-1]):  # the oldest and the newest
        out = tmp_path / f"out-{info.id[:8]}"
        Restorer(repo, s.key).restore(info, out)
        restored = out / local_relative(DISK)
        assert hashlib.sha256(restored.read_bytes()).hexdigest() == on_day[info.id]
    repo.close()


def test_prune_waits_for_a_running_backup_and_loses_nothing(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    s.run("partages")  # a first restore point
    repo = open_for_writing(s.loaded.repository("acme", "site-a"))
    lease = Lock(repo.target, "shared", "backup in progress").acquire()
    # A backup in progress: its packs are uploaded, its snapshot not written yet.
    backup = Backup(repo, now=s.clock.now)
    src = tmp_path / "new-data"
    src.mkdir()
    (src / "rapport.txt").write_bytes(b"nouveau rapport " * 50_000)
    backup.add_path(LocalSource("l"), str(src))
    outcome: dict[str, object] = {}

    def pruning() -> None:
        other = open_for_writing(s.loaded.repository("acme", "site-a"))
        try:
            outcome["report"] = prune(other, wait=timedelta(seconds=30))
        finally:
            other.close()

    thread = threading.Thread(target=pruning)
    thread.start()
    time.sleep(1.0)
    assert thread.is_alive(), "prune must wait for the backup's lease"
    info = backup.commit({"client": "acme", "job": "manual"})
    lease.release()
    thread.join(timeout=60)
    assert "report" in outcome
    reader = open_for_reading(s.loaded.repository("acme", "site-a"), s.key, tmp_path / "rc")
    reader.sync_index()
    assert verify(reader, subset=1.0, key=s.key).ok
    out = tmp_path / "out"
    Restorer(reader, s.key).restore(reader.find_snapshot(info.id), out)
    assert (out / local_relative(str(src / "rapport.txt"))).read_bytes() == \
        b"nouveau rapport " * 50_000
    reader.close()
    repo.close()
