"""`hvbackup acknowledge`: the dashboard's "Prendre en charge" from a terminal; it holds over
the next failures of the same job."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from orchestrator.dashboard.accounts import add_user
from orchestrator.dashboard.problems import problems
from orchestrator.history.models import AuditRow
from tests.world import Setup


def test_acknowledge_the_last_failure_once_for_the_outage(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    s = Setup(tmp_path, faults="{kind: unreachable}")
    add_user(s.sessions, "marie", "hotline password 1", "hotline", None, "t", s.clock.now())
    add_user(s.sessions, "acme-it", "acme portal password", "client", "acme", "t",
             s.clock.now())
    first = s.run("erp")
    refused = cli("acknowledge", "-c", str(s.config), "acme/erp", "--user", "acme-it",
                  "--comment", "vu")
    assert refused.code != 0 and "only admin and hotline accounts acknowledge" in refused.err
    done = cli("acknowledge", "-c", str(s.config), "acme/erp", "--user", "marie",
               "--comment", "hôte en panne, client prévenu")
    assert done.code == 0, done.err
    assert f"acme/erp: run {first.uid} acknowledged by marie" in done.out
    s.clock.advance(timedelta(days=1))
    s.run("erp")  # still down the next night
    tz = s.loaded.config.msp.timezone
    [erp] = [p for p in problems(s.sessions, tz=tz, now=s.clock.now()) if p.job == "erp"]
    assert (erp.failures, erp.acknowledged_by, erp.acknowledged_comment) == (
        2, "marie", "hôte en panne, client prévenu")
    with s.sessions() as session:
        [audit] = session.scalars(select(AuditRow).where(AuditRow.action == "run.acknowledge"))
        assert audit.target == first.uid and audit.actor.endswith(" as marie")
    fine = cli("acknowledge", "-c", str(s.config), "acme/partages", "--user", "marie",
               "--comment", "x")
    assert fine.code != 0 and "nothing to acknowledge" in fine.err


def test_a_job_late_after_a_success_is_acknowledged_itself(cli, clock, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The scheduler stopped after a good night: no failed run, but nights are missing. The
    job itself is acknowledged, and the dashboard shows who took it."""
    s = Setup(tmp_path)
    add_user(s.sessions, "marie", "hotline password 1", "hotline", None, "t", s.clock.now())
    assert s.run("erp").status == "REUSSIE"
    clock.set(s.clock.now() + timedelta(days=3))  # three nights without a scheduler
    done = cli("acknowledge", "-c", str(s.config), "acme/erp", "--user", "marie",
               "--comment", "planificateur relancé")
    assert done.code == 0, done.err
    assert "acme/erp: late since " in done.out and "acknowledged by marie" in done.out
    with s.sessions() as session:
        [audit] = session.scalars(select(AuditRow).where(AuditRow.action == "job.acknowledge"))
        assert audit.target == "acme/erp"
    tz = s.loaded.config.msp.timezone
    erp = [p for p in problems(s.sessions, tz=tz, now=clock.now()) if p.job == "erp"]
    assert erp and erp[0].acknowledged_by == "marie"
