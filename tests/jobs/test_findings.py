"""What a run found decides its status, its alert and its runbook link, never the words of a
message: a warning that says "shadow copy" is not a second-copy problem, and a host script's
own code leads to the runbook row that explains it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

from orchestrator.dashboard.accounts import add_user
from orchestrator.dashboard.app import DashboardSettings, create_app
from orchestrator.findings import (
    CopyFailed,
    CrashConsistent,
    ObjectFailed,
    RunStatus,
    status_of,
)
from orchestrator.history.models import AlertRow, RunRow
from orchestrator.history.recorder import RunRecorder, StepFigures
from orchestrator.report.hotline import record_run_alert, send_alerts
from tests.conftest import REPO
from tests.dashboard.site import Site
from tests.world import Setup


def alerts(s: Setup) -> list[tuple[str, str]]:
    with s.sessions() as session:
        return [(a.kind, a.message) for a in session.scalars(select(AlertRow))]


def test_status_comes_from_the_kinds_of_findings() -> None:
    assert status_of([]) == RunStatus.REUSSIE
    warn = CrashConsistent("ERP01", "HVB-SCRIPT-FAILED", "crash-consistent", "GUEST_VSS_FAILED")
    fail = ObjectFailed("PAIE", "HVB-SCRIPT-FAILED", "verify failed", "SQL_VERIFY_FAILED")
    assert status_of([warn]) == RunStatus.AVERTISSEMENT
    assert status_of([warn, fail]) == RunStatus.ECHEC


def test_a_warning_whose_text_says_copy_is_not_a_copy_alert(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    ref = s.loaded.job("acme/erp")
    recorder = RunRecorder(s.sessions, s.clock.now)
    recorder.start("acme", "erp", "202611232200-c0c0c0", s.clock.now(), timedelta(hours=8),
                   "schedule")
    said = ("crash-consistent backup (guest VSS failed: the shadow copy could not be created; "
            "the copy of the writers' metadata timed out)")
    recorder.finish(findings=[CrashConsistent("ERP01", "HVB-SCRIPT-FAILED", said,
                                              "GUEST_VSS_FAILED")],
                    consistency="crash", figures=StepFigures())
    record_run_alert(s.sessions, "202611232200-c0c0c0", s.clock.now())
    assert ref.job_name == "erp" and alerts(s) == []  # a warning to read, not an alert


def test_a_second_copy_that_failed_is_a_copy_alert_whatever_its_words(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    s.run("partages")
    (tmp_path / "baie-b").rename(tmp_path / "baie-b-unplugged")
    s.clock.advance(timedelta(minutes=5))
    result = s.run("partages")
    assert result.status == RunStatus.AVERTISSEMENT
    assert isinstance(result.findings[0], CopyFailed)
    [(kind, message)] = alerts(s)
    assert kind == "copy" and message.startswith("site-b: baie site-b:")


def test_the_runbook_link_of_a_script_code_leads_to_its_row(tmp_path: Path) -> None:
    s = Setup(tmp_path, faults="{kind: guest-vss-failure, target: ERP01}")
    result = s.run("erp")
    assert result.status == RunStatus.ECHEC
    with s.sessions() as session:
        run = session.scalars(select(RunRow)).one()
        assert (run.error_code, run.script_code) == ("HVB-SCRIPT-FAILED", "GUEST_VSS_FAILED")

    # The hotline's alert (no dashboard address: the command that shows the runbook).
    send_alerts(s.loaded, s.sessions, s.clock.now(), send_it=False)
    [mail] = sorted((tmp_path / "state" / "outbox").glob("*-alerts.eml"))
    import email
    import email.policy

    message = email.message_from_bytes(mail.read_bytes(), policy=email.policy.default)
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "que faire\u00a0: hvbackup runbook HVB-SCRIPT-FAILED (GUEST_VSS_FAILED)" in text
    page = (REPO / "docs/runbooks/fr/HVB-SCRIPT-FAILED.md").read_text(encoding="utf-8")
    assert "| `GUEST_VSS_FAILED` |" in page

    # The run's page on the dashboard links to the row, and the row is there.
    settings = DashboardSettings(sessions=s.sessions, timezone=s.loaded.config.msp.timezone,
                                 language="fr", now=s.clock.now, secret="a secret for tests",
                                 secure_cookies=False)
    add_user(s.sessions, "marie", "hotline password 1", "hotline", None, "test", s.clock.now())
    web = TestClient(create_app(settings), follow_redirects=False)
    assert Site.post_login(web, {"username": "marie", "password": "hotline password 1",
                                 "next": "/"}).status_code == 303
    shown = web.get(f"/runs/{result.uid}").text
    href = "/runbooks/HVB-SCRIPT-FAILED?lang=fr#GUEST_VSS_FAILED"
    assert f'href="{href}"' in shown
    runbook = web.get(href.partition("#")[0])
    assert runbook.status_code == 200
    assert '<tr id="GUEST_VSS_FAILED"><td><code>GUEST_VSS_FAILED</code></td>' in runbook.text


def test_the_client_reads_each_finding_in_its_words(tmp_path: Path) -> None:
    from datetime import date

    from orchestrator.report.digest import build_digest

    s = Setup(tmp_path, faults="{kind: verifyonly-failure, target: PAIE}")
    s.run("compta")
    digest = build_digest(s.sessions, s.loaded, "acme", date(2026, 11, 23), s.clock.now())
    [line] = [j for j in digest.jobs if j.job == "compta"]  # the others: not run yet
    assert line.said == ["PAIE n'a pas été sauvegardé cette nuit\u202f; notre hotline est "
                         "prévenue et s'en occupe."]
    assert "RESTORE VERIFYONLY" in (line.error or "")  # the hotline keeps the technical text
