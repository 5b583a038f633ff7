"""An agent killed (SIGKILL) in the middle of a backup: its next start closes the run as
ECHEC HVB-RUN-INTERRUPTED, as the central scheduler closes its own killed runs, and the
server records it once, with the hotline's alert, and the client's report says ECHEC."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from orchestrator.clock import FrozenClock
from orchestrator.history.models import AlertRow, EmailRow
from orchestrator.jobs.context import RunContext
from orchestrator.jobs.morning import tell
from tests.agent.served import serve_tls
from tests.agent.test_agent_run import AGENT, agent_run, central_of, enroll, runs
from tests.agent.test_late_delivery import NBSP, NNBSP, _mail
from tests.conftest import REPO

SLOW = "        simulated: {seed: 4, share_files: 12}\n"
SLOW_HOST = "        simulated: {seed: 4, share_files: 12, faults: [{kind: slow, delay_s: 1}]}\n"


def _text(row: EmailRow) -> str:
    body = _mail(row).get_body(("plain",))
    assert body is not None
    return str(body.get_content())  # type: ignore[attr-defined]


def _running(history: Path) -> bool:
    if not history.exists():
        return False
    try:
        with sqlite3.connect(f"file:{history}?mode=ro", uri=True, timeout=1) as db:
            return bool(db.execute("SELECT count(*) FROM runs WHERE state = 'running'")
                        .fetchone()[0])
    except sqlite3.OperationalError:  # the agent is creating it
        return False


def test_an_agent_killed_mid_run_delivers_it_as_interrupted_once(  # type: ignore[no-untyped-def]
        cli, tmp_path: Path, clock) -> None:
    central = central_of(tmp_path, clock)
    text = central.path.read_text(encoding="utf-8")
    assert SLOW in text
    central.path.write_text(text.replace(SLOW, SLOW_HOST, 1), encoding="utf-8")
    folder = tmp_path / "agent"
    with serve_tls(central.app, tmp_path) as (url, ca):
        enroll(cli, central, url, ca, folder)
        assert agent_run(folder, "2026-11-23T20:00:00+00:00").code == 0
        proc = subprocess.Popen(
            [sys.executable, "-c", AGENT, "2026-11-23T21:05:00+00:00", "agent", "run",
             "--once", "--state-dir", str(folder)], cwd=REPO, env=dict(os.environ),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while not _running(folder / "history.db"):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the agent never started the run"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        assert runs(central) == []  # nothing delivered: it was killed before

        back = agent_run(folder, "2026-11-23T21:20:00+00:00")
        assert back.code == 0, back.err
        assert "1 run(s) delivered" in back.out, back.out
        assert "0 run(s)" in back.out  # the night's run is the killed one: not run again
        again = agent_run(folder, "2026-11-23T21:25:00+00:00")
        assert again.code == 0, again.err

    [run] = runs(central)
    assert (run.status, run.error_code, run.claimed_by) == (
        "ECHEC", "HVB-RUN-INTERRUPTED", "agent:srv-acme")
    assert "interrupted" in (run.error_message or "")
    with central.sessions() as session:
        [alert] = session.scalars(select(AlertRow))
    assert (alert.kind, alert.run_id) == ("echec", run.id)
    assert "was interrupted" in alert.message

    # The morning's mails: the hotline's alert and the client's report, as for a run the
    # central scheduler lost the same way.
    morning = FrozenClock(datetime(2026, 11, 24, 6, 30, tzinfo=UTC))  # 07:30 in Paris
    tell(RunContext(central.loaded, morning, central.sessions), morning.now())
    with central.sessions() as session:
        mails = {m.kind: m for m in session.scalars(select(EmailRow))}
    told = _text(mails["alert"])
    assert (f"ACME SARL (acme), tâche partages — sauvegarde en échec{NBSP}: l'exécution "
            "s'est arrêtée avant la fin") in told, told
    assert "HVB-RUN-INTERRUPTED" in told and f"exécution{NBSP}: {run.uid}" in told
    digest = _text(mails["digest"])
    assert f"== partages (D:\\Partages){NBSP}: Échec" in digest, digest
    assert (f"Erreur{NBSP}: La sauvegarde s'est arrêtée avant la fin{NNBSP}; notre hotline est "
            "prévenue") in digest
    assert "HVB-" not in digest  # the technical detail is the hotline's
