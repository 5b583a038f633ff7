"""Who is asking: sessions for people, bearer tokens for tools, login throttling.

A :class:`Viewer` is what every page and API route receives; ``viewer.client`` is set for a
client account and every query is limited to it. A session is a row of ``web_sessions``
(12 hours at most); the signed cookie (HttpOnly, SameSite=Lax, Secure unless served on
loopback) holds only its random token and the CSRF token of the forms. Logging out, changing
the password or removing the account ends the row, so a copy of the cookie stops working.

Throttling counts failed logins per account *and* source together, per source across
accounts and per account across sources; a browser that already logged in to an account
carries a signed *device cookie* for it and is throttled on its own, so guesses from
elsewhere never lock the owner out of the browser they use.
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

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.errors import UsageError
from orchestrator.history.models import (
    ApiTokenRow,
    AuditRow,
    ClientRow,
    Role,
    UserRow,
    WebSessionRow,
)

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


SESSION_HOURS = 12


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(sessions: sessionmaker[Session], user_id: int, address: str,
                 now: datetime) -> str:
    """A new session for ``user_id``: the token for the cookie (kept here only hashed)."""
    token = secrets.token_urlsafe(32)
    with sessions() as session, session.begin():
        session.add(WebSessionRow(user_id=user_id, token_sha256=_sha256(token), created_at=now,
                                  expires_at=now + timedelta(hours=SESSION_HOURS),
                                  last_seen_at=now, address=address[:100]))
    return token


def viewer_of(session: Session, token: object, now: datetime) -> Viewer | None:
    """The viewer of a session token, None when the session ended or expired, or the account
    is gone or disabled."""
    if not isinstance(token, str) or not token:
        return None
    row = session.execute(
        select(WebSessionRow, UserRow, ClientRow.key)
        .join(UserRow, WebSessionRow.user_id == UserRow.id)
        .outerjoin(ClientRow, UserRow.client_id == ClientRow.id)
        .where(WebSessionRow.token_sha256 == _sha256(token))).first()
    if row is None:
        return None
    web, user, client = row
    if web.ended_at is not None or web.expires_at <= now or user.disabled:
        return None
    if now - web.last_seen_at > timedelta(minutes=5):
        web.last_seen_at = now
    return Viewer(user.id, user.username, user.role, client)


def end_session(sessions: sessionmaker[Session], token: object, now: datetime) -> None:
    if not isinstance(token, str):
        return
    with sessions() as session, session.begin():
        session.execute(update(WebSessionRow).where(
            WebSessionRow.token_sha256 == _sha256(token),
            WebSessionRow.ended_at.is_(None)).values(ended_at=now))


def end_sessions_of(session: Session, user_id: int, now: datetime) -> None:
    """End every open session of an account (its password changed, it was disabled)."""
    session.execute(update(WebSessionRow).where(
        WebSessionRow.user_id == user_id, WebSessionRow.ended_at.is_(None)).values(ended_at=now))


DEVICE_COOKIE = "hvbackup_device"


def device_cookie(secret: str, username: str) -> str:
    """The value of the cookie a browser gets for ``username`` when it logs in."""
    nonce = secrets.token_urlsafe(12)
    return f"{nonce}.{_device_mac(secret, username, nonce)}"


def known_device(secret: str, username: str, cookie: str | None) -> str | None:
    """The device's id when ``cookie`` was given to this browser for ``username``."""
    nonce, _, mac = (cookie or "").partition(".")
    if not nonce or not hmac.compare_digest(mac, _device_mac(secret, username, nonce)):
        return None
    return nonce


def _device_mac(secret: str, username: str, nonce: str) -> str:
    message = f"hvbackup-device|{username.lower()}|{nonce}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[:32]


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


def login_keys(username: str, address: str, device: str | None) -> list[tuple[str, int]]:
    """What a login attempt is counted against, with the failures each allows in the window.

    From a browser that already logged in to this account: only that browser (5). Otherwise
    this account from this source (5), this source over every account (50: a proxy address
    shared by a whole office stays usable), this account from anywhere (20: a spread guess).
    """
    user = username.lower()
    if device is not None:
        return [(f"device:{user}|{device}", 5)]
    return [(f"pair:{user}|{address}", 5), (f"source:{address}", 50), (f"user:{user}", 20)]


class Throttle:
    """Login throttling: after a key's allowed failures within ``window``, attempts counted
    against it are refused until its oldest failure leaves the window."""

    def __init__(self, now: Callable[[], datetime],
                 window: timedelta = timedelta(minutes=15)) -> None:
        self._now = now
        self.window = window
        self._failures: dict[str, deque[datetime]] = defaultdict(deque)

    def _recent(self, key: str) -> deque[datetime]:
        times = self._failures[key]
        while times and self._now() - times[0] >= self.window:
            times.popleft()
        return times

    def wait(self, keys: list[tuple[str, int]]) -> timedelta | None:
        """How long until an attempt is allowed again, or None when it is allowed now."""
        waits = []
        for key, limit in keys:
            times = self._recent(key)
            if len(times) >= limit:
                waits.append(times[len(times) - limit] + self.window - self._now())
        return max(waits) if waits else None

    def failed(self, keys: list[tuple[str, int]]) -> None:
        for key, _limit in keys:
            self._recent(key).append(self._now())

    def succeeded(self, keys: list[tuple[str, int]]) -> None:
        """A right password clears what it was counted against for this account only."""
        for key, _limit in keys:
            if key.startswith(("pair:", "device:")):
                self._failures.pop(key, None)
