"""The dashboard application: FastAPI, server-rendered Jinja2 pages, a JSON API, metrics.

``create_app(settings)`` builds it from what it needs (the history's sessions, the MSP's time
zone and language, a clock, the cookie key); ``hvbackup serve`` runs it with uvicorn. Pages are
in pages.py, the API in api.py, metrics in metrics.py, and what they share on a request in
request.py; this module puts them together with the templates, the session cookie, the
security headers and the answers to the exceptions the views raise: LoginRequired (to the
login page), NotFound (404) and Refused (403, 400) from access.py.
"""

from __future__ import annotations

from datetime import datetime
from importlib import resources
from typing import Any
from urllib.parse import quote

import jinja2
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.middleware.sessions import SessionMiddleware

from orchestrator import __version__
from orchestrator.dashboard import agent_api, api, metrics, pages, sites
from orchestrator.dashboard.access import Refused
from orchestrator.dashboard.auth import SESSION_HOURS, Throttle
from orchestrator.dashboard.queries import NotFound
from orchestrator.dashboard.request import DashboardSettings, LoginRequired, render, seen_viewer

__all__ = ["DashboardSettings", "create_app"]

SESSION_COOKIE = "hvbackup_session"
CSP = ("default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


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
    env.filters["day_full"] = lambda d: "-" if d is None else (
        d.astimezone(tz).date() if isinstance(d, datetime) else d).strftime("%d/%m/%Y")
    env.filters["urlq"] = lambda s: quote(str(s), safe="")
    return env


def create_app(settings: DashboardSettings) -> FastAPI:
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

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": str(exc)}, status_code=404)
        return render(request, settings, seen_viewer(request), "message.html", status_code=404,
                      key="not_found")

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> Response:
        return render(request, settings, seen_viewer(request), "message.html",
                      status_code=exc.status_code, key=exc.key)

    app.include_router(pages.router)
    app.include_router(api.router)
    app.include_router(metrics.router)
    app.include_router(agent_api.router)
    app.include_router(sites.router)
    return app
