"""Leases whose holder died on this machine stop counting at once; others wait their expiry."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from orchestrator.baie.local import LocalTarget
from orchestrator.store.locks import Lock, RepositoryLocked
from tests.conftest import REPO

HOLD = """
import sys, time
from pathlib import Path
from orchestrator.baie.local import LocalTarget
from orchestrator.store.locks import Lock
lock = Lock(LocalTarget("site-a", Path(sys.argv[1])), sys.argv[2], sys.argv[3]).acquire()
print("held", flush=True)
time.sleep(600)
"""


def killed_holder(root: Path, kind: str, purpose: str) -> int:
    """A real process that takes a lease on ``root`` and is killed (SIGKILL: no cleanup)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(root), kind, purpose],
                            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    return proc.pid


def leases(target: LocalTarget) -> list[dict[str, object]]:
    return [json.loads(target.get(e.name)) for e in target.list("locks")]


def test_a_killed_prune_does_not_block_the_next_backup(tmp_path: Path) -> None:
    target = LocalTarget("site-a", tmp_path)
    pid = killed_holder(tmp_path, "exclusive", "prune")
    assert [d["pid"] for d in leases(target)] == [pid]  # its lease is still there...
    with Lock(target, "shared", "backup acme/erp").acquire():  # ...and blocks nothing
        assert [d["purpose"] for d in leases(target)] == ["backup acme/erp"]


def test_a_killed_backup_does_not_block_prune(tmp_path: Path) -> None:
    target = LocalTarget("site-a", tmp_path)
    killed_holder(tmp_path, "shared", "backup acme/erp")
    with Lock(target, "exclusive", "prune").acquire():
        pass
    assert leases(target) == []


@pytest.mark.skipif(sys.platform != "linux", reason="start times are read from /proc")
def test_a_reused_pid_does_not_keep_a_dead_lease(tmp_path: Path) -> None:
    """The pid now belongs to another process (here: ours) started at another time."""
    target = LocalTarget("site-a", tmp_path)
    old = Lock(target, "exclusive", "prune")
    old._write()
    doc = json.loads(target.get(old.name))
    doc["started"] = "1"  # the process that held it started long ago
    target.put(old.name, json.dumps(doc).encode())
    with Lock(target, "shared", "backup acme/erp").acquire():
        pass


def test_a_live_holder_and_another_machine_s_holder_keep_their_lease(tmp_path: Path) -> None:
    target = LocalTarget("site-a", tmp_path)
    elsewhere = Lock(target, "shared", "backup acme/compta")
    elsewhere._write()
    doc = json.loads(target.get(elsewhere.name))
    doc.update(host="autre-serveur", pid=999_999_999)  # no such pid here: it is not ours
    target.put(elsewhere.name, json.dumps(doc).encode())
    with pytest.raises(RepositoryLocked) as raised:
        Lock(target, "exclusive", "prune").acquire()
    message = str(raised.value)
    assert "backup acme/compta on autre-serveur (pid 999999999) since " in message
    here = f"on {socket.gethostname()} \\(pid {os.getpid()}\\)"
    with (Lock(target, "shared", "backup acme/erp").acquire(),  # a live one, here
          pytest.raises(RepositoryLocked, match=here)):
        Lock(target, "exclusive", "prune").acquire()


def test_waiting_for_a_lease_says_who_holds_it(tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    target = LocalTarget("site-a", tmp_path)
    caplog.set_level(logging.INFO, "orchestrator.store.locks")
    with (Lock(target, "shared", "backup acme/erp").acquire(),
          pytest.raises(RepositoryLocked)):
        Lock(target, "exclusive", "prune").acquire(wait=timedelta(seconds=0.2), poll_s=0.05)
    waiting = [r.getMessage() for r in caplog.records if "waiting" in r.getMessage()]
    assert len(waiting) == 1  # said once, not at every poll
    assert waiting[0].startswith("site-a: prune waiting for backup acme/erp on "
                                 f"{socket.gethostname()} (pid {os.getpid()}) since ")


def test_a_lease_from_before_a_restart_is_released_but_not_one_of_a_namesake(
        tmp_path: Path) -> None:
    target = LocalTarget("site-a", tmp_path)
    lease = Lock(target, "exclusive", "prune")
    lease._write()
    doc = json.loads(target.get(lease.name))
    if not (doc.get("machine") and doc.get("boot")):
        pytest.skip("this machine does not say its id and boot")
    namesake = {**doc, "machine": "another-installation", "boot": "another-boot"}
    target.put(lease.name, json.dumps(namesake).encode())
    with pytest.raises(RepositoryLocked):  # same name, another machine: left to expire
        Lock(target, "shared", "backup acme/erp").acquire()
    target.put(lease.name, json.dumps({**doc, "boot": "before-the-restart"}).encode())
    with Lock(target, "shared", "backup acme/erp").acquire():
        pass


def test_a_backup_that_meets_a_prune_waits_for_it_then_backs_up(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A prune deleting on the baie when a backup starts: the backup waits for its end
    (a missed night otherwise), then runs whole."""
    import threading

    from orchestrator.mover.source import LocalSource
    from orchestrator.store.backup import backup_paths
    from tests.store.helpers import Store

    repo = Store(tmp_path).writer_repo()
    source = tmp_path / "partages"
    source.mkdir()
    (source / "devis.txt").write_bytes(b"devis 2026 " * 5000)
    caplog.set_level(logging.INFO, "orchestrator.store.locks")
    prune = Lock(repo.target, "exclusive", "prune").acquire()
    done: list[object] = []
    backup = threading.Thread(target=lambda: done.append(backup_paths(
        repo, LocalSource("l"), [str(source)], {"job": "partages"},
        poll_s=0.05)))
    backup.start()
    deadline = time.monotonic() + 30
    while not any("backup partages waiting for prune" in r.getMessage() for r in caplog.records):
        assert backup.is_alive() and time.monotonic() < deadline, "the backup did not wait"
        time.sleep(0.01)
    assert done == []
    prune.release()
    backup.join(timeout=60)
    assert len(done) == 1
    assert len(repo.snapshots()) == 1
    repo.close()
