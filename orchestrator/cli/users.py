"""``hvbackup users``: dashboard accounts (passwords asked on the terminal, or read from
``HVBACKUP_USER_PASSWORD`` in scripts; never on the command line)."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import Any

from orchestrator.cli.common import actor, add_config_argument, context, load_from_args
from orchestrator.cli.ui import Ui
from orchestrator.clock import Clock
from orchestrator.dashboard.accounts import add_user, list_users, remove_user, set_password
from orchestrator.dashboard.auth import create_token
from orchestrator.errors import UsageError

PASSWORD_ENV = "HVBACKUP_USER_PASSWORD"


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser("users", help="dashboard accounts")
    actions = parser.add_subparsers(dest="users_command", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="create an account")
    add_config_argument(add)
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=["admin", "hotline", "client"])
    add.add_argument("--client", metavar="CLIENT", help="the client a client account sees")
    add.set_defaults(handler=run_add)
    passwd = actions.add_parser("passwd", help="change an account's password")
    add_config_argument(passwd)
    passwd.add_argument("username")
    passwd.set_defaults(handler=run_passwd)
    remove = actions.add_parser("remove", help="delete an account")
    add_config_argument(remove)
    remove.add_argument("username")
    remove.set_defaults(handler=run_remove)
    show = actions.add_parser("list", help="list the accounts")
    add_config_argument(show)
    show.set_defaults(handler=run_list)
    token = actions.add_parser("token", help="create an API token acting as this account "
                               "(printed once; for /api/v1 and /metrics)")
    add_config_argument(token)
    token.add_argument("username")
    token.add_argument("--name", default="api", help="what the token is for (default: api)")
    token.set_defaults(handler=run_token)


def _password(username: str) -> str:
    value = os.environ.get(PASSWORD_ENV)
    if value is not None:
        return value
    if not sys.stdin.isatty():
        raise UsageError(f"a password is needed: run this in a terminal, or set {PASSWORD_ENV}")
    first = getpass.getpass(f"Password for {username}: ")
    if getpass.getpass("Again: ") != first:
        raise UsageError("the two passwords differ")
    return first


def run_add(args: argparse.Namespace, clock: Clock, ui: Ui) -> int:
    ctx = context(load_from_args(args), clock)
    add_user(ctx.sessions, args.username, _password(args.username), args.role, args.client,
             actor(), clock.now())
    ui.print(f"account {args.username} created ({args.role}"
             + (f", sees only {args.client}" if args.client else "") + ")")
    return 0


def run_passwd(args: argparse.Namespace, clock: Clock, ui: Ui) -> int:
    ctx = context(load_from_args(args), clock)
    set_password(ctx.sessions, args.username, _password(args.username), actor(), clock.now())
    ui.print(f"password of {args.username} changed")
    return 0


def run_remove(args: argparse.Namespace, clock: Clock, ui: Ui) -> int:
    ctx = context(load_from_args(args), clock)
    remove_user(ctx.sessions, args.username, actor(), clock.now())
    ui.print(f"account {args.username} removed")
    return 0


def run_list(args: argparse.Namespace, clock: Clock, ui: Ui) -> int:
    ctx = context(load_from_args(args), clock)
    ui.table(["USER", "ROLE", "CLIENT"],
             [[u, r, c or "-"] for u, r, c in list_users(ctx.sessions)])
    return 0


def run_token(args: argparse.Namespace, clock: Clock, ui: Ui) -> int:
    ctx = context(load_from_args(args), clock)
    value = create_token(ctx.sessions, args.username, args.name, actor(), clock.now())
    ui.print(f"token {args.name!r} for {args.username} (shown once, keep it in a secret store):")
    ui.print(value)
    return 0
