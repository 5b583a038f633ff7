"""The morning: each client's report of the night, the hotline's summary, the reports that did
not go out by their deadline, and the alerts of everything that broke since the last ones."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from orchestrator.history.queries import night_expected, report_made
from orchestrator.jobs.context import RunContext
from orchestrator.report.digest import (
    Digest,
    build_digest,
    night_bounds,
    send_digest,
    update_due,
)
from orchestrator.report.hotline import (
    missing_digests,
    remind_quota,
    send_alerts,
    send_summary,
)

REPORT_HOUR = 7  # the clients' reports of the night go out from 07:00, MSP time
CATCH_UP = 7  # nights whose reports a scheduler that was down still sends, late


def night_of(ctx: RunContext, now: datetime) -> date:
    """The night a morning reports on: the evening before, MSP time."""
    return now.astimezone(ctx.loaded.config.msp.timezone).date() - timedelta(days=1)


def nights_due(ctx: RunContext, now: datetime) -> list[date]:
    """The nights whose reports are due by ``now``: last night once it is 07:00, and the six
    before it (a scheduler that was down over a morning sends those late), oldest first."""
    last = night_of(ctx, now)
    if now.astimezone(ctx.loaded.config.msp.timezone).hour < REPORT_HOUR:
        last -= timedelta(days=1)
    return [last - timedelta(days=n) for n in range(CATCH_UP - 1, -1, -1)]


@dataclass
class Told:
    digests: list[Digest] = field(default_factory=list)  # the clients' reports sent
    missing: list[str] = field(default_factory=list)  # clients whose report is late
    alerts: int = 0  # problems in the alert sent to the hotline


def send_reports(ctx: RunContext, night: date, now: datetime) -> list[Digest]:
    """The report of ``night`` to every client that had jobs then and has not had it yet (and
    a second one, once the runs still in progress at the first one have finished), then the
    hotline's summary (once). Idempotent: the history says what was made, so a restarted
    scheduler sends nothing twice. Raises MailError when SMTP refuses (the outbox has the
    message, and the report's absence becomes an alert after its deadline)."""
    loaded = ctx.loaded
    send_it = loaded.config.smtp is not None
    start, end = night_bounds(loaded, night)
    digests = []
    for client, settings in loaded.config.clients.items():
        with ctx.sessions() as session:
            made = report_made(session, "digest", client, night)
            due = (settings.jobs and night_expected(session, client, start, end)
                   and not made)
            again = made and update_due(session, loaded, client, night)
        if again and build_digest(ctx.sessions, loaded, client, night, now).pending:
            again = False  # another run of the night is not finished: told when it is
        if due or again:
            digest, _email = send_digest(loaded, ctx.sessions, client, night, now,
                                         send_it=send_it, update=bool(again))
            digests.append(digest)
    with ctx.sessions() as session:
        summary_due = not report_made(session, "summary", None, night) and any(
            night_expected(session, client, start, end) for client in loaded.config.clients)
    if summary_due:
        send_summary(loaded, ctx.sessions, night, now, send_it=send_it)
    return digests


def tell(ctx: RunContext, now: datetime) -> Told:
    """At every tick: the reports due and not yet made (late ones included), then the reports
    that did not go out by their deadline become alerts, then the alerts not yet sent go out
    in one message. Raises MailError (the next tick tries again)."""
    told = Told()
    for night in nights_due(ctx, now):
        told.digests += send_reports(ctx, night, now)
        told.missing += missing_digests(ctx.loaded, ctx.sessions, night, now)
    told.alerts = send_alerts(ctx.loaded, ctx.sessions, now,
                              send_it=ctx.loaded.config.smtp is not None)
    remind_quota(ctx.loaded, ctx.sessions, now, send_it=ctx.loaded.config.smtp is not None)
    return told
