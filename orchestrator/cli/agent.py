"""``hvbackup agent``: site agents. On the central server: ``token`` (a single-use enrollment
token for a site, printed once), ``list`` and ``revoke``. On the site's machine: ``enroll``
``deliver`` (the spool's runs to the server) and ``run`` (the agent's service: its site's jobs
on their schedule). See docs/agents.md."""

from __future__ import annotations

import argparse
import os
import signal
import socket
from datetime import datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from orchestrator import __version__
from orchestrator.agent import server as door
from orchestrator.agent import state as agent_state
from orchestrator.agent.protocol import EnrollIn
from orchestrator.agent.registry import ENROLLMENT_HOURS_MAX, create_enrollment, list_agents, revoke
from orchestrator.agent.runner import Agent, Cycle
from orchestrator.agent.spool import Spool, deliver
from orchestrator.cli.common import actor, add_config_argument, context, load_from_args
from orchestrator.cli.timefmt import local_str
from orchestrator.cli.ui import Ui
from orchestrator.clock import Clock, SimulatedClock
from orchestrator.config.sitepart import site_names
from orchestrator.config.suggest import did_you_mean
from orchestrator.errors import ServerRefused, ServerUnreachable, UsageError


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "agent", help="site agents (tokens, list, revoke; enroll, deliver, run on the site)",
        description="Site agents run their site's jobs where the data lives and deliver the "
                    "runs to this server (docs/agents.md).")
    actions = parser.add_subparsers(dest="agent_command", metavar="ACTION", required=True)
    token = actions.add_parser("token", help="a single-use enrollment token for a site "
                               "(printed once)")
    add_config_argument(token)
    token.add_argument("--site", required=True, help="the site the agent will serve")
    token.add_argument("--hours", type=float, default=24,
                       help=f"hours it stays valid (default 24, at most {ENROLLMENT_HOURS_MAX})")
    token.set_defaults(handler=run_token)
    show = actions.add_parser("list", help="the enrolled agents, their sites and last news")
    add_config_argument(show)
    show.set_defaults(handler=run_list)
    drop = actions.add_parser("revoke", help="refuse an agent's token from now on")
    add_config_argument(drop)
    drop.add_argument("name", help="the agent's name (see 'hvbackup agent list')")
    drop.set_defaults(handler=run_revoke)

    enroll = actions.add_parser("enroll", help="on the site's machine: enroll this agent "
                                "with the central server")
    enroll.add_argument("--server", required=True, metavar="URL",
                        help="the central server, e.g. https://sauvegardes.msp.example")
    enroll.add_argument("--token", metavar="TOKEN",
                        help=f"the enrollment token (default: ${ENROLL_TOKEN_ENV})")
    enroll.add_argument("--ca-file", metavar="FILE",
                        help="the private CA that signed the server's certificate")
    enroll.add_argument("--name", help="this agent's name (default: the machine's name)")
    _state_argument(enroll)
    enroll.set_defaults(handler=run_enroll)
    send = actions.add_parser("deliver", help="on the site's machine: send the runs that "
                              "wait in the spool")
    _state_argument(send)
    send.set_defaults(handler=run_deliver)
    service = actions.add_parser("run", help="on the site's machine: the agent's service (its "
                                 "site's jobs on their schedule, delivered to the server)")
    _state_argument(service)
    service.add_argument("--once", action="store_true",
                         help="one cycle (configuration, due runs, run-now requests, delivery, "
                              "heartbeat), then exit")
    service.add_argument("--at", metavar="WHEN",
                         help="with --once, on simulated hosts only ('hvbackup nights', the "
                              "demo): run the cycle as if it were WHEN (ISO time with its "
                              "offset, e.g. 2026-11-17T23:00:00+01:00)")
    service.set_defaults(handler=run_service)


ENROLL_TOKEN_ENV = "HVBACKUP_AGENT_ENROLL_TOKEN"


def _state_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-dir", metavar="DIR",
                        help="the agent's state folder (default: 'agent' in the state folder)")


def run_token(args: argparse.Namespace, clock: Clock, ui: Ui) -> int:
    loaded = load_from_args(args)
    sites = site_names(loaded.config)
    if args.site not in sites:
        raise UsageError(f"no site {args.site!r} in {loaded.path}"
                         + did_you_mean(args.site, sites, listed_as="sites"))
    ctx = context(loaded, clock)
    value, expires = create_enrollment(ctx.sessions, args.site, args.hours, actor(),
                                       clock.now())
    tz = loaded.config.msp.timezone
    ui.print(f"enrollment token for site {args.site}, single use, valid until "
             f"{local_str(expires, tz)} (shown once):")
    ui.print(value)
    ui.print(f"on the site's machine: hvbackup agent enroll --server URL --token {value[:8]}...")
    return 0


def run_list(args: argparse.Namespace, clock: Clock, ui: Ui) -> int:
    loaded = load_from_args(args)
    ctx = context(loaded, clock)
    tz = loaded.config.msp.timezone
    rows = [[a.name, a.site, a.version or "-", local_str(a.enrolled_at, tz),
             local_str(a.last_seen_at, tz) if a.last_seen_at else "never", str(a.queued_runs),
             f"revoked {local_str(a.revoked_at, tz)}" if a.revoked_at else "enrolled"]
            for a in list_agents(ctx.sessions)]
    if not rows:
        ui.print("no agent enrolled (create a token with: hvbackup agent token --site SITE)")
        return 0
    ui.table(["AGENT", "SITE", "VERSION", "ENROLLED", "LAST SEEN", "WAITING", "STATE"], rows)
    return 0


def run_revoke(args: argparse.Namespace, clock: Clock, ui: Ui) -> int:
    ctx = context(load_from_args(args), clock)
    site = revoke(ctx.sessions, args.name, actor(), clock.now())
    ui.print(f"agent {args.name} (site {site}) revoked: its token is refused from now on")
    return 0


def run_enroll(args: argparse.Namespace, clock: Clock, ui: Ui) -> int:
    url = agent_state.server_url(args.server)
    token = args.token or os.environ.get(ENROLL_TOKEN_ENV)
    if not token:
        raise UsageError(f"an enrollment token is needed: --token or ${ENROLL_TOKEN_ENV} "
                         "(create one on the server: hvbackup agent token --site SITE)")
    ca_file = os.path.abspath(args.ca_file) if args.ca_file else None
    if ca_file and not os.path.isfile(ca_file):
        raise UsageError(f"--ca-file {args.ca_file}: no such file")
    name = args.name or socket.gethostname().split(".")[0]
    try:
        request = EnrollIn(token=token, name=name, version=__version__)
    except ValidationError:
        raise UsageError(f"--name {name!r}: use letters, digits, '.', '-' and '_' (at most "
                         "100), starting with a letter or digit") from None
    answer = door.enroll(url, Path(ca_file) if ca_file else None, request)
    folder = agent_state.agent_dir(args.state_dir)
    agent_state.save(folder, agent_state.AgentState(url, answer.site, answer.name, ca_file),
                     answer.agent_token)
    ui.print(f"agent {answer.name} enrolled for site {answer.site} with {url} "
             f"(state in {folder})")
    return 0


def run_deliver(args: argparse.Namespace, clock: Clock, ui: Ui) -> int:
    folder = agent_state.agent_dir(args.state_dir)
    enrolled, token = agent_state.load(folder)
    spool = Spool(folder / agent_state.SPOOL_FILE)
    with door.HttpServer(enrolled.server, enrolled.ca_path, token) as server:
        result = deliver(spool, server, clock.now())
    for line in result.refused:
        ui.error(f"refused by the server, kept in the spool and no longer sent: {line}")
    if result.unreachable:
        ui.error(f"{result.delivered} run(s) delivered, {result.waiting} waiting: "
                 f"{result.unreachable}")
        return ServerUnreachable.exit_code
    ui.print(f"{result.delivered} run(s) delivered to {enrolled.server}, none waiting")
    return ServerRefused.exit_code if result.refused else 0


LATE = timedelta(minutes=15)  # a run delivered this long after it ended is said late


def _told(ui: Ui, done: Cycle, tz: ZoneInfo, now: datetime) -> None:
    for uid in done.ran:
        ui.print(f"run {uid} finished: {done.status.get(uid, '?')}")
    if done.delivery is not None:
        for line in done.delivery.refused:
            ui.error(f"refused by the server, kept in the spool and no longer sent: {line}")
        if done.delivery.delivered:
            ui.print(f"{done.delivery.delivered} run(s) delivered")
        for uid, job, scheduled, finished, steps, lines in done.delivery.sent:
            if now - finished >= LATE:
                ui.print(f"  delivered late: {job} of {local_str(scheduled, tz)} (run {uid}, "
                         f"ended {local_str(finished, tz)}), whole: {steps} step(s), "
                         f"{lines} log line(s)")
    if done.offline:
        ui.error(f"the server cannot be reached, the runs wait in the spool: {done.offline}")


def _simulated_at(value: str) -> SimulatedClock:
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise UsageError(f"--at {value!r}: expected an ISO time with its offset, e.g. "
                         "2026-11-17T23:00:00+01:00")
    return SimulatedClock(when)


def _tz(agent: Agent) -> ZoneInfo:
    return agent.ctx.loaded.config.msp.timezone if agent.ctx is not None else ZoneInfo("UTC")


def run_service(args: argparse.Namespace, clock: Clock, ui: Ui) -> int:
    if args.at and not args.once:
        raise UsageError("--at goes with --once (one simulated cycle)")
    if args.at:
        clock = _simulated_at(args.at)
    folder = agent_state.agent_dir(args.state_dir)
    enrolled, token = agent_state.load(folder)
    with door.HttpServer(enrolled.server, enrolled.ca_path, token) as server:
        agent = Agent(folder, server, clock, simulated_only=bool(args.at))
        if args.once:
            done = agent.cycle()
            _told(ui, done, _tz(agent), clock.now())
            waiting = len(agent.spool.waiting())
            ui.print(f"agent {enrolled.name} (site {enrolled.site}): {len(done.ran)} run(s), "
                     f"{waiting} waiting in the spool")
            if done.delivery is not None and done.delivery.refused:
                return ServerRefused.exit_code
            return ServerUnreachable.exit_code if done.offline else 0

        def stop(signum: int, _frame: FrameType | None) -> None:
            ui.print(f"{signal.Signals(signum).name}: stopping after the run in progress")
            agent.stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        ui.print(f"hvbackup agent {enrolled.name} for site {enrolled.site} of "
                 f"{enrolled.server}; SIGTERM to stop")
        agent.serve(report=lambda done: _told(ui, done, _tz(agent), clock.now()))
        ui.print("stopped")
    return 0
