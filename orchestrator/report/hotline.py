"""What the hotline is told: an alert as soon as something broke (grouped: one message for
everything new since the last one, never one per retry), and a summary of all clients each
morning, worst first. Also: a client's digest that did not go out by the deadline is an alert."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.config.load import LoadedConfig
from orchestrator.findings import AlertKind, RunStatus, Severity, from_dict, worst
from orchestrator.history.models import AlertRow, ClientRow, EmailRow, JobRow, RunRow
from orchestrator.history.queries import night_expected, offboard_date, run_by_uid
from orchestrator.humanize import size
from orchestrator.jobs.offboard import destructions_ahead
from orchestrator.report.digest import build_digest, night_bounds
from orchestrator.report.mail import build, deliver
from orchestrator.report.render import render
from orchestrator.schedule.spec import local_instant


@dataclass
class AlertLine:
    client: str
    job: str | None
    kind: str
    message: str
    when: datetime
    run: str | None = None  # link to the run's page, when the dashboard's address is known
    runbook: str | None = None  # what to do: the runbook of the error code
    name: str = ""  # the client's name, as the hotline says it on the phone
    what: str = ""  # the kind of alert in words, in the hotline's language


# What each kind of alert is, in the hotline's words (the kind itself stays in the JSON part).
KIND_WORDS = {
    "fr": {AlertKind.ECHEC: "sauvegarde en échec", AlertKind.NON_EXECUTEE: "sauvegarde non "
           "exécutée", AlertKind.COPY: "seconde copie en échec",
           AlertKind.QUOTA_WARNING: "quota dépassé", AlertKind.QUOTA_BLOCKED:
           "quota dépassé, sauvegardes arrêtées", AlertKind.QUOTA_TIER:
           "passage à la tranche supérieure", AlertKind.REPORT_MISSING:
           "rapport client non envoyé", AlertKind.ROLLBACK: "point de restauration manquant "
           "ou inconnu sur une baie", AlertKind.AGENT_SILENT: "agent de site injoignable",
           AlertKind.UNPROTECTED: "copie non protégée contre l'effacement"},
    "en": {AlertKind.ECHEC: "backup failed", AlertKind.NON_EXECUTEE: "backup not run",
           AlertKind.COPY: "second copy failed", AlertKind.QUOTA_WARNING: "quota exceeded",
           AlertKind.QUOTA_BLOCKED: "quota exceeded, backups stopped",
           AlertKind.QUOTA_TIER: "moved up a volume tier",
           AlertKind.REPORT_MISSING: "client report not sent",
           AlertKind.ROLLBACK: "restore point missing or unknown on a baie",
           AlertKind.AGENT_SILENT: "site agent unreachable",
           AlertKind.UNPROTECTED: "copy not protected against deletion"},
}


def _quota_message(kind: AlertKind, name: str, details: dict[str, Any], language: str,
                   tz: Any) -> str | None:
    """A quota alert told from its figures, sizes as people read them, in the hotline's
    language (the stored message is the technician's English)."""
    if "used" not in details or "quota" not in details:
        return None
    used, quota = size(float(details["used"]), language), size(float(details["quota"] or 0),
                                                                  language)
    grace = details.get("grace_ends")
    day = datetime.fromisoformat(grace).astimezone(tz).strftime("%d/%m/%Y") if grace else None
    fr = language == "fr"
    if kind == AlertKind.QUOTA_TIER:
        tier = size(float(details.get("to") or details["quota"]), language)
        return (f"{name} occupe {used} : volume souscrit porté à {tier}" if fr else
                f"{name} uses {used}: subscribed volume moved to {tier}")
    if fr:
        text = f"{name} occupe {used} pour {quota} souscrits"
        if kind == AlertKind.QUOTA_BLOCKED:
            return text + " ; nouvelles sauvegardes arrêtées"
        return text + (f" ; à régler avant le {day}" if day else "")
    text = f"{name} uses {used} of {quota} subscribed"
    if kind == AlertKind.QUOTA_BLOCKED:
        return text + "; new backups stopped"
    return text + (f"; to settle by {day}" if day else "")



def run_link(loaded: LoadedConfig, uid: str) -> str | None:
    base = loaded.config.msp.dashboard_url
    return f"{base.rstrip('/')}/runs/{uid}" if base else None


def runbook_link(loaded: LoadedConfig, code: str, language: str,
                 script_code: str | None = None) -> str:
    """Where the runbook of ``code`` is read: the dashboard, else ``hvbackup runbook CODE``.
    A host script's own code is a row of the HVB-SCRIPT-FAILED page, linked by its anchor."""
    base = loaded.config.msp.dashboard_url
    anchor = f"#{script_code}" if script_code else ""
    if base:
        return f"{base.rstrip('/')}/runbooks/{code}?lang={language}{anchor}"
    # No dashboard: the command that shows it on the orchestrator (never a source path).
    lang = "" if language == "fr" else f" --lang {language}"
    return f"hvbackup runbook{lang} {code}" + (f" ({script_code})" if script_code else "")


def record_run_alert(sessions: sessionmaker[Session], run_uid: str, now: datetime) -> None:
    """After a run closes: the most serious alert its findings call for (an ECHEC, a NON
    EXECUTEE, a second copy in trouble), at most one per run."""
    with sessions() as session, session.begin():
        run = run_by_uid(session, run_uid)
        job = session.get_one(JobRow, run.job_id)
        alerting = [f for f in map(from_dict, run.findings or []) if f.alert is not None]
        if not alerting:
            return
        top = max(alerting, key=lambda f: f.severity)
        assert top.alert is not None
        session.add(AlertRow(kind=top.alert.value,
                             severity="warning" if top.severity == Severity.WARNING else "error",
                             client_id=job.client_id, job_id=job.id, run_id=run.id,
                             created_at=now, message=top.headline))


def send_alerts(loaded: LoadedConfig, sessions: sessionmaker[Session], now: datetime, *,
                send_it: bool) -> int:
    """One message with every alert not yet sent; returns how many it carried."""
    quota_notices: list[tuple[str, dict[str, Any], AlertKind]] = []
    language = loaded.config.msp.language
    with sessions() as session, session.begin():
        rows = list(session.scalars(select(AlertRow).where(AlertRow.notified_at.is_(None))
                                    .order_by(AlertRow.created_at)))
        lines = []
        for row in rows:
            client = session.get(ClientRow, row.client_id) if row.client_id else None
            job = session.get(JobRow, row.job_id) if row.job_id else None
            run = session.get(RunRow, row.run_id) if row.run_id else None
            code = run.error_code if run is not None else (row.details or {}).get("code")
            kind = AlertKind(row.kind)
            message = row.message
            if kind.is_quota and client is not None:
                message = _quota_message(kind, client.name, dict(row.details or {}),
                                         language, loaded.config.msp.timezone) or message
            where = client.key if client else str((row.details or {}).get("site", "-"))
            lines.append(AlertLine(where, job.key if job else None,
                                   row.kind, message, row.created_at,
                                   run_link(loaded, run.uid) if run is not None else None,
                                   runbook_link(loaded, code, loaded.config.msp.language,
                                                run.script_code if run else None)
                                   if code else None,
                                   name=client.name if client else "",
                                   what=KIND_WORDS["fr" if language == "fr" else "en"][kind]))
            row.notified_at = now
            if AlertKind(row.kind).is_quota and client is not None:
                quota_notices.append((client.key, dict(row.details), AlertKind(row.kind)))
    for client_key, details, kind in quota_notices:
        _tell_client_about_quota(loaded, sessions, client_key, details, kind, now,
                                 send_it=send_it)
    if not lines:
        return 0
    rendered = render("alerts", language, loaded.config.msp.timezone, alerts=lines,
                      msp=loaded.config.msp.name)
    msg = build(loaded, rendered, list(loaded.config.msp.hotline), status=RunStatus.ECHEC,
                client="*", when=now.date(), data={"alerts": [asdict(line) for line in lines]},
                kind="alerts", now=now)
    local = now.astimezone(loaded.config.msp.timezone)  # outbox names in the MSP's time
    deliver(loaded, sessions, msg, kind="alert", client=None, report_date=now.date(),
            name=f"{local:%Y-%m-%dT%H%M%S}-alerts", now=now, send_it=send_it)
    return len(lines)


def send_summary(loaded: LoadedConfig, sessions: sessionmaker[Session], night: date,
                 now: datetime, *, send_it: bool) -> list[Any]:
    """All clients' nights, worst first, to the hotline; first, the data destructions (contract
    ends) due within 7 days."""
    with sessions() as session:  # a client whose contract ended before the night: none
        owing = [c for c in loaded.config.clients
                 if (ended := offboard_date(session, c)) is None or ended > night]
    digests = [build_digest(sessions, loaded, client, night, now) for client in owing]
    digests.sort(key=lambda d: (d.status.rank, d.client))
    rendered = render("summary", loaded.config.msp.language, loaded.config.msp.timezone,
                      digests=digests, night=night, msp=loaded.config.msp.name,
                      destructions=destructions_ahead(loaded, sessions, now))
    msg = build(loaded, rendered, list(loaded.config.msp.hotline),
                status=worst([d.status for d in digests], RunStatus.REUSSIE), client="*",
                when=night, data={"clients": [{"client": d.client, "status": d.status}
                                              for d in digests]}, kind="summary", now=now)
    deliver(loaded, sessions, msg, kind="summary", client=None, report_date=night,
            name=f"{night.isoformat()}-summary", now=now, send_it=send_it)
    return digests


def missing_digests(loaded: LoadedConfig, sessions: sessionmaker[Session], night: date,
                    now: datetime) -> list[str]:
    """After the deadline: clients whose digest for ``night`` was not delivered by the deadline
    (sent by SMTP; or, when no SMTP is configured, written to the outbox), whether it never
    went out or went out late. Each becomes an alert once."""
    tz = loaded.config.msp.timezone
    hour, minute = (int(x) for x in loaded.config.msp.digest_deadline.split(":"))
    deadline = local_instant(date.fromordinal(night.toordinal() + 1), time(hour, minute), tz)
    if now < deadline:
        return []
    # Without SMTP the outbox is where reports are delivered (picked up from there).
    delivered = ["sent"] if loaded.config.smtp is not None else ["sent", "outbox"]
    missing = []
    with sessions() as session, session.begin():
        _resolve_sent(session, now, delivered)
        for client in session.scalars(select(ClientRow).where(ClientRow.active.is_(True))):
            if client.key not in loaded.config.clients or not loaded.config.clients[
                    client.key].jobs:
                continue
            if not night_expected(session, client.key, *night_bounds(loaded, night)):
                continue  # no job of it existed that night: no report was due
            sent = session.scalars(select(EmailRow).where(
                EmailRow.client_id == client.id, EmailRow.kind == "digest",
                EmailRow.report_date == night, EmailRow.status.in_(delivered))
                .order_by(EmailRow.created_at)).first()
            on_time = sent is not None and (sent.sent_at or sent.created_at) <= deadline
            known = any((a.details or {}).get("night") == night.isoformat()
                        for a in session.scalars(select(AlertRow).where(
                            AlertRow.client_id == client.id,
                            AlertRow.kind == AlertKind.REPORT_MISSING.value)))
            if on_time or known:
                continue
            if sent is None:
                message = (f"the report of {night:%d/%m/%Y} was not sent to {client.name} by "
                           f"{loaded.config.msp.digest_deadline}: the client has no news of "
                           "their backups")
            else:  # it went out, but the client waited for it (the scheduler was down?)
                when = (sent.sent_at or sent.created_at).astimezone(tz)
                message = (f"the report of {night:%d/%m/%Y} went out to {client.name} late, "
                           f"on {when:%d/%m/%Y at %H:%M} (deadline "
                           f"{loaded.config.msp.digest_deadline}): was the scheduler down?")
            session.add(AlertRow(
                kind=AlertKind.REPORT_MISSING.value, severity="error", client_id=client.id,
                created_at=now, details={"night": night.isoformat()}, message=message))
            missing.append(client.key)
    return missing


def _resolve_sent(session: Session, now: datetime, delivered: list[str]) -> None:
    """A missing report that went out since (resent by hand, SMTP back): its alert is closed,
    and the dashboard stops showing it."""
    for alert in session.scalars(select(AlertRow).where(
            AlertRow.kind == AlertKind.REPORT_MISSING.value, AlertRow.resolved_at.is_(None))):
        night = (alert.details or {}).get("night")
        if not night:
            continue
        sent = session.scalars(select(EmailRow.id).where(
            EmailRow.client_id == alert.client_id, EmailRow.kind == "digest",
            EmailRow.report_date == date.fromisoformat(night),
            EmailRow.status.in_(delivered))).first()
        if sent is not None:
            alert.resolved_at = now


def _tell_client_about_quota(loaded: LoadedConfig, sessions: sessionmaker[Session], client: str,
                             details: dict[str, Any], kind: AlertKind, now: datetime, *,
                             send_it: bool) -> None:
    """The client's own message: 10 % over with the day its 30 days end (the grace end the
    quota rule computed, as recorded in the alert), backups stopped, or its new tier."""
    if client not in loaded.config.clients or details.get("largest"):
        return  # over the largest tier: the MSP decides with the client, not a form letter
    settings = loaded.config.clients[client]
    used, quota = int(details.get("used", 0)), int(details.get("quota", 0) or 1)
    grace = details.get("grace_ends")
    billed = details.get("billed_from")
    rendered = render("quota", loaded.language_of(settings), loaded.config.msp.timezone,
                      name=settings.name, used=used, quota=quota, percent=100 * used / quota,
                      state=kind.value.removeprefix("quota_"),
                      on_overrun=details.get("on_overrun", "block"),
                      deadline=datetime.fromisoformat(grace) if grace else None,
                      tier=int(details.get("to", 0)),
                      billed_from=date.fromisoformat(billed) if billed else None,
                      hotline=list(loaded.config.msp.hotline))
    msg = build(loaded, rendered, list(settings.contacts), status=RunStatus.AVERTISSEMENT,
                client=client, when=now.date(),
                data={"used": used, "quota": quota, "state": kind.value, "grace_ends": grace,
                      "tier": details.get("to"), "billed_from": billed}, kind="quota", now=now)
    local = now.astimezone(loaded.config.msp.timezone)
    deliver(loaded, sessions, msg, kind="quota", client=client, report_date=now.date(),
            name=f"{local:%Y-%m-%dT%H%M%S}-{client}-quota", now=now, send_it=send_it)
