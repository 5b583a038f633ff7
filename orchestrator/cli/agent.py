"""``hvbackup agent``: site agents. On the central server: ``token`` (a single-use enrollment
token for a site, printed once), ``list`` and ``revoke``. See docs/agents.md."""

from __future__ import annotations

import argparse
from typing import Any

from orchestrator.agent.registry import ENROLLMENT_HOURS_MAX, create_enrollment, list_agents, revoke
from orchestrator.cli.common import actor, add_config_argument, context, load_from_args
from orchestrator.cli.timefmt import local_str
from orchestrator.cli.ui import Ui
from orchestrator.clock import Clock
from orchestrator.config.sitepart import site_names
from orchestrator.config.suggest import did_you_mean
from orchestrator.errors import UsageError


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "agent", help="site agents (enrollment tokens, list, revoke)",
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
             local_str(a.last_seen_at, tz) if a.last_seen_at else "never",
             f"revoked {local_str(a.revoked_at, tz)}" if a.revoked_at else "enrolled"]
            for a in list_agents(ctx.sessions)]
    if not rows:
        ui.print("no agent enrolled (create a token with: hvbackup agent token --site SITE)")
        return 0
    ui.table(["AGENT", "SITE", "VERSION", "ENROLLED", "LAST SEEN", "STATE"], rows)
    return 0


def run_revoke(args: argparse.Namespace, clock: Clock, ui: Ui) -> int:
    ctx = context(load_from_args(args), clock)
    site = revoke(ctx.sessions, args.name, actor(), clock.now())
    ui.print(f"agent {args.name} (site {site}) revoked: its token is refused from now on")
    return 0
