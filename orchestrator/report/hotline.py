"""What the hotline is told: an alert as soon as something broke (grouped: one message for
everything new since the last one, never one per retry), and a summary of all clients each
morning, worst first. Also: a client's digest that did not go out by the deadline is an alert."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.config.load import LoadedConfig
from orchestrator.findings import AlertKind, RunFailed, RunStatus, Severity, from_dict
from orchestrator.history.models import AlertRow, ClientRow, EmailRow, JobRow, RunRow
from orchestrator.history.queries import night_expected, offboard_date, run_by_uid
from orchestrator.humanize import size
from orchestrator.jobs.offboard import destructions_ahead
from orchestrator.report.digest import (
    TAGS,
    Acknowledged,
    Digest,
    acknowledged_outage,
    build_digest,
    missed_message,
    night_bounds,
)
from orchestrator.report.mail import build, deliver
from orchestrator.report.outcomes import hotline_sentence
from orchestrator.report.render import render
from orchestrator.schedule.spec import local_instant


@dataclass
class AlertLine:
    client: str
    job: str | None
    kind: str
    message: str
    when: datetime
    run: str | None = None  # where the run is read: its page, else its id and the command
    runbook: str | None = None  # what to do: the runbook of the error code
    name: str = ""  # the client's name, as the hotline says it on the phone
    what: str = ""  # the kind of alert in words, in the hotline's language
    said: str = ""  # what happened, in the hotline's language (from typed data)
    details: list[str] = field(default_factory=list)  # codes and original messages
    jobs: list[str] = field(default_factory=list)  # one cause's alerts: every job
    nights: list[date] = field(default_factory=list)  # ... and every night
    runs: list[str] = field(default_factory=list)  # ... and every run
    host: str | None = None
    count: int = 1  # how many alerts this line stands for
    scope: str = ""  # how far the cause reaches, in words (two alerts or more)
    acknowledged: str | None = None  # who acknowledged the outage and when, in words
    run_links: list[str] = field(default_factory=list)  # where each run is read


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


def run_where(loaded: LoadedConfig, uid: str, language: str) -> str:
    """Where the hotline reads a run: its page's address, else its id and the page of the
    dashboard that ``hvbackup serve`` runs on the orchestrator."""
    link = run_link(loaded, uid)
    if link:
        return link
    if language == "fr":
        return f"{uid} (tableau de bord lancé par hvbackup serve, page /runs/{uid})"
    return f"{uid} (dashboard run by hvbackup serve, page /runs/{uid})"


def runs_where(loaded: LoadedConfig, uids: list[str], language: str) -> list[str]:
    """Where the hotline reads these runs: one address each, else their ids on one line with
    the dashboard page to open (``hvbackup serve`` on the orchestrator)."""
    if not uids:
        return []
    if loaded.config.msp.dashboard_url:
        return [str(run_link(loaded, uid)) for uid in uids]
    if len(uids) == 1:
        return [run_where(loaded, uids[0], language)]
    ids = ", ".join(uids)
    if language == "fr":
        return [f"{ids} (tableau de bord lancé par hvbackup serve, pages /runs/<id>)"]
    return [f"{ids} (dashboard run by hvbackup serve, pages /runs/<id>)"]


class SummaryLinks:
    """What the summary's template asks of a client's night: its jobs to look at, grouped by
    cause, and where the hotline reads each one's run and runbook."""

    def __init__(self, loaded: LoadedConfig) -> None:
        self.loaded = loaded
        self.language = loaded.config.msp.language

    def groups(self, digest: Digest) -> list[list[Any]]:
        """The jobs that need a look, those of one cause together (same host, same error
        code, same status, told the same: one host down is one line for all its jobs)."""
        out: list[list[Any]] = []
        by_cause: dict[tuple[str, str, str, tuple[str, ...]], list[Any]] = {}
        for job in digest.jobs:
            if (job.status == RunStatus.REUSSIE and not job.flags) or job.state == "not_due":
                continue
            # Told the same (two runs missed at different times are two lines).
            key = (job.host, job.code, job.status, tuple(job.told)) \
                if job.host and job.code and job.status else None
            if key is not None and key in by_cause:
                by_cause[key].append(job)
                continue
            group = [job]
            out.append(group)
            if key is not None:
                by_cause[key] = group
        return out

    def runs(self, group: list[Any]) -> list[str]:
        return runs_where(self.loaded, [j.run for j in group if j.run], self.language)

    @staticmethod
    def details(group: list[Any]) -> list[str]:
        """The technician's lines of a group, each once (a host down says the same for all)."""
        out: list[str] = []
        for job in group:
            out += [line for line in job.details if line not in out]
        return out

    @staticmethod
    def acknowledged(group: list[Any]) -> Acknowledged | None:
        """The latest acknowledgement of the outage among the group's jobs."""
        return max((j.acknowledged for j in group if j.acknowledged is not None),
                   key=lambda a: a.at, default=None)

    @staticmethod
    def acknowledged_only(group: list[Any]) -> str:
        """The jobs of a group that are acknowledged, when not all of them are (else "")."""
        done = [j.job for j in group if j.acknowledged is not None]
        return ", ".join(done) if len(done) < len(group) else ""

    def runbook(self, job: Any) -> str | None:
        if not job.code:
            return None
        return runbook_link(self.loaded, job.code, self.language, job.script_code)


def _summary_links(loaded: LoadedConfig, digests: list[Digest]) -> SummaryLinks:
    return SummaryLinks(loaded)


def record_run_alert(sessions: sessionmaker[Session], run_uid: str, now: datetime) -> None:
    """After a run closes: the most serious alert its findings call for (an ECHEC, a NON
    EXECUTEE, a second copy in trouble), at most one per run."""
    with sessions() as session, session.begin():
        add_run_alert(session, run_uid, now)


def add_run_alert(session: Session, run_uid: str, now: datetime) -> None:
    """``record_run_alert`` in the caller's transaction (a run delivered by a site agent: the
    run and its alert are written together, or neither)."""
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
    """One message with every alert not yet sent; returns how many it carried. The alerts of
    one cause (same client, host, code and kind: one host down, its jobs, over several
    nights) are one line saying how many jobs and nights."""
    quota_notices: list[tuple[str, dict[str, Any], AlertKind]] = []
    language = loaded.config.msp.language
    tz = loaded.config.msp.timezone
    with sessions() as session, session.begin():
        rows = list(session.scalars(select(AlertRow).where(AlertRow.notified_at.is_(None))
                                    .order_by(AlertRow.created_at)))
        lines: list[AlertLine] = []
        by_cause: dict[tuple[str, str, str, str], AlertLine] = {}
        acks: dict[int, dict[str, Acknowledged]] = {}  # per line, per job: its outage's
        for row in rows:
            client = session.get(ClientRow, row.client_id) if row.client_id else None
            job = session.get(JobRow, row.job_id) if row.job_id else None
            run = session.get(RunRow, row.run_id) if row.run_id else None
            code = run.error_code if run is not None else (row.details or {}).get("code")
            kind = AlertKind(row.kind)
            said, detail = _alert_words(session, loaded, row, kind, client, run, code)
            row.notified_at = now
            if kind.is_quota and client is not None:
                quota_notices.append((client.key, dict(row.details), kind))
            where = client.key if client else str((row.details or {}).get("site", "-"))
            night = _night_of(run.scheduled_for, tz) if run is not None else None
            key = (where, job.host, str(code), kind.value) if job and code and run else None
            if key is not None and key in by_cause:
                assert job is not None and run is not None
                _join(by_cause[key], job.key, night, run.uid, row.created_at, detail)
                found = acknowledged_outage(session, job.id, run.scheduled_for, now)
                if found is not None:
                    acks.setdefault(id(by_cause[key]), {})[job.key] = found
                continue
            line = AlertLine(where, job.key if job else None, row.kind, row.message,
                             row.created_at, run_where(loaded, run.uid, language)
                             if run is not None else None,
                             runbook_link(loaded, code, language,
                                          run.script_code if run else None) if code else None,
                             name=client.name if client else "",
                             what=KIND_WORDS["fr" if language == "fr" else "en"][kind],
                             said=said, details=[detail] if detail else [],
                             jobs=[job.key] if job else [], nights=[night] if night else [],
                             runs=[run.uid] if run is not None else [],
                             host=job.host if job else None)
            if job is not None:
                found = acknowledged_outage(session, job.id,
                                            run.scheduled_for if run is not None else now, now)
                if found is not None:
                    acks.setdefault(id(line), {})[job.key] = found
            lines.append(line)
            if key is not None:
                by_cause[key] = line
        for line in lines:
            line.scope = _scope(line, language)
            seen = acks.get(id(line), {})
            if seen:  # the latest; naming the jobs it covers when not all of them
                only = [j for j in line.jobs if j in seen] if len(seen) < len(line.jobs) else []
                line.acknowledged = _ack_words(max(seen.values(), key=lambda a: a.at),
                                               language, tz, only)
            line.run_links = runs_where(loaded, line.runs, language)
    for client_key, details, kind in quota_notices:
        _tell_client_about_quota(loaded, sessions, client_key, details, kind, now,
                                 send_it=send_it)
    if not lines:
        return 0
    rendered = render("alerts", language, tz, alerts=lines, msp=loaded.config.msp.name)
    msg = build(loaded, rendered, list(loaded.config.msp.hotline), status=RunStatus.ECHEC,
                client="*", when=now.date(), data={"alerts": [asdict(line) for line in lines]},
                kind="alerts", now=now)
    local = now.astimezone(tz)  # outbox names in the MSP's time
    deliver(loaded, sessions, msg, kind="alert", client=None, report_date=now.date(),
            name=f"{local:%Y-%m-%dT%H%M%S}-alerts", now=now, send_it=send_it)
    return len(rows)


def _night_of(when: datetime, tz: Any) -> date:
    """The night a run belongs to: noon to noon, MSP time (report/digest.py)."""
    return (when.astimezone(tz) - timedelta(hours=12)).date()


def _join(line: AlertLine, job: str, night: date | None, uid: str | None, when: datetime,
          detail: str | None) -> None:
    """One more alert of the cause of ``line``: its job, night, run and technical line."""
    if job not in line.jobs:
        line.jobs.append(job)
    if night is not None and night not in line.nights:
        line.nights.append(night)
    if uid is not None:
        line.runs.append(uid)
    if detail and detail not in line.details:
        line.details.append(detail)
    line.when = max(line.when, when)
    line.count += 1


def _scope(line: AlertLine, language: str) -> str:
    """How far one cause reaches, when it is more than one alert: ``serveur hv01 : 2 tâches,
    2 nuits (19/11, 20/11)``."""
    if line.count < 2:
        return ""
    jobs, nights = len(line.jobs), sorted(line.nights)
    days = ", ".join(f"{n:%d/%m}" for n in nights)
    if language == "fr":
        return (f"même cause, serveur {line.host} : {jobs} tâche{'s' if jobs > 1 else ''}, "
                f"{len(nights)} nuit{'s' if len(nights) > 1 else ''} ({days})")
    return (f"one cause, host {line.host}: {jobs} job{'s' if jobs > 1 else ''}, "
            f"{len(nights)} night{'s' if len(nights) > 1 else ''} ({days})")


def _ack_words(found: Acknowledged | None, language: str, tz: Any,
               only: list[str] | None = None) -> str | None:
    """Who acknowledged the outage and when, in the hotline's language; ``only``: the jobs
    it covers, when not all those of the line."""
    if found is None:
        return None
    at = found.at.astimezone(tz)
    comment = found.comment.strip()
    jobs = f" ({', '.join(only)})" if only else ""
    if language == "fr":
        who = f" par {found.by}" if found.by else ""
        return (f"déjà acquittée{jobs}{who} le {at:%d/%m à %H:%M}"
                + (f" : « {comment} »" if comment else ""))
    who = f" by {found.by}" if found.by else ""
    return f"already acknowledged{jobs}{who} on {at:%d/%m at %H:%M}" + (
        f': "{comment}"' if comment else "")


def _alert_words(session: Session, loaded: LoadedConfig, row: AlertRow, kind: AlertKind,
                 client: ClientRow | None, run: RunRow | None, code: str | None
                 ) -> tuple[str, str | None]:
    """What the hotline reads first of an alert, in its language, from typed data (the
    run's findings, the alert's figures and dates, never the stored English message), and
    the technician's line (the code and the original message), if any."""
    language = loaded.config.msp.language
    tz = loaded.config.msp.timezone
    fr = language == "fr"
    details = dict(row.details or {})
    if kind.is_quota and client is not None:
        return _quota_message(kind, client.name, details, language, tz) or row.message, None
    if run is not None:
        findings = [f for f in map(from_dict, run.findings or []) if f.alert is not None]
        top = max(findings, key=lambda f: f.severity, default=None)
        if kind == AlertKind.NON_EXECUTEE:
            said = missed_message(run.scheduled_for, tz, language)
        elif top is not None:
            said = hotline_sentence(top, language)
        else:
            said = hotline_sentence(RunFailed(None, code or "HVB-ERROR", ""), language)
        # The technician's line: the codes and the alert's message as it was recorded.
        codes = (top.code if top is not None else code or "HVB-ERROR") + (
            f" {run.script_code}" if run.script_code else "")
        return said, f"{codes}: {row.message}" if row.message else codes
    if kind == AlertKind.REPORT_MISSING and client is not None and details.get("night"):
        night = date.fromisoformat(str(details["night"]))
        deadline = loaded.config.msp.digest_deadline
        sent = session.scalars(select(EmailRow).where(
            EmailRow.client_id == client.id, EmailRow.kind == "digest",
            EmailRow.report_date == night).order_by(EmailRow.created_at)).first()
        went = sent.sent_at or sent.created_at if sent is not None else None
        if went is not None and went <= row.created_at:
            local = went.astimezone(tz)
            said = (f"le compte rendu du {night:%d/%m/%Y} est parti en retard chez "
                    f"{client.name}, le {local:%d/%m/%Y à %H:%M} (limite {deadline}) : le "
                    "planificateur était-il arrêté ?" if fr else
                    f"the report of {night:%d/%m/%Y} went out to {client.name} late, on "
                    f"{local:%d/%m/%Y at %H:%M} (deadline {deadline}): was the scheduler "
                    "down?")
        else:
            said = (f"le compte rendu du {night:%d/%m/%Y} n'est pas parti chez {client.name} "
                    f"avant {deadline} : le client n'a pas de nouvelles de ses sauvegardes"
                    if fr else
                    f"the report of {night:%d/%m/%Y} was not sent to {client.name} by "
                    f"{deadline}: the client has no news of their backups")
        return said, None
    # Written in the hotline's words when recorded (a silent agent), or nothing better known.
    return row.message, (str(code) if code else None)


def send_summary(loaded: LoadedConfig, sessions: sessionmaker[Session], night: date,
                 now: datetime, *, send_it: bool) -> list[Any]:
    """All clients' nights, worst first, to the hotline; first, the data destructions (contract
    ends) due within 7 days."""
    with sessions() as session:  # a client whose contract ended before the night: none
        owing = [c for c in loaded.config.clients
                 if (ended := offboard_date(session, c)) is None or ended > night]
    digests = [build_digest(sessions, loaded, client, night, now) for client in owing]
    # Worst first, by what happened to each client's night (``Digest.headline``): a client
    # whose only news is a run in progress comes after every failure, never among them.
    digests.sort(key=lambda d: (TAGS.index(d.headline), d.status.rank, d.client))
    top = digests[0].headline if digests else RunStatus.REUSSIE.value
    rendered = render("summary", loaded.config.msp.language, loaded.config.msp.timezone,
                      digests=digests, night=night, msp=loaded.config.msp.name, top=top,
                      destructions=destructions_ahead(loaded, sessions, now),
                      links=_summary_links(loaded, digests))
    msg = build(loaded, rendered, list(loaded.config.msp.hotline), status=top, client="*",
                when=night, data={"clients": [{"client": d.client, "status": d.status,
                                               "headline": d.headline, "counts": d.counts}
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


# A client still over its volume is reminded this many days before its grace ends.
REMINDER_DAYS = 7


def remind_quota(loaded: LoadedConfig, sessions: sessionmaker[Session], now: datetime, *,
                 send_it: bool) -> int:
    """A week before the 30 days end, a client still over its subscribed volume gets one
    reminder with the same date (the grace end recorded in its warning). Returns how many."""
    from orchestrator.jobs.quota import client_state

    due: list[tuple[int, str]] = []
    with sessions() as session:
        for alert, client in session.execute(
                select(AlertRow, ClientRow).join(ClientRow, AlertRow.client_id == ClientRow.id)
                .where(AlertRow.kind == AlertKind.QUOTA_WARNING.value,
                       AlertRow.resolved_at.is_(None))):
            details = alert.details if isinstance(alert.details, dict) else {}
            grace = details.get("grace_ends")
            if details.get("reminded") or not grace or client.key not in loaded.config.clients:
                continue
            if datetime.fromisoformat(grace) - timedelta(days=REMINDER_DAYS) <= now:
                due.append((alert.id, client.key))
    sent = 0
    for alert_id, key in due:
        state = client_state(sessions, loaded, key, now)
        if state.status != "warning" or state.grace_ends is None or state.quota is None:
            continue  # back under, or blocked already: the other messages say so
        if state.grace_ends <= now:
            continue
        days_left = max(1, (state.grace_ends.astimezone(loaded.config.msp.timezone).date()
                            - now.astimezone(loaded.config.msp.timezone).date()).days)
        _tell_client_about_quota(loaded, sessions, key, {
            "used": state.used, "quota": state.quota, "grace_ends": state.grace_ends.isoformat(),
            "on_overrun": state.on_overrun, "days_left": days_left}, None, now,
            send_it=send_it)
        with sessions() as session, session.begin():
            alert = session.get_one(AlertRow, alert_id)
            alert.details = {**(alert.details or {}), "reminded": now.isoformat()}
        sent += 1
    return sent


def _tell_client_about_quota(loaded: LoadedConfig, sessions: sessionmaker[Session], client: str,
                             details: dict[str, Any], kind: AlertKind | None, now: datetime, *,
                             send_it: bool) -> None:
    """The client's own message: 10 % over with the day its 30 days end (the grace end the
    quota rule computed, as recorded in the alert), backups stopped, or its new tier; ``kind``
    None: the reminder a week before the grace ends."""
    if client not in loaded.config.clients or details.get("largest"):
        return  # over the largest tier: the MSP decides with the client, not a form letter
    settings = loaded.config.clients[client]
    used, quota = int(details.get("used", 0)), int(details.get("quota", 0) or 1)
    grace = details.get("grace_ends")
    billed = details.get("billed_from")
    rendered = render("quota", loaded.language_of(settings), loaded.config.msp.timezone,
                      name=settings.name, used=used, quota=quota, percent=100 * used / quota,
                      state=kind.value.removeprefix("quota_") if kind else "reminder",
                      days_left=int(details.get("days_left", 0)),
                      on_overrun=details.get("on_overrun", "block"),
                      deadline=datetime.fromisoformat(grace) if grace else None,
                      tier=int(details.get("to", 0)),
                      billed_from=date.fromisoformat(billed) if billed else None,
                      hotline=list(loaded.config.msp.hotline))
    msg = build(loaded, rendered, list(settings.contacts), status=RunStatus.AVERTISSEMENT,
                client=client, when=now.date(),
                data={"used": used, "quota": quota,
                      "state": kind.value if kind else "quota_reminder", "grace_ends": grace,
                      "tier": details.get("to"), "billed_from": billed}, kind="quota", now=now)
    local = now.astimezone(loaded.config.msp.timezone)
    deliver(loaded, sessions, msg, kind="quota", client=client, report_date=now.date(),
            name=f"{local:%Y-%m-%dT%H%M%S}-{client}-quota", now=now, send_it=send_it)
