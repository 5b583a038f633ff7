"""Every message as its reader gets it: the client reads its own words (no host, no code, no
configuration keyword, accents, true durations, agreement), the hotline reads clients by
their name and alerts in words, and French typography (no-break spaces before ":" and in
"134 Mo", narrow ones before ";" "!" "?") in every French message, none in English ones."""

from __future__ import annotations

import email
import email.policy
import json
import re
from datetime import UTC, date, datetime
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path

from sqlalchemy import select

from orchestrator.history.models import JobRow
from orchestrator.report.digest import send_digest
from orchestrator.report.hotline import missing_digests, send_alerts, send_summary
from tests.report.test_mail import smtp_server, with_smtp  # noqa: F401
from tests.world import Setup

NIGHT = date(2026, 11, 23)
UNITS = r"(?:o|Ko|Mo|Go|To|B|KB|MB|GB|TB|%|s|min|h)"


class Visible(HTMLParser):
    """The text a mail client shows of an HTML part (what is between the tags)."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.skip += tag in ("style", "title")

    def handle_endtag(self, tag: str) -> None:
        self.skip -= tag in ("style", "title")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.parts.append(data)


def seen(msg: EmailMessage) -> dict[str, str]:
    """Subject, text part and the visible text of the HTML part."""
    parser = Visible()
    parser.feed(msg.get_body(("html",)).get_content())  # type: ignore[union-attr]
    return {"subject": str(msg["Subject"]),
            "text": msg.get_body(("plain",)).get_content(),  # type: ignore[union-attr]
            "html": "".join(parser.parts)}


def night_of_every_message(s: Setup, language: str) -> None:
    """A night that makes every kind of message: a failed VM (guest VSS), a file job, a
    subscribed volume far exceeded (the client's quota notice, the hotline's alert), a
    report that did not go out (an alert), the morning summary and the digest."""
    text = s.config.read_text().replace(
        "    contacts: [it@acme.example]", "    contacts: [it@acme.example]\n"
        "    quota_gb: 0.000001").replace(
        "  hotline: [hotline@msp.example]",
        f"  hotline: [hotline@msp.example]\n  language: {language}")
    s.config.write_text(text)
    s.reload()
    s.run("partages")
    s.run("erp")
    s.run("compta")
    missing_digests(s.loaded, s.sessions, NIGHT, datetime(2026, 11, 24, 7, 1, tzinfo=UTC))
    send_alerts(s.loaded, s.sessions, s.clock.now(), send_it=True)
    send_summary(s.loaded, s.sessions, NIGHT, s.clock.now(), send_it=True)
    send_digest(s.loaded, s.sessions, "acme", NIGHT, s.clock.now(), send_it=True)


def messages(tmp_path: Path, smtp_server, language: str) -> dict[str, dict[str, str]]:  # type: ignore[no-untyped-def]  # noqa: F811
    port, inbox = smtp_server
    s = Setup(tmp_path, faults="{kind: guest-vss-failure, target: ERP01}")
    with_smtp(s, port, language)
    night_of_every_message(s, language)
    kinds = {}
    for msg in inbox.messages:
        [data] = [json.loads(p.get_content()) for p in msg.iter_attachments()]
        kind = ("alerts" if "alerts" in data else "summary" if "clients" in data
                else "digest" if "jobs" in data else "quota")
        kinds[kind] = seen(msg)
    assert set(kinds) == {"alerts", "summary", "quota", "digest"}
    return kinds


def test_french_messages_are_in_french_typography(tmp_path: Path, smtp_server) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    found = messages(tmp_path, smtp_server, "fr")
    for kind, parts in found.items():
        for part, text in parts.items():
            if part == "subject":
                continue  # plain spaces: see report/render.py
            where = f"{kind} ({part})"
            assert not re.findall(r".{0,20} [:;!?](?:\s|$).{0,10}", text), where
            assert not re.findall(rf".{{0,20}}\d {UNITS}\b.{{0,10}}", text), where
            assert not re.search(r"\u00a0[;!?]", text), where  # those take the narrow one
    digest = found["digest"]["text"]
    assert digest.startswith("Compte rendu des sauvegardes d'ACME — nuit du 23/11/2026")
    assert "Résultat\u00a0: Échec (2/3 tâches réussies, 1 en échec)" in digest
    assert "== compta (toutes les bases)\u00a0: Réussie" in digest
    assert "(all)" not in digest and "ECHEC" not in digest and "REUSSIE" not in digest
    assert "durée 1\u00a0min" not in digest  # the simulated runs take no time
    html = found["digest"]["html"]
    assert "Échec — ACME" in html and "2/3 tâches réussies" in html
    quota = found["quota"]["text"]
    assert re.search(r"Vos sauvegardes occupent \d+(,\d)?\u00a0[kKM]o pour un volume souscrit "
                     r"de 1,0\u00a0Ko \(\d+\u00a0%\)", quota), quota
    alerts = found["alerts"]["text"]
    assert "ACME (acme) — quota dépassé\u00a0: ACME occupe" in alerts
    assert "ACME (acme) — rapport client non envoyé\u00a0:" in alerts
    assert "ACME (acme), tâche erp — sauvegarde en échec\u00a0:" in alerts
    assert "[quota_warning]" not in alerts and "[report_missing]" not in alerts
    assert "0.0 GB" not in alerts and " GB" not in alerts
    assert found["alerts"]["subject"] == "[hvbackup] 3 problèmes : ACME"


def test_english_messages_have_no_french_spacing(tmp_path: Path, smtp_server) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    found = messages(tmp_path, smtp_server, "en")
    for kind, parts in found.items():
        for part, text in parts.items():
            assert "\u202f" not in text and not re.search(r"\u00a0[:;!?%]", text), (kind, part)
            assert not re.search(rf"\d\u00a0{UNITS}\b", text), (kind, part)
    digest = found["digest"]["text"]
    assert "Result: Failed (2/3 jobs succeeded, 1 failed)" in digest
    assert "== compta (all databases): Succeeded" in digest
    assert "ACME (acme) — quota exceeded: ACME uses" in found["alerts"]["text"]


def test_one_job_is_singular(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    s.run("partages")
    with s.sessions() as session, session.begin():  # ACME with its file job only
        for job in session.scalars(select(JobRow).where(JobRow.key.in_(["erp", "compta"]))):
            job.active = False
    send_digest(s.loaded, s.sessions, "acme", NIGHT, s.clock.now(), send_it=False)
    [sent] = (tmp_path / "state" / "outbox").glob("*digest.eml")
    msg = email.message_from_bytes(sent.read_bytes(), policy=email.policy.default)
    parts = seen(msg)  # type: ignore[arg-type]
    assert "Résultat\u00a0: Réussie (1/1 tâche réussie)" in parts["text"]
    assert "1/1 tâche réussie" in parts["html"] and "tâches" not in parts["html"]


def test_a_run_that_never_started_is_told_in_the_hotlines_language_and_time(
        tmp_path: Path) -> None:
    s = Setup(tmp_path)  # nothing ran the night of the 23rd, and the windows have passed
    later = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    send_summary(s.loaded, s.sessions, NIGHT, later, send_it=False)
    [sent] = (tmp_path / "state" / "outbox").glob("*summary.eml")
    text = seen(email.message_from_bytes(  # type: ignore[arg-type]
        sent.read_bytes(), policy=email.policy.default))["text"]
    # erp is due at 22:00 in Paris (21:00 UTC)
    assert ("- erp\u00a0: Non exécutée — aucune exécution de celle prévue le 23/11/2026 à "
            "22:00, et sa plage horaire est passée\u00a0: le planificateur tournait-il\u202f?"
            ) in text
    assert "UTC" not in text and "was the scheduler" not in text


def test_every_alert_kind_has_its_words() -> None:
    from orchestrator.findings import AlertKind
    from orchestrator.report.hotline import KIND_WORDS

    for language in ("fr", "en"):
        assert set(KIND_WORDS[language]) == set(AlertKind), language
