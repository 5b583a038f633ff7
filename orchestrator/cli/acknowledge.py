"""``hvbackup acknowledge``: what the dashboard's "Prendre en charge" does, from a terminal (a
script, the demo): the job's last failed run, or the job itself when it is late with no failed
run (the scheduler down), by a staff account, with a comment; audited."""

from __future__ import annotations

import argparse
from typing import Any

from orchestrator.cli.common import actor, add_config_argument, context, load_from_args
from orchestrator.cli.timefmt import local_str
from orchestrator.cli.ui import Ui
from orchestrator.clock import Clock
from orchestrator.dashboard.acknowledge import (
    acknowledge_job,
    acknowledge_run,
    last_bad_run,
    staff_user,
)
from orchestrator.errors import UsageError
from orchestrator.history.queries import known_job, schedules_and_last_runs
from orchestrator.schedule.late import of_jobs


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "acknowledge", help="acknowledge a job's failure (as the dashboard does)",
        description="Acknowledge the last failed run of CLIENT/JOB as a dashboard account; "
                    "the acknowledgement holds until the job succeeds again.")
    add_config_argument(parser)
    parser.add_argument("job", metavar="CLIENT/JOB")
    parser.add_argument("--user", required=True, help="the admin or hotline account")
    parser.add_argument("--comment", required=True)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, clock: Clock, ui: Ui) -> int:
    client, _, job = args.job.partition("/")
    if not client or not job:
        raise UsageError(f"{args.job!r}: expected CLIENT/JOB, e.g. acme/erp")
    comment = args.comment.strip()
    if not 0 < len(comment) <= 1000:
        raise UsageError("--comment must say something (1 to 1000 characters)")
    ctx = context(load_from_args(args), clock)
    tz = ctx.loaded.config.msp.timezone
    now = clock.now()
    with ctx.sessions() as session:
        user = staff_user(session, args.user)
        user_id = user.id
        try:
            uid = last_bad_run(session, client, job)
        except UsageError:
            # Its last run succeeded, but runs are missing since (the scheduler is down):
            # the job itself is acknowledged, as the dashboard's late row does.
            found = known_job(session, client, job)
            late = of_jobs(schedules_and_last_runs(session, client), tz, now).get(found.id)
            if late is None or not late.late:
                raise
            uid = None
    who = f"{actor()} as {args.user}"
    if uid is None:
        acknowledge_job(ctx.sessions, client, job, user_id, comment, now, who)
        assert late is not None and late.since is not None
        ui.print(f"{client}/{job}: late since {local_str(late.since, tz)} "
                 f"({len(late.missed)} run(s) missed), acknowledged by {args.user}")
        return 0
    acknowledge_run(ctx.sessions, uid, user_id, comment, now, who)
    ui.print(f"{client}/{job}: run {uid} acknowledged by {args.user}")
    return 0
