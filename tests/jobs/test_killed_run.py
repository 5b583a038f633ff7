"""A run killed (SIGKILL) in the middle of a VM backup: the next start closes it as ECHEC, the
next run sweeps the checkpoint it left and succeeds."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from orchestrator.history.models import AlertRow, RunRow
from orchestrator.jobs.context import close_interrupted_runs
from tests.conftest import REPO
from tests.world import CONFIG, SIMULATED, Setup


@pytest.mark.slow
def test_killed_vm_backup_is_closed_and_cleaned_by_the_next_run(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    slow = tmp_path / "slow.yaml"  # the same setup, with a host that answers slowly
    slow.write_text(CONFIG.format(root=tmp_path, faults="{kind: slow, delay_s: 1.5}",
                                  consistency="application", simulated=SIMULATED, sql="", vm=""))
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator.cli.main", "backup", "-c",
                             str(slow), "acme/erp"], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    state = tmp_path / "state" / "simulated" / "acme" / "hv01" / "state.json"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        if state.exists():
            vms = json.loads(state.read_text())["vms"]
            if any(cp["name"].startswith("hvbackup-") for vm in vms.values()
                   for cp in vm["checkpoints"]):
                break
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert [c["name"] for c in s.host().run("Get-HvbInventory")["leftovers"]["checkpoints"]]
    with s.sessions() as session:
        assert [r.state for r in session.scalars(select(RunRow))] == ["running"]

    assert len(close_interrupted_runs(s.sessions, s.clock.now())) == 1
    with s.sessions() as session:  # the hotline is told, as of any ECHEC
        [alert] = session.scalars(select(AlertRow))
        assert alert.kind == "echec" and "was interrupted" in alert.message
        [killed_run] = session.scalars(select(RunRow))
        assert {st.status for st in killed_run.steps} <= {"ok", "failed"}  # none left running
    result = s.run("erp")
    assert result.status == "REUSSIE", result
    assert s.host().run("Get-HvbInventory")["leftovers"]["checkpoints"] == []
    with s.sessions() as session:
        runs = {r.uid: r for r in session.scalars(select(RunRow))}
    killed = next(r for uid, r in runs.items() if uid != result.uid)
    assert (killed.status, killed.error_code) == ("ECHEC", "HVB-RUN-INTERRUPTED")
