"""The morning: each client's report of the night, the hotline's summary, the reports that did
not go out by their deadline, and the alerts of everything that broke since the last ones."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from orchestrator.history.queries import had_jobs, report_made
from orchestrator.jobs.context import RunContext
from orchestrator.report.digest import Digest, night_bounds, send_digest
from orchestrator.report.hotline import missing_digests, send_alerts, send_summary

REPORT_HOUR = 7  # the clients' reports of the night go out from 07:00, MSP time


def night_of(ctx: RunContext, now: datetime) -> date:
    """The night a morning reports on: the evening before, MSP time."""
    return now.astimezone(ctx.loaded.config.msp.timezone).date() - timedelta(days=1)


def reports_due(ctx: RunContext, now: datetime) -> bool:
    return now.astimezone(ctx.loaded.config.msp.timezone).hour >= REPORT_HOUR


@dataclass
class Told:
    digests: list[Digest] = field(default_factory=list)  # the clients' reports sent
    missing: list[str] = field(default_factory=list)  # clients whose report is late
    alerts: int = 0  # problems in the alert sent to the hotline


def send_reports(ctx: RunContext, night: date, now: datetime) -> list[Digest]:
    """The report of ``night`` to every client that had jobs then and has not had it yet, then
    the hotline's summary (once). Idempotent: the history says what was made, so a restarted
    scheduler sends nothing twice. Raises MailError when SMTP refuses (the outbox has the
    message, and the report's absence becomes an alert after its deadline)."""
    loaded = ctx.loaded
    send_it = loaded.config.smtp is not None
    _start, end = night_bounds(loaded, night)
    digests = []
    for client, settings in loaded.config.clients.items():
        with ctx.sessions() as session:
            due = (settings.jobs and had_jobs(session, client, end)
                   and not report_made(session, "digest", client, night))
        if due:
            digest, _email = send_digest(loaded, ctx.sessions, client, night, now,
                                         send_it=send_it)
            digests.append(digest)
    with ctx.sessions() as session:
        summary_due = not report_made(session, "summary", None, night) and any(
            had_jobs(session, client, end) for client in loaded.config.clients)
    if summary_due:
        send_summary(loaded, ctx.sessions, night, now, send_it=send_it)
    return digests


def watch(ctx: RunContext, night: date, now: datetime) -> Told:
    """At every tick: reports late past their deadline become alerts; alerts not yet sent go
    out in one message."""
    told = Told()
    told.missing = missing_digests(ctx.loaded, ctx.sessions, night, now)
    told.alerts = send_alerts(ctx.loaded, ctx.sessions, now,
                              send_it=ctx.loaded.config.smtp is not None)
    return told
