"""``hvbackup nights``: simulated nights on simulated hosts (the demo, trying a config).

The scheduler daemon itself (``jobs/daemon.py``) runs, on a simulated clock: the clock jumps
to every instant something is due (each job's scheduled times and window ends, the morning's
reports and their deadline, maintenance) and the daemon ticks there, exactly as in
production, while the simulated hosts change their disks, databases and shares from one day
to the next. ``--stopped`` leaves a stretch without ticks, as a scheduler that was down: what
was due then is run late or recorded NON EXECUTEE when it comes back.
"""

from __future__ import annotations

import argparse
import threading
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from orchestrator.cli.common import add_config_argument, context, load_from_args
from orchestrator.cli.interactive import human_bytes
from orchestrator.cli.nightagents import (
    NightAgent,
    ServedApi,
    agent_instants,
    night_agents,
    run_agent,
)
from orchestrator.cli.timefmt import local_str
from orchestrator.cli.ui import Ui
from orchestrator.clock import Clock, SimulatedClock
from orchestrator.config.load import LoadedConfig
from orchestrator.errors import UsageError
from orchestrator.findings import RunStatus
from orchestrator.history.sync import backdate_jobs
from orchestrator.jobs.daemon import Daemon
from orchestrator.jobs.maintenance import MAINTENANCE_HOUR, Maintained
from orchestrator.jobs.morning import REPORT_HOUR, Told
from orchestrator.jobs.night import Due, due_runs
from orchestrator.jobs.run import RunResult
from orchestrator.schedule.spec import local_instant


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "nights", help="run simulated nights (simulated hosts only)",
        description="Run the scheduler over N nights starting at --start, with a simulated "
                    "clock: every job as scheduled, the morning's reports, maintenance. Only "
                    "for configurations whose hosts are all simulated.",
    )
    add_config_argument(parser)
    parser.add_argument("--nights", type=int, default=3, metavar="N")
    parser.add_argument("--start", metavar="YYYY-MM-DD", required=True,
                        help="the first night (its evening)")
    parser.add_argument("--stopped", action="append", default=[], metavar="FROM/TO",
                        help="the scheduler is down from FROM to TO (MSP time, e.g. "
                             "2026-11-17T22:30/2026-11-18T07:45); may be repeated")
    parser.add_argument("--agent", action="append", default=[], metavar="DIR",
                        help="the state folder of a site's agent enrolled with "
                             "http://127.0.0.1:PORT: the agents' server is served there on the "
                             "simulated clock (down while --stopped: the central server is "
                             "stopped too), and the agent runs in a process of its own at its "
                             "site's scheduled times; may be repeated")
    parser.set_defaults(handler=run)


@dataclass(frozen=True)
class Stopped:
    start: datetime
    end: datetime

    def __contains__(self, when: datetime) -> bool:
        return self.start <= when < self.end


def parse_stopped(text: str, tz: ZoneInfo) -> Stopped:
    """``FROM/TO`` in MSP time; raises UsageError naming what is wrong."""
    start_text, slash, end_text = text.partition("/")
    try:
        if not slash:
            raise ValueError
        start, end = (datetime.fromisoformat(t).replace(tzinfo=tz)
                      for t in (start_text, end_text))
    except ValueError:
        raise UsageError(f"--stopped {text!r}: expected FROM/TO, e.g. "
                         "2026-11-17T22:30/2026-11-18T07:45 (MSP time)") from None
    if end <= start:
        raise UsageError(f"--stopped {text!r}: TO must come after FROM")
    return Stopped(start, end)


def instants(loaded: LoadedConfig, start: datetime, end: datetime,
             stopped: list[Stopped]) -> list[datetime]:
    """When the simulated scheduler ticks: whenever something can become due (pure)."""
    tz = loaded.config.msp.timezone
    found: set[datetime] = set()
    for due in due_runs(list(loaded.jobs()), tz, start, end):
        found |= {due.scheduled_for, due.window_end + timedelta(minutes=1)}
    hour, minute = (int(x) for x in loaded.config.msp.digest_deadline.split(":"))
    day, last = start.astimezone(tz).date(), end.astimezone(tz).date()
    while day <= last:
        found |= {local_instant(day, time(REPORT_HOUR), tz),
                  local_instant(day, time(hour, minute), tz) + timedelta(minutes=1),
                  local_instant(day, time(MAINTENANCE_HOUR), tz)}
        day += timedelta(days=1)
    found |= {s.end for s in stopped}  # the scheduler comes back
    return sorted(t for t in found if start < t <= end and not any(t in s for s in stopped))


class Printer:
    """What the daemon does, as lines while it happens and a table at the end."""

    def __init__(self, ui: Ui, tz: ZoneInfo) -> None:
        self.ui, self.tz = ui, tz
        self.rows: list[tuple[datetime, str, list[str]]] = []
        self._lock = threading.Lock()

    def _say(self, when: datetime, text: str) -> None:
        with self._lock:
            self.ui.print(f"{local_str(when, self.tz)}  {text}")

    def finished(self, due: Due, result: RunResult) -> None:
        figures = result.figures
        top = result.headline
        note = (top.headline if top else
                "; ".join(f"INHABITUELLE: {f.reason}" for f in result.flags))[:70]
        self._say(due.scheduled_for, f"{due.ref.label:<20} {result.status}")
        with self._lock:
            self.rows.append((due.scheduled_for, due.ref.label, [
                local_str(due.scheduled_for, self.tz), due.ref.label, result.status,
                result.consistency or "-", human_bytes(figures.bytes_read or 0),
                human_bytes(figures.bytes_sent or 0), str(figures.files or 0), note]))

    def missed(self, due: Due) -> None:
        self._say(due.scheduled_for, f"{due.ref.label:<20} {RunStatus.NON_EXECUTEE} (the "
                  "scheduler was down until its window closed)")
        with self._lock:
            self.rows.append((due.scheduled_for, due.ref.label, [
                local_str(due.scheduled_for, self.tz), due.ref.label, RunStatus.NON_EXECUTEE,
                "-", "-", "-", "-", "scheduler down"]))

    def told(self, when: datetime, told: Told) -> None:
        for digest in told.digests:
            pending = ", ".join(f"{j.job} {j.state}" for j in digest.pending)
            self._say(when, f"{'update' if digest.update else 'report'} to {digest.client}: "
                      f"[{digest.headline}] {digest.ok_count}/{digest.due_count}"
                      + (f" ({pending}: the client is told again when it ends)"
                         if pending else "")
                      + (" (the runs in progress at the first report have ended)"
                         if digest.update else ""))
        for client in told.missing:
            self._say(when, f"report to {client} late: the hotline is alerted")
        if told.alerts:
            self._say(when, f"hotline alerted: {told.alerts} problem(s)")

    def maintained(self, when: datetime, done: Maintained) -> None:
        forgotten = sum(p.forgotten for p in done.pruned)
        freed = sum(r.bytes_freed for p in done.pruned for r in p.baies.values())
        if forgotten or freed or done.failed:
            self._say(when, f"maintenance: {forgotten} restore point(s) forgotten, "
                      f"{human_bytes(freed)} freed"
                      + "".join(f"; prune of {c} failed: {m}" for c, m in done.failed.items()))


def run(args: argparse.Namespace, clock: Clock, ui: Ui) -> int:
    loaded = load_from_args(args)
    real = [f"{c}/{h}" for c, client in loaded.config.clients.items()
            for h, host in client.hosts.items() if host.transport != "simulated"]
    if real:
        raise UsageError(f"'nights' only drives simulated hosts; not simulated: {', '.join(real)}")
    if not 1 <= args.nights <= 400:
        raise UsageError("--nights must be between 1 and 400")
    try:
        first = date.fromisoformat(args.start)
    except ValueError:
        raise UsageError(f"--start {args.start!r} is not a date (YYYY-MM-DD)") from None
    tz = loaded.config.msp.timezone
    stopped = [parse_stopped(text, tz) for text in args.stopped]
    start = local_instant(first, time(12, 0), tz)
    end = start + timedelta(days=args.nights)
    sim = SimulatedClock(start)
    ctx = context(loaded, sim)
    ctx.sleep = sim.sleep
    with ctx.sessions() as session, session.begin():
        backdate_jobs(session, start)  # the simulated hosts hold these jobs from the start
    printer = Printer(ui, tz)
    daemon = Daemon(ctx, listener=printer)
    agents = night_agents(loaded, args.agent)
    skipped = _already_run(ctx, loaded, start, end)
    for when, label in skipped:
        ui.print(f"{local_str(when, tz)}  {label:<20} skipped: the "
                 f"{when:%Y-%m-%d %H:%M} UTC run of {label} is already in the history")
    ticks = instants(loaded, start, end, stopped)
    comebacks = [s.end for s in stopped]
    agent_times = {a.folder: set(agent_instants(loaded, a, start, end, comebacks))
                   for a in agents}
    api = ServedApi(loaded, ctx.sessions, sim, agents[0].host, agents[0].port) \
        if agents else None
    try:
        for when in sorted(set(ticks).union(*agent_times.values())):
            sim.set(max(when, sim.now()))
            if api is not None:  # the central server is down while the scheduler is
                if any(when in s for s in stopped):
                    api.stop()
                else:
                    api.start()
            for agent in agents:  # first: a run it delivers now is in the history at once
                if when in agent_times[agent.folder]:
                    at = sim.now()
                    _code, said = run_agent(agent, at)
                    for line in said:
                        ui.print(f"{local_str(at, tz)}  agent {agent.name}: {line}")
            if when in ticks:
                while daemon.tick():  # a job that waited for its host starts when it is free
                    daemon.wait_idle()
                daemon.wait_idle()
    finally:
        if api is not None:
            api.stop()
    printer.rows += _agent_rows(ctx, loaded, agents, start, end)
    ui.print()
    ui.table(["SCHEDULED", "JOB", "STATUS", "CONSISTENCY", "READ", "SENT", "FILES", "NOTE"],
             [row for _when, _label, row in sorted(printer.rows, key=lambda r: r[:2])])
    return 0


def _agent_rows(ctx: Any, loaded: LoadedConfig, agents: list[NightAgent], start: datetime,
                end: datetime) -> list[tuple[datetime, str, list[str]]]:
    """The table's lines for the runs the agents delivered (as the server recorded them)."""
    from sqlalchemy import select

    from orchestrator.history.models import ClientRow, JobRow, RunRow

    tz = loaded.config.msp.timezone
    rows = []
    with ctx.sessions() as session:
        for agent in agents:
            for run, client, job in session.execute(
                    select(RunRow, ClientRow.key, JobRow.key)
                    .join(JobRow, RunRow.job_id == JobRow.id)
                    .join(ClientRow, JobRow.client_id == ClientRow.id)
                    .where(RunRow.scheduled_for > start, RunRow.scheduled_for <= end,
                           RunRow.claimed_by == f"agent:{agent.name}")):
                when = run.scheduled_for
                note = f"agent {agent.name}" + (
                    f"; {run.error_message.splitlines()[0]}"[:60] if run.error_message else "")
                rows.append((when, f"{client}/{job}", [
                    local_str(when, tz), f"{client}/{job}", run.status or "-",
                    run.consistency or "-", human_bytes(run.bytes_read or 0),
                    human_bytes(run.bytes_sent or 0), str(run.files or 0), note]))
    return rows


def _already_run(ctx: Any, loaded: LoadedConfig, start: datetime,
                 end: datetime) -> list[tuple[datetime, str]]:
    """Scheduled runs of these nights the history has already (nights run twice)."""
    from orchestrator.history.queries import run_at

    found = []
    with ctx.sessions() as session:
        for due in due_runs(list(loaded.jobs()), loaded.config.msp.timezone, start, end):
            if run_at(session, due.ref.client_name, due.ref.job_name,
                      due.scheduled_for) is not None:
                found.append((due.scheduled_for, due.ref.label))
    return found
