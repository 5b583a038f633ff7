"""``hvbackup serve``: the hotline dashboard, the client portal, /api/v1 and /metrics."""

from __future__ import annotations

import argparse
import ipaddress
import os
from typing import Any

from orchestrator.cli.common import add_config_argument, context, load_from_args
from orchestrator.cli.ui import Ui
from orchestrator.clock import Clock


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "serve", help="run the dashboard web server",
        description="Serve the hotline dashboard and the client portal (accounts: 'hvbackup "
                    "users'), the JSON API under /api/v1 (description at "
                    "/api/v1/openapi.json) and /metrics. Put it behind a TLS reverse proxy "
                    "to reach it from another machine.",
    )
    add_config_argument(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on "
                        "(default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    parser.add_argument("--cookie-secure", choices=["auto", "yes", "no"], default="auto",
                        help="send the session cookie over HTTPS only; auto: yes unless "
                             "listening on loopback (say yes behind a TLS proxy on this machine)")
    parser.set_defaults(handler=run)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace, clock: Clock, ui: Ui) -> int:
    import uvicorn

    from orchestrator.dashboard.app import DashboardSettings, create_app
    from orchestrator.dashboard.auth import session_secret

    loaded = load_from_args(args)
    ctx = context(loaded, clock)
    secure = {"yes": True, "no": False}.get(args.cookie_secure, not _loopback(args.host))
    settings = DashboardSettings(
        sessions=ctx.sessions, timezone=loaded.config.msp.timezone,
        language=loaded.config.msp.language, now=clock.now,
        secret=session_secret(loaded.state_dir, dict(os.environ)), secure_cookies=secure,
        config=loaded)
    ui.print(f"hvbackup dashboard on http://{args.host}:{args.port}/ (Ctrl-C to stop)")
    if secure:
        ui.print("session cookies are HTTPS-only: open the dashboard through your TLS proxy "
                 "(plain http would never keep you logged in; --cookie-secure no on a trusted "
                 "network)")
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="warning",
                access_log=False)
    return 0
