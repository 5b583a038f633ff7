"""Dashboard accounts: argon2 password hashes, roles (admin, hotline, client scoped to one
client), every change audited. No password is ever stored, logged or shown."""

from __future__ import annotations

from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.dashboard.auth import end_sessions_of
from orchestrator.errors import UsageError
from orchestrator.history.models import AuditRow, ClientRow, Role, UserRow
from orchestrator.history.queries import client_row

_HASHER = PasswordHasher()
MIN_LENGTH = 12


def _check_password(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise UsageError(f"the password must have at least {MIN_LENGTH} characters")


def add_user(sessions: sessionmaker[Session], username: str, password: str, role: str,
             client: str | None, actor: str, now: datetime) -> UserRow:
    if role not in {r.value for r in Role}:
        raise UsageError(f"role {role!r}: expected admin, hotline or client")
    if (role == Role.CLIENT.value) != (client is not None):
        raise UsageError("a client account needs --client, and only a client account has one")
    _check_password(password)
    with sessions() as session, session.begin():
        if session.scalars(select(UserRow).where(UserRow.username == username)).first():
            raise UsageError(f"user {username!r} exists already")
        client_id = None
        if client is not None:
            row = client_row(session, client)
            if row is None:
                raise UsageError(f"no client {client!r} in the history: run 'hvbackup db "
                                 "upgrade' after adding it to the configuration")
            client_id = row.id
        user = UserRow(username=username, password_hash=_HASHER.hash(password), role=role,
                       client_id=client_id, created_at=now)
        session.add(user)
        session.add(AuditRow(at=now, actor=actor, action="user.add", target=username,
                             details={"role": role, "client": client}))
    return user


def set_password(sessions: sessionmaker[Session], username: str, password: str, actor: str,
                 now: datetime) -> None:
    _check_password(password)
    with sessions() as session, session.begin():
        user = _user(session, username)
        user.password_hash = _HASHER.hash(password)
        end_sessions_of(session, user.id, now)  # a copied cookie dies with the old password
        session.add(AuditRow(at=now, actor=actor, action="user.passwd", target=username))


def remove_user(sessions: sessionmaker[Session], username: str, actor: str,
                now: datetime) -> None:
    with sessions() as session, session.begin():
        user = _user(session, username)
        end_sessions_of(session, user.id, now)
        session.delete(user)
        session.add(AuditRow(at=now, actor=actor, action="user.remove", target=username))


def authenticate(sessions: sessionmaker[Session], username: str, password: str,
                 now: datetime) -> UserRow | None:
    """The user when the password is right (and the account enabled), else None."""
    with sessions() as session, session.begin():
        user = session.scalars(select(UserRow).where(UserRow.username == username)).first()
        if user is None or user.disabled:
            _HASHER.hash(password)  # same cost whether the user exists or not
            return None
        try:
            _HASHER.verify(user.password_hash, password)
        except (VerificationError, InvalidHashError):
            return None
        if _HASHER.check_needs_rehash(user.password_hash):
            user.password_hash = _HASHER.hash(password)
        user.last_login_at = now
        return user


def list_users(sessions: sessionmaker[Session]) -> list[tuple[str, str, str | None]]:
    with sessions() as session:
        rows = session.execute(select(UserRow.username, UserRow.role, ClientRow.key)
                               .outerjoin(ClientRow, UserRow.client_id == ClientRow.id)
                               .order_by(UserRow.username)).all()
    return [(u, r, c) for u, r, c in rows]


def _user(session: Session, username: str) -> UserRow:
    user = session.scalars(select(UserRow).where(UserRow.username == username)).first()
    if user is None:
        raise UsageError(f"no user {username!r}")
    return user
