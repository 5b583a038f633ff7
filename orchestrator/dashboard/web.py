"""The dashboard application: FastAPI, server-rendered Jinja2 pages, a JSON API, metrics.

``create_app(settings)`` builds it from what it needs (the history's sessions, the MSP's time
zone and language, a clock, the cookie key); ``hvbackup serve`` runs it with uvicorn. Pages are
in pages.py, the API in api.py, metrics in metrics.py; this module holds what they share:
who is asking, the templates, the security headers.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import jinja2
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.middleware.sessions import SessionMiddleware

from orchestrator import __version__
from orchestrator.dashboard.auth import Throttle, Viewer, viewer_of
from orchestrator.dashboard.i18n import translate
from orchestrator.history.models import ClientRow
from orchestrator.humanize import age, duration, size

SESSION_COOKIE = "hvbackup_session"
SESSION_HOURS = 12
CSP = ("default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


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


class LoginRequired(Exception):
    pass


def settings_of(request: Request) -> DashboardSettings:
    settings: DashboardSettings = request.app.state.settings
    return settings


def _templates(settings: DashboardSettings) -> jinja2.Environment:
    folder = resources.files("orchestrator.dashboard") / "templates"
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(lambda name: (folder / name).read_text(encoding="utf-8")),
        autoescape=True, undefined=jinja2.StrictUndefined)
    tz = settings.timezone
    env.filters["dt"] = lambda t: "-" if t is None else t.astimezone(tz).strftime(
        "%d/%m/%Y %H:%M")
    env.filters["hm"] = lambda t: "-" if t is None else t.astimezone(tz).strftime("%H:%M:%S")
    env.filters["day"] = lambda d: d.strftime("%d/%m")
    env.filters["urlq"] = lambda s: quote(str(s), safe="")
    return env


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

    def t(self, key: str, **values: object) -> str:
        return translate(key, self.language, **values)

    def size(self, n: int | None) -> str:
        return "-" if n is None else size(float(n), self.language)

    def duration(self, seconds: float | None) -> str:
        return "-" if seconds is None else duration(float(seconds), self.language)

    def age(self, since: datetime | None) -> str:
        """How long ago ``since`` was ('never_seen' for None: no recent success)."""
        if since is None:
            return self.t("never_seen")
        return age((self.now - since).total_seconds(), self.language)


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


def session_viewer(request: Request, settings: DashboardSettings) -> Viewer | None:
    """The logged-in person, or None (their session cookie is cleared when it went stale)."""
    user_id = request.session.get("uid")
    if user_id is None:
        return None
    with settings.sessions() as session:
        viewer = viewer_of(session, user_id, request.session.get("pv"))
        if viewer is not None and viewer.client is not None:
            # The portal speaks the client's language.
            request.scope["hvbackup.client_language"] = session.scalars(
                select(ClientRow.language).where(ClientRow.key == viewer.client)).first()
    if viewer is None:
        request.session.clear()
    return viewer


def render(request: Request, settings: DashboardSettings, viewer: Viewer | None, name: str,
           status_code: int = 200, **context: Any) -> HTMLResponse:
    env: jinja2.Environment = request.app.state.templates
    ui = Ui(request, settings, viewer)
    html = env.get_template(name).render(ui=ui, **context)
    response = HTMLResponse(html, status_code=status_code)
    if request.query_params.get("lang") in ("fr", "en"):
        response.set_cookie("hvbackup_lang", ui.language, max_age=365 * 86400, httponly=True,
                            samesite="lax", secure=settings.secure_cookies)
    return response


def create_app(settings: DashboardSettings) -> FastAPI:
    from orchestrator.dashboard import api, metrics, pages

    app = FastAPI(title="hvbackup", version=__version__, openapi_url="/api/v1/openapi.json",
                  docs_url=None, redoc_url=None,
                  description="Backup runs, problems and restore points, read-only. "
                              "Authenticate with `Authorization: Bearer <token>` "
                              "(`hvbackup users token`); a client account's token sees only "
                              "its client.")
    settings.throttle = settings.throttle or Throttle(settings.now)
    app.state.settings = settings
    app.state.templates = _templates(settings)
    app.add_middleware(SessionMiddleware, secret_key=settings.secret,
                       session_cookie=SESSION_COOKIE, max_age=SESSION_HOURS * 3600,
                       same_site="lax", https_only=settings.secure_cookies)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        if request.url.path.startswith(("/api/", "/metrics")) or "set-cookie" in response.headers:
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.exception_handler(LoginRequired)
    async def to_login(request: Request, _exc: LoginRequired) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)

    app.include_router(pages.router)
    app.include_router(api.router)
    app.include_router(metrics.router)
    return app
