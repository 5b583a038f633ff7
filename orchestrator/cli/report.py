"""``hvbackup report``: a client's daily digest, previewed, kept in the outbox, or sent."""

from __future__ import annotations

import argparse
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from orchestrator.cli.common import add_config_argument, context, load_from_args
from orchestrator.cli.ui import Ui
from orchestrator.clock import Clock
from orchestrator.errors import UsageError
from orchestrator.report.digest import build_digest, send_digest
from orchestrator.report.render import render


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "report", help="a client's daily report (digest)",
        description="Build CLIENT's digest for the night of --date (default: last night). "
                    "--preview writes the HTML to a file; --send e-mails it; without either, "
                    "it goes to the outbox folder only. Every message is kept in the outbox.",
    )
    add_config_argument(parser)
    parser.add_argument("client", metavar="CLIENT")
    parser.add_argument("--date", metavar="YYYY-MM-DD")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--preview", metavar="OUT.html")
    group.add_argument("--send", action="store_true")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, clock: Clock, ui: Ui) -> int:
    loaded = load_from_args(args)
    if args.client not in loaded.config.clients:
        raise UsageError(f"no client {args.client!r} in {loaded.path}")
    tz = loaded.config.msp.timezone
    try:
        night = date.fromisoformat(args.date) if args.date else (
            clock.now().astimezone(tz).date() - timedelta(days=1))
    except ValueError:
        raise UsageError(f"--date {args.date!r} is not a date (YYYY-MM-DD)") from None
    ctx = context(loaded, clock)
    if args.preview:
        digest = build_digest(ctx.sessions, loaded, args.client, night, clock.now())
        rendered = render("digest", digest.language, tz, d=digest)
        Path(args.preview).write_text(rendered.html, encoding="utf-8")
        ui.print(f"{rendered.subject}\npreview written to {args.preview}")
        return 0
    digest, email = send_digest(loaded, ctx.sessions, args.client, night, clock.now(),
                                send_it=args.send)
    ui.print(f"{email.subject}\n{email.status}: {', '.join(email.recipients)}; copy in "
             f"{email.outbox_path}")
    return 0
