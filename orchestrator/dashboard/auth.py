"""Who is asking: session cookies for people, bearer tokens for tools, login throttling.

A :class:`Viewer` is what every page and API route receives; ``viewer.client`` is set for a
client account and every query is limited to it. Sessions are signed cookies (HttpOnly,
SameSite=Lax, Secure unless served on loopback) that hold the user id, a fingerprint of the
password hash (changing the password ends every session) and the CSRF token of the forms.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.errors import UsageError
from orchestrator.history.models import ApiTokenRow, AuditRow, ClientRow, Role, UserRow

TOKEN_PREFIX = "hvb_"
SECRET_ENV = "HVBACKUP_DASHBOARD_SECRET"


@dataclass(frozen=True)
class Viewer:
    user_id: int
    username: str
    role: str
    client: str | None  # a client account sees only this client

    @property
    def staff(self) -> bool:
        """Hotline and admin: see every client, acknowledge, run now."""
        return self.role in (Role.ADMIN.value, Role.HOTLINE.value)

    def may_see(self, client: str) -> bool:
        return self.client is None or self.client == client


def fingerprint(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def viewer_of(session: Session, user_id: object, print_: object) -> Viewer | None:
    """The viewer of a session cookie, None when the account is gone, disabled, or its
    password changed since the cookie was issued."""
    if not isinstance(user_id, int) or not isinstance(print_, str):
        return None
    row = session.execute(select(UserRow, ClientRow.key).outerjoin(
        ClientRow, UserRow.client_id == ClientRow.id).where(UserRow.id == user_id)).first()
    if row is None:
        return None
    user, client = row
    if user.disabled or not hmac.compare_digest(fingerprint(user.password_hash), print_):
        return None
    return Viewer(user.id, user.username, user.role, client)


def token_viewer(sessions: sessionmaker[Session], token: str, now: datetime) -> Viewer | None:
    if not token.startswith(TOKEN_PREFIX):
        return None
    digest = hashlib.sha256(token.encode()).hexdigest()
    with sessions() as session, session.begin():
        row = session.execute(select(ApiTokenRow, UserRow, ClientRow.key)
                              .join(UserRow, ApiTokenRow.user_id == UserRow.id)
                              .outerjoin(ClientRow, UserRow.client_id == ClientRow.id)
                              .where(ApiTokenRow.token_sha256 == digest)).first()
        if row is None or row[1].disabled:
            return None
        token_row, user, client = row
        if token_row.last_used_at is None or now - token_row.last_used_at > timedelta(minutes=5):
            token_row.last_used_at = now  # not at every call: the API stays read-only in effect
        return Viewer(user.id, user.username, user.role, client)


def create_token(sessions: sessionmaker[Session], username: str, name: str, actor: str,
                 now: datetime) -> str:
    """A new API token for ``username``; the only time it is ever shown."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with sessions() as session, session.begin():
        user = session.scalars(select(UserRow).where(UserRow.username == username)).first()
        if user is None:
            raise UsageError(f"no user {username!r}")
        session.add(ApiTokenRow(user_id=user.id, name=name, created_at=now,
                                token_sha256=hashlib.sha256(token.encode()).hexdigest()))
        session.add(AuditRow(at=now, actor=actor, action="token.add", target=username,
                             details={"name": name}))
    return token


def session_secret(state_dir: Path, environ: dict[str, str]) -> str:
    """The key that signs session cookies: ``HVBACKUP_DASHBOARD_SECRET``, else a random key
    kept (mode 0600) in the state directory, made on first use."""
    if environ.get(SECRET_ENV):
        return environ[SECRET_ENV]
    path = state_dir / "dashboard-secret"
    if not path.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(secrets.token_urlsafe(48))
        tmp.chmod(0o600)
        tmp.replace(path)
    return path.read_text().strip()


class Throttle:
    """Login throttling: after ``limit`` failures within ``window`` for one user name or one
    address, further attempts are refused until the oldest failure leaves the window."""

    def __init__(self, now: Callable[[], datetime], limit: int = 5,
                 window: timedelta = timedelta(minutes=15)) -> None:
        self._now = now
        self.limit = limit
        self.window = window
        self._failures: dict[str, deque[datetime]] = defaultdict(deque)

    def _recent(self, key: str) -> deque[datetime]:
        times = self._failures[key]
        while times and self._now() - times[0] >= self.window:
            times.popleft()
        return times

    def wait(self, *keys: str) -> timedelta | None:
        """How long until an attempt is allowed again, or None when it is allowed now."""
        waits = []
        for key in keys:
            times = self._recent(key)
            if len(times) >= self.limit:
                waits.append(times[0] + self.window - self._now())
        return max(waits) if waits else None

    def failed(self, *keys: str) -> None:
        for key in keys:
            self._recent(key).append(self._now())

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)
