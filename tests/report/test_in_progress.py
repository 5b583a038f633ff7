"""A run still in progress when the morning's reports go out is told "en cours", never ECHEC;
once it ends, the client receives a second message with the final result."""

from __future__ import annotations

import email
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

from orchestrator.history.recorder import RunRecorder, StepFigures
from orchestrator.jobs.morning import tell
from tests.world import Setup

NIGHT_RUN = datetime(2026, 11, 23, 21, 0, tzinfo=UTC)  # erp's 22:00 (Paris) run
MORNING = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)  # 07:00 in Paris: reports go out


def outbox(root: Path, pattern: str) -> list[EmailMessage]:
    found = sorted((root / "state" / "outbox").glob(pattern))
    return [email.message_from_bytes(p.read_bytes(), policy=default)  # type: ignore[misc]
            for p in found]


def text_of(msg: EmailMessage) -> str:
    body = msg.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def html_of(msg: EmailMessage) -> str:
    body = msg.get_body(("html",))
    assert body is not None
    return str(body.get_content())


def test_a_run_in_progress_at_report_time_is_en_cours_then_told_when_it_ends(
        tmp_path: Path) -> None:
    s = Setup(tmp_path, start=datetime(2026, 11, 23, 19, 0, tzinfo=UTC))
    s.clock.set(datetime(2026, 11, 23, 20, 0, tzinfo=UTC))
    assert s.run("partages").status == "REUSSIE"
    s.clock.set(datetime(2026, 11, 23, 22, 0, tzinfo=UTC))
    assert s.run("compta").status == "REUSSIE"
    # erp's first seed: started at 22:00 (Paris), still copying at 07:00
    recorder = RunRecorder(s.sessions, s.clock.now)
    s.clock.set(NIGHT_RUN + timedelta(minutes=2))
    recorder.start("acme", "erp", "202611232100-e1e1e1", NIGHT_RUN, timedelta(hours=12),
                   "schedule")

    s.clock.set(MORNING)
    tell(s.ctx, MORNING)
    [digest] = outbox(tmp_path, "2026-11-23-acme-digest.eml")
    assert digest["Subject"] == ("[EN COURS] ACME — sauvegardes du 23/11/2026 — 2 réussies, "
                                 "1 en cours")
    assert digest["X-HVBackup-Status"] == "EN COURS"
    text = text_of(digest)
    assert "ECHEC" not in text and "Erreur" not in text
    assert "== erp (ERP01, DC01)\u00a0: En cours" in text
    assert ("Sauvegarde en cours depuis le 23/11 22:02\u202f; vous recevrez un complément dès "
            "qu'elle sera terminée.") in text
    assert ">En cours</span> — erp" in html_of(digest)
    [summary] = outbox(tmp_path, "2026-11-23-summary.eml")
    assert "ECHEC" not in summary["Subject"]
    assert "- erp\u00a0: en cours depuis le 23/11 22:02" in text_of(summary)

    s.clock.advance(timedelta(minutes=30))
    tell(s.ctx, s.clock.now())  # still running: nothing more is sent
    assert outbox(tmp_path, "2026-11-23-acme-digest-update-*.eml") == []

    s.clock.set(MORNING + timedelta(hours=1, minutes=10))  # the seed ends at 08:10
    recorder.finish(findings=[], consistency="application",
                    figures=StepFigures(bytes_read=4 << 20, files=2))
    s.clock.advance(timedelta(minutes=1))
    tell(s.ctx, s.clock.now())
    [update] = outbox(tmp_path, "2026-11-23-acme-digest-update-*.eml")
    assert update["Subject"] == ("Complément — [REUSSIE] ACME — sauvegardes du 23/11/2026 — "
                                 "3/3 réussies")
    text = text_of(update)
    assert text.startswith("Compte rendu des sauvegardes d'ACME — nuit du 23/11/2026\n"
                           "Complément au compte rendu de ce matin\u00a0: les sauvegardes qui "
                           "étaient encore en cours sont terminées")
    assert "== erp (ERP01, DC01)\u00a0: Réussie" in text
    tell(s.ctx, s.clock.now() + timedelta(minutes=1))  # told once
    assert len(outbox(tmp_path, "2026-11-23-acme-digest-update-*.eml")) == 1


def test_a_job_waiting_for_its_host_at_report_time_is_not_a_failure(tmp_path: Path) -> None:
    """A job scheduled at 07:00, queued behind another on its host: due, its window open,
    no run yet when the reports are built."""
    s = Setup(tmp_path, start=datetime(2026, 11, 23, 19, 0, tzinfo=UTC))
    s.config.write_text(s.config.read_text().replace('schedule: "daily 23:00"',
                                                     'schedule: "daily 07:00"'))
    s.reload()
    from orchestrator.history.sync import sync_config

    with s.sessions() as session, session.begin():
        sync_config(session, s.loaded, s.clock.now(), "test")
    for job, at in (("partages", 20), ("erp", 21)):
        s.clock.set(datetime(2026, 11, 23, at, 0, tzinfo=UTC))
        assert s.run(job).status == "REUSSIE"
    s.clock.set(MORNING)
    tell(s.ctx, MORNING)
    [digest] = outbox(tmp_path, "2026-11-23-acme-digest.eml")
    assert digest["Subject"] == ("[EN COURS] ACME — sauvegardes du 23/11/2026 — 2 réussies, "
                                 "1 en attente")
    assert ("Prévue le 24/11 07:00, elle attend son tour (une seule sauvegarde à la fois par "
            "serveur)\u202f; vous recevrez un complément") in text_of(digest)
