"""``hvbackup nights --agent DIR`` (the demo's second site): the site's agent runs in a process
of its own at its jobs' times; with the central server stopped one night, the agent backs up
on time all the same and its run reaches the server, whole and once, when it is back."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from orchestrator.agent import state as agent_state
from orchestrator.history.models import BaieUsageRow, EmailRow, RunEventRow, RunRow, SnapshotRow
from tests.agent.test_agent_run import central_of
from tests.agent.test_killed_agent import _text
from tests.agent.test_late_delivery import NBSP
from tests.servers import free_port


def test_a_night_with_the_server_stopped_arrives_late_but_whole(  # type: ignore[no-untyped-def]
        cli, tmp_path: Path, clock) -> None:
    central = central_of(tmp_path, clock)
    answer = central.web.post("/api/agent/v1/enroll", json={
        "token": central.enrollment("acme-siege"), "name": "srv-acme", "version": "1.0.0"})
    assert answer.status_code == 200, answer.text
    folder = tmp_path / "agent"
    port = free_port()
    agent_state.save(folder, agent_state.AgentState(f"http://127.0.0.1:{port}", "acme-siege",
                                                    "srv-acme", None),
                     answer.json()["agent_token"])
    # partages (the agent's site) and central-files (the server's) at 22:00; the server is
    # down from 21:30 on the 24th to 07:30 on the 25th.
    done = cli("nights", "-c", str(central.path), "--start", "2026-11-23", "--nights", "2",
               "--agent", str(folder), "--stopped", "2026-11-24T21:30/2026-11-25T07:30")
    assert done.code == 0, done.err
    lines = done.out.splitlines()
    assert any(ln.startswith("Tue 24/11/2026 22:00  agent srv-acme: ") and
               "the server cannot be reached, the runs wait in the spool" in ln
               for ln in lines), done.out
    assert "Wed 25/11/2026 07:30  agent srv-acme: 1 run(s) delivered" in done.out
    late_line = next(ln for ln in lines if "delivered late" in ln)
    assert late_line.startswith("Wed 25/11/2026 07:30  agent srv-acme: delivered late: "
                                "acme/partages of Tue 24/11/2026 22:00 (run "), late_line
    assert "), whole: " in late_line and "step(s)" in late_line
    # The server maintains what the agent wrote: the agent writes with the server's key.
    assert "prune of acme failed" not in done.out + done.err, done.out
    kept = central.loaded.state_dir / "keys" / "acme.writer"
    assert (folder / "keys" / "acme.writer").read_text() == kept.read_text()

    with central.sessions() as session:
        got = {(r.scheduled_for.day, r.claimed_by or ""): r for r in session.scalars(
            select(RunRow).where(RunRow.claimed_by == "agent:srv-acme"))}
        assert sorted((day, r.status) for (day, _who), r in got.items()) == [
            (23, "REUSSIE"), (24, "REUSSIE")]
        late = got[(24, "agent:srv-acme")]
        lines_kept = session.scalars(select(RunEventRow.message).where(
            RunEventRow.run_id == late.id)).all()
        central_runs = session.scalars(select(RunRow.status).where(
            RunRow.claimed_by.is_not(None), RunRow.claimed_by != "agent:srv-acme")).all()
    assert late.files and late.files >= 12 and late.bytes_read  # whole: its figures...
    assert any("finished: REUSSIE" in m for m in lines_kept)  # ...and its log...
    with central.sessions() as session:  # ...and its restore point, catalogued by the server
        points = session.execute(select(SnapshotRow.baie, SnapshotRow.run_id).where(
            SnapshotRow.run_id.in_([r.id for r in got.values()]))
            .order_by(SnapshotRow.taken_at)).all()
        digests = {m.created_at.day: m for m in session.scalars(
            select(EmailRow).where(EmailRow.kind == "digest"))}
        measured = session.execute(select(BaieUsageRow.baie, BaieUsageRow.bytes_stored)
                                   .where(BaieUsageRow.baie == "baie-acme")).all()
    assert points == [("baie-acme", got[(23, "agent:srv-acme")].id), ("baie-acme", late.id)]
    # The server measured the volume the agent's baie holds (reports, dashboard, quota).
    assert measured and all(size > 10_000 for _baie, size in measured), measured
    report = _text(digests[25])
    partages = report[report.index("== partages"):]
    assert f"Points de restauration{NBSP}: 2" in partages.split("\n\n")[0], report
    assert len(central_runs) == 1  # the server's own job ran the night it was up only
