"""What every view of the dashboard uses on a request: its settings, who is asking (a session
for pages, a bearer token or a session for the API), the page language, the CSRF token, and
``render`` of a page template.

The views (pages.py, api.py, metrics.py) import this module; the app factory (app.py) imports
the views. Nothing here imports a view or the factory.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import jinja2
from fastapi import Depends, HTTPException, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from orchestrator import __version__
from orchestrator.config.load import LoadedConfig
from orchestrator.config.models import Msp
from orchestrator.dashboard.auth import Throttle, Viewer, token_viewer, viewer_of
from orchestrator.dashboard.i18n import schedule_words, term, translate
from orchestrator.findings import Finding, RunStatus, from_dict
from orchestrator.history.models import ClientRow
from orchestrator.history.queries import scheduler_last_seen, scheduler_leader
from orchestrator.humanize import age, duration, size, typography
from orchestrator.report.outcomes import client_sentences, hotline_sentence
from orchestrator.schedule.late import scheduler_late


@dataclass
class DashboardSettings:
    sessions: sessionmaker[Session]
    timezone: ZoneInfo
    language: str  # the MSP's; a client account gets its client's
    now: Callable[[], datetime]
    secret: str
    secure_cookies: bool = True
    throttle: Throttle | None = None
    refresh_s: int = 60
    config: LoadedConfig | None = None  # what site agents are served (agent_api.py)
    msp: Msp | None = None  # its name and phone, on the client portal's pages


class LoginRequired(Exception):
    """A page asked for without a session: the app answers with a redirect to /login."""


def settings_of(request: Request) -> DashboardSettings:
    settings: DashboardSettings = request.app.state.settings
    return settings


def session_viewer(request: Request, settings: DashboardSettings) -> Viewer | None:
    """The logged-in person, or None (their session cookie is cleared when it went stale)."""
    token = request.session.get("sid")
    if token is None:
        return None
    with settings.sessions() as session, session.begin():
        viewer = viewer_of(session, token, settings.now())
        if viewer is not None and viewer.client is not None:
            # The portal speaks the client's language.
            request.scope["hvbackup.client_language"] = session.scalars(
                select(ClientRow.language).where(ClientRow.key == viewer.client)).first()
    if viewer is None:
        request.session.clear()
    request.scope["hvbackup.viewer"] = viewer
    return viewer


def seen_viewer(request: Request) -> Viewer | None:
    """Who this request was found to be from, if anyone yet: for the pages the app answers
    in place of a view (not found, refused)."""
    viewer = request.scope.get("hvbackup.viewer")
    return viewer if isinstance(viewer, Viewer) else None


def page_viewer(request: Request) -> Viewer:
    """The logged-in person asking for a page; raises LoginRequired when there is none."""
    viewer = session_viewer(request, settings_of(request))
    if viewer is None:
        raise LoginRequired
    return viewer


def api_viewer(request: Request) -> Viewer:
    """The caller of the API or /metrics: a bearer token, else a dashboard session; 401
    otherwise."""
    settings = settings_of(request)
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        found = token_viewer(settings.sessions, token.strip(), settings.now()) \
            if scheme.lower() == "bearer" else None
        if found is None:
            raise HTTPException(401, "invalid or revoked token",
                                headers={"WWW-Authenticate": "Bearer"})
        return found
    found = session_viewer(request, settings)
    if found is None:
        raise HTTPException(401, "authentication needed: Authorization: Bearer <token>",
                            headers={"WWW-Authenticate": "Bearer"})
    return found


Caller = Annotated[Viewer, Depends(api_viewer)]


def language_of(request: Request, settings: DashboardSettings, viewer: Viewer | None) -> str:
    chosen = request.query_params.get("lang") or request.cookies.get("hvbackup_lang")
    if chosen in ("fr", "en"):
        return chosen
    client_language = request.scope.get("hvbackup.client_language")
    return str(client_language or settings.language)


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def csrf_ok(request: Request, given: str | None) -> bool:
    token = request.session.get("csrf")
    return isinstance(token, str) and isinstance(given, str) and secrets.compare_digest(
        token, given)


class Ui:
    """What every page template gets: the viewer, words, sizes and delays, the CSRF token."""

    def __init__(self, request: Request, settings: DashboardSettings,
                 viewer: Viewer | None) -> None:
        self.request = request
        self.viewer = viewer
        self.now = settings.now()
        self.language = language_of(request, settings, viewer)
        self.csrf = csrf_token(request)
        self.refresh_s = settings.refresh_s
        self.version = __version__
        self._sessions = settings.sessions
        msp = settings.msp or (settings.config.config.msp if settings.config else None)
        self.msp_name = msp.name if msp else ""
        self.msp_phone = msp.phone if msp and msp.phone else ""
        # Without a phone, the hotline's address: the client always has a way to reach it.
        self.msp_mail = ", ".join(msp.hotline) if msp and msp.hotline else ""

    @property
    def staff(self) -> bool:
        """Hotline and admin accounts read the technical detail; a client reads its words."""
        return self.viewer is not None and self.viewer.staff

    def said(self, run: Any) -> list[str]:
        """What the client is told of a finished run (report/outcomes.py), in the page's
        language: no host, path or code."""
        if run.status is None or (run.status == RunStatus.REUSSIE.value and not run.findings):
            return []
        return [typography(text, self.language) for text in client_sentences(
            [from_dict(f) for f in run.findings or []], RunStatus(run.status), self.language)]

    def told(self, run: Any) -> list[str]:
        """What the hotline reads first of a run that did not succeed, in the page's language
        (report/outcomes.py); the code and the original message follow apart."""
        if run.status is None or run.status == RunStatus.REUSSIE.value:
            return []
        findings = [from_dict(f) for f in run.findings or []]
        if not findings:
            findings = [Finding(None, run.error_code or "HVB-ERROR", "")]
        out: list[str] = []
        for finding in findings:
            text = hotline_sentence(finding, self.language)
            text = typography(text[:1].upper() + text[1:], self.language)
            if text not in out:
                out.append(text)
        return out

    def schedule(self, text: str) -> str:
        return schedule_words(text, self.language)

    def scheduler(self) -> tuple[datetime | None, bool]:
        """When a scheduler was last seen, and whether that is too long ago (or never)."""
        return scheduler_state(self._sessions, self.now)

    def leader(self) -> str | None:
        """The scheduler that plans, as "host (pid N)", None when none ever led."""
        with self._sessions() as session:
            row = scheduler_leader(session)
        if row is None:
            return None
        host, _, pid = row.name.rpartition(":")
        return self.t("scheduler_who", host=host, pid=pid) if host else row.name

    def t(self, key: str, **values: object) -> str:
        return translate(key, self.language, **values)

    def term(self, kind: str, value: str | None) -> str:
        return term(kind, value, self.language)

    def size(self, n: int | None) -> str:
        return "-" if n is None else size(float(n), self.language)

    def duration(self, seconds: float | None) -> str:
        return "-" if seconds is None else duration(float(seconds), self.language)

    def age(self, since: datetime | None) -> str:
        """How long ago ``since`` was ('never_seen' for None: no recent success)."""
        if since is None:
            return self.t("never_seen")
        return age((self.now - since).total_seconds(), self.language)


def scheduler_state(sessions: sessionmaker[Session], now: datetime
                    ) -> tuple[datetime | None, bool]:
    """When a scheduler last finished a cycle, and whether none has been seen lately."""
    with sessions() as session:
        seen = scheduler_last_seen(session)
    return seen, scheduler_late(seen, now)


def render(request: Request, settings: DashboardSettings, viewer: Viewer | None, name: str,
           status_code: int = 200, **context: Any) -> HTMLResponse:
    """The page template ``name`` for this viewer, in their language (a ``?lang=`` choice is
    kept in a cookie)."""
    env: jinja2.Environment = request.app.state.templates
    ui = Ui(request, settings, viewer)
    html = env.get_template(name).render(ui=ui, **context)
    response = HTMLResponse(html, status_code=status_code)
    if request.query_params.get("lang") in ("fr", "en"):
        response.set_cookie("hvbackup_lang", ui.language, max_age=365 * 86400, httponly=True,
                            samesite="lax", secure=settings.secure_cookies)
    return response
