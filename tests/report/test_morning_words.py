"""The morning's mails as their readers get them (text part and the visible text of the HTML
part, through a real SMTP server): the client's subject says what happened to each job in
counts under a tag chosen by a stated rule, a job that never started shows when it was due
(never an end), a warning says what to do; the hotline reads each outcome in French first
(the code and the host's English on a line of their own), one line per cause over jobs and
nights, who acknowledged the outage, and where to look when the dashboard has no address."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

from orchestrator.dashboard.accounts import add_user
from orchestrator.dashboard.acknowledge import acknowledge_run, last_bad_run, staff_user
from orchestrator.history.recorder import RunRecorder
from orchestrator.jobs import night
from orchestrator.jobs.morning import tell
from orchestrator.report.digest import send_digest
from orchestrator.report.hotline import send_alerts, send_summary
from tests.report.test_mail import smtp_server, with_smtp  # noqa: F401
from tests.report.test_words import seen
from tests.world import Setup

NIGHT = date(2026, 11, 23)
ERP_AT = datetime(2026, 11, 23, 21, 0, tzinfo=UTC)  # erp's 22:00 (Paris)
REPORTS = datetime(2026, 11, 24, 6, 30, tzinfo=UTC)  # 07:30 in Paris


def parts(msg: EmailMessage) -> dict[str, str]:
    return {k: v.replace("\r\n", "\n") for k, v in seen(msg).items()}


def kind_of(msg: EmailMessage) -> str:
    [data] = [json.loads(p.get_content()) for p in msg.iter_attachments()]
    return ("alerts" if "alerts" in data else "summary" if "clients" in data
            else "digest" if "jobs" in data else "quota")


def by_kind(inbox_messages: list[EmailMessage]) -> dict[str, dict[str, str]]:
    return {kind_of(m): parts(m) for m in inbox_messages}


def english_only_on_technical_lines(text: str, english: str, label: str) -> None:
    """The host's or the scheduler's English appears, and only on the technician's lines."""
    lines = [line for line in text.splitlines() if english in line]
    assert lines, text
    assert all(line.strip().startswith(label) for line in lines), lines


def night_with_one_of_each(tmp_path: Path, port: int) -> tuple[Setup, str]:
    """partages succeeds, erp is still copying at report time (started 22:00), compta
    (23:00) never started and its window passed: the scheduler recorded it NON EXECUTEE when
    it came back, at 07:30, as the reports went out."""
    s = Setup(tmp_path, start=datetime(2026, 11, 23, 19, 0, tzinfo=UTC))
    with_smtp(s, port)
    s.reload()
    s.clock.set(datetime(2026, 11, 23, 20, 0, tzinfo=UTC))
    assert s.run("partages").status == "REUSSIE"
    s.clock.set(ERP_AT)
    RunRecorder(s.sessions, s.clock.now).start("acme", "erp", "202611232100-e1e1e1", ERP_AT,
                                               timedelta(hours=12), "schedule")
    s.clock.set(REPORTS)
    [missed] = [d for d in night.expected(s.ctx, REPORTS) if d.ref.job_name == "compta"]
    assert missed.window_end < REPORTS and night.record_not_run(s.ctx, missed, REPORTS)
    with s.sessions() as session:
        uid = last_bad_run(session, "acme", "compta")
    tell(s.ctx, REPORTS)
    return s, uid


def test_a_mixed_night_is_told_in_counts_under_an_honest_tag(tmp_path: Path,
                                                             smtp_server) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    port, inbox = smtp_server
    night_with_one_of_each(tmp_path, port)
    found = by_kind(inbox.messages)
    digest = found["digest"]
    # The tag: nothing failed while running, one job did not run at all: NON EXECUTEE (not
    # ECHEC, not EN COURS); the words say what happened to each job.
    assert digest["subject"] == ("[NON EXECUTEE] ACME — sauvegardes du 23/11/2026 — 1 réussie, "
                                 "1 non exécutée, 1 en cours")
    assert "échec" not in digest["subject"].lower()
    assert ("Résultat\u00a0: Non exécutée (1/3 tâches réussies, 1 non exécutée, 1 en cours)"
            in digest["text"])
    assert "1/3 tâches réussies, 1 non exécutée, 1 en cours" in digest["html"]
    summary = found["summary"]
    # The hotline counts the client by what happened: a job not run, not "en échec".
    assert summary["subject"] == ("[NON EXECUTEE] Synthèse des sauvegardes du 23/11/2026 — "
                                  "1 client : 1 avec une sauvegarde non exécutée")
    for part in ("text", "html"):
        assert "en échec" not in summary[part]
    assert ("Non exécutée — ACME (acme)\u00a0: 1 réussie, 1 non exécutée, 1 en cours"
            in summary["text"])
    assert "1 réussie, 1 non exécutée, 1 en cours" in summary["html"]


def test_a_job_in_progress_alone_is_not_a_client_in_failure(tmp_path: Path,
                                                            smtp_server) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    port, inbox = smtp_server
    s = Setup(tmp_path, start=datetime(2026, 11, 23, 19, 0, tzinfo=UTC))
    with_smtp(s, port)
    s.reload()
    for job, at in (("partages", 20), ("compta", 22)):
        s.clock.set(datetime(2026, 11, 23, at, 0, tzinfo=UTC))
        assert s.run(job).status == "REUSSIE"
    s.clock.set(ERP_AT)
    RunRecorder(s.sessions, s.clock.now).start("acme", "erp", "202611232100-e1e1e1", ERP_AT,
                                               timedelta(hours=12), "schedule")
    s.clock.set(REPORTS)
    tell(s.ctx, REPORTS)
    found = by_kind(inbox.messages)
    assert found["digest"]["subject"] == ("[EN COURS] ACME — sauvegardes du 23/11/2026 — "
                                          "2 réussies, 1 en cours")
    summary = found["summary"]
    assert summary["subject"] == ("[EN COURS] Synthèse des sauvegardes du 23/11/2026 — 1 client "
                                  ": 1 avec une sauvegarde en cours")
    for part in ("text", "html"):
        assert "échec" not in summary[part].lower(), part
    assert "En cours — ACME (acme)\u00a0: 2 réussies, 1 en cours" in summary["text"]


def test_a_job_that_never_started_shows_when_it_was_due_not_an_end(tmp_path: Path,
                                                                   smtp_server) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    port, inbox = smtp_server
    night_with_one_of_each(tmp_path, port)
    digest = by_kind(inbox.messages)["digest"]
    text = digest["text"]
    compta = text[text.index("== compta"):text.index("== erp")]
    assert "Prévue le 23/11 23:00, elle n'a pas démarré." in compta
    assert "fin " not in compta and "Début" not in compta and "24/11 07:30" not in compta
    html = digest["html"]
    compta_html = html[html.index("compta (toutes les bases)"):html.index("erp (ERP01")]
    assert "Prévue le 23/11 23:00, elle n'a pas démarré." in compta_html
    assert "Fin" not in compta_html and "24/11 07:30" not in compta_html


def test_a_warning_says_what_to_do(tmp_path: Path, smtp_server) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    port, inbox = smtp_server
    s = Setup(tmp_path, faults="{kind: guest-vss-failure, target: ERP01}",
              consistency="application-or-crash")
    with_smtp(s, port)
    s.reload()
    for job in ("partages", "erp", "compta"):
        s.run(job)
    send_digest(s.loaded, s.sessions, "acme", NIGHT, s.clock.now(), send_it=True)
    [msg] = inbox.messages
    digest = parts(msg)
    assert digest["subject"] == ("[AVERTISSEMENT] ACME — sauvegardes du 23/11/2026 — "
                                 "3/3 réussies, dont 1 avec avertissement")
    advice = ("Que faire\u00a0: rien d'urgent de votre côté, les points de restauration de "
              "cette nuit sont utilisables. Notre hotline examine ce qui est signalé ci-dessus "
              "et revient vers vous s'il y a quelque chose à faire\u202f; vous pouvez la "
              "joindre à hotline@msp.example")
    assert advice in digest["text"] and advice in digest["html"]
    assert "Résultat\u00a0: Avertissement (3/3 tâches réussies, dont 1 avec avertissement)" \
        in digest["text"]
    assert "notre hotline est prévenue et revient vers vous" not in digest["text"]  # ECHEC's
    for part in ("text", "html"):  # the consistency in the client's words, not the jargon
        assert "sans VSS, comme après une coupure de courant" in digest[part]
        assert "crash-consistent" not in digest[part]


def test_the_hotline_reads_french_first_and_where_to_look(tmp_path: Path,
                                                          smtp_server) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    port, inbox = smtp_server
    _s, uid = night_with_one_of_each(tmp_path, port)
    found = by_kind(inbox.messages)
    alerts, summary = found["alerts"], found["summary"]
    # French first, from the run's schedule (its time in the MSP's zone), not the stored text.
    said = ("sauvegarde non exécutée\u00a0: aucune exécution de celle prévue le 23/11/2026 à "
            "23:00, et sa plage horaire est passée\u00a0: le planificateur tournait-il\u202f?")
    assert said in alerts["text"]
    assert "Aucune exécution de celle prévue le 23/11/2026 à 23:00" in alerts["html"]
    assert ("- compta\u00a0: Non exécutée — aucune exécution de celle prévue le 23/11/2026 à "
            "23:00") in summary["text"]
    # The stored English, with its code, only on the technician's line.
    english_only_on_technical_lines(alerts["text"], "the run scheduled on", "technique")
    english_only_on_technical_lines(summary["text"], "the run scheduled on", "technique")
    assert "technique\u00a0: HVB-RUN-MISSED: NON EXECUTEE: the run scheduled on" in alerts["text"]
    assert "HVB-RUN-MISSED: NON EXECUTEE: the run scheduled on" in alerts["html"]
    assert "HVB-RUN-MISSED: NON EXECUTEE: the run scheduled on" in summary["html"]
    # No dashboard address: the run's id with the page to open, and the runbook command.
    where = f"{uid} (tableau de bord lancé par hvbackup serve, page /runs/{uid})"
    for text in (alerts["text"], summary["text"]):
        assert f"exécution\u00a0: {where}" in text
        assert "que faire\u00a0: hvbackup runbook HVB-RUN-MISSED" in text
    for html in (alerts["html"], summary["html"]):
        assert where in html and "hvbackup runbook HVB-RUN-MISSED" in html
    assert "http" not in alerts["text"] and "http" not in summary["text"]


def test_one_cause_is_one_line_and_the_acknowledgement_is_told(tmp_path: Path,
                                                              smtp_server) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """hv01 does not answer two nights running: two jobs, two nights, one line; the hotline
    acknowledged erp's outage after the first night, and both mails say who, when, and for
    which of the two jobs (compta's is not acknowledged)."""
    port, inbox = smtp_server
    s = Setup(tmp_path, faults="{kind: unreachable}")
    with_smtp(s, port)
    s.reload()
    s.run("erp")
    s.run("compta")
    add_user(s.sessions, "marie", "un mot de passe assez long", "hotline", None, "test",
             s.clock.now())
    acked = datetime(2026, 11, 24, 8, 15, tzinfo=UTC)  # 09:15 in Paris
    with s.sessions() as session:
        user, run_uid = staff_user(session, "marie").id, last_bad_run(session, "acme", "erp")
    acknowledge_run(s.sessions, run_uid, user, "hv01 en panne, client prévenu", acked, "marie")
    s.clock.advance(timedelta(days=1))
    s.run("erp")
    s.run("compta")
    now = s.clock.now()
    assert send_alerts(s.loaded, s.sessions, now, send_it=True) == 4
    send_summary(s.loaded, s.sessions, date(2026, 11, 24), now + timedelta(hours=9),
                 send_it=True)
    found = by_kind(inbox.messages)
    alerts, summary = found["alerts"], found["summary"]
    assert alerts["subject"] == "[hvbackup] 1 problème : ACME"
    line = ("ACME (acme), tâches erp, compta — sauvegarde en échec\u00a0: la sauvegarde n'a pas "
            "pu se faire (hôte injoignable)\n"
            "  même cause, serveur hv01\u00a0: 2 tâches, 2 nuits (23/11, 24/11)\n"
            "  déjà acquittée (erp) par marie le 24/11 à 09:15\u00a0: «\u00a0hv01 en panne, client "
            "prévenu\u00a0»\n"
            "  technique\u00a0: HVB-HOST-UNREACHABLE: host acme/hv01 (simulated): cannot connect")
    assert line in alerts["text"]
    assert alerts["text"].count("sauvegarde en échec") == 1
    assert alerts["text"].count("technique") == 1  # the same English, once
    assert "exécutions\u00a0: " in alerts["text"]  # the four runs' ids, on one line
    for text in ("même cause, serveur hv01\u00a0: 2 tâches, 2 nuits (23/11, 24/11)",
                 "déjà acquittée (erp) par marie le 24/11 à 09:15"):
        assert text in alerts["html"]
    english_only_on_technical_lines(alerts["text"], "cannot connect", "technique")
    # The summary: the two jobs on one line, with who acknowledged the outage and when.
    assert ("- compta, erp\u00a0: Échec (2 tâches, même cause\u00a0: serveur hv01) — la "
            "sauvegarde n'a pas pu se faire (hôte injoignable)\n"
            "       acquittée (erp) par marie le 24/11 09:15\u00a0: «\u00a0hv01 en panne, client "
            "prévenu\u00a0»") in summary["text"]
    assert "Acquittée (erp) par marie le 24/11 09:15\u00a0: «\u00a0hv01 en panne" in summary["html"]
    english_only_on_technical_lines(summary["text"], "cannot connect", "technique")


def test_the_clients_json_part_holds_no_hotline_note_and_no_mail_tells_a_later_one(
        tmp_path: Path, smtp_server) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """hv01 down: the client's report (its JSON part too) says nothing of the hotline's note,
    the code or the host's English; an acknowledgement made after a mail is not in it."""
    port, inbox = smtp_server
    s = Setup(tmp_path, faults="{kind: unreachable}")
    with_smtp(s, port)
    s.reload()
    s.run("erp")
    add_user(s.sessions, "marie", "un mot de passe assez long", "hotline", None, "test",
             s.clock.now())
    with s.sessions() as session:
        user, run_uid = staff_user(session, "marie").id, last_bad_run(session, "acme", "erp")
    alerts_at = s.clock.now() + timedelta(minutes=5)
    # Recorded first (a replay of the night, as the demo does), made an hour after the mail.
    acknowledge_run(s.sessions, run_uid, user, "technicien sur place demain",
                    alerts_at + timedelta(hours=1), "marie")
    assert send_alerts(s.loaded, s.sessions, alerts_at, send_it=True) >= 1
    send_digest(s.loaded, s.sessions, "acme", NIGHT, REPORTS, send_it=True)
    found = {kind_of(m): m for m in inbox.messages}
    assert "acquitt" not in parts(found["alerts"])["text"]  # made after that mail
    [data] = [json.dumps(json.loads(p.get_content())) for p in found["digest"].iter_attachments()]
    for internal in ("technicien sur place", "marie", "HVB-", "cannot connect", "WinRM",
                     "acknowledged", "hv01"):
        assert internal not in data, internal
    assert json.loads(data)["jobs"] and "said" in json.loads(data)["jobs"][0]
