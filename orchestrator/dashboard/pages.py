"""The dashboard's HTML pages and its two actions (acknowledge, run now).

Every page needs a login; a client account sees only its own client, and asking for anything
else answers 404, as for something that does not exist. Actions are for the hotline and admins,
are POST forms carrying the session's CSRF token, and are audited.
"""

from __future__ import annotations

import math
import re
from dataclasses import replace
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from orchestrator.dashboard.access import (
    Invalid,
    admin_only,
    comment_of,
    staff_form,
    staff_only,
    visible_alert,
    visible_client,
    visible_run,
    without_internal_notes,
)
from orchestrator.dashboard.accounts import authenticate
from orchestrator.dashboard.acknowledge import acknowledge_job, acknowledge_run
from orchestrator.dashboard.auth import (
    DEVICE_COOKIE,
    device_cookie,
    end_session,
    known_device,
    login_keys,
    open_session,
)
from orchestrator.dashboard.charts import volume_svg
from orchestrator.dashboard.markdown import to_html
from orchestrator.dashboard.problems import by_cause, problems
from orchestrator.dashboard.queries import (
    NotFound,
    client_page,
    clients,
    job_runs,
    run_page,
)
from orchestrator.dashboard.request import (
    csrf_ok,
    language_of,
    page_viewer,
    render,
    scheduler_state,
    settings_of,
)
from orchestrator.dashboard.statuses import PROBLEM_STATUSES
from orchestrator.history.models import (
    AcknowledgementRow,
    AuditRow,
    RunRequestRow,
)
from orchestrator.history.queries import client_row, job_row
from orchestrator.humanize import size
from orchestrator.jobs.usage import month_usage, parse_month, to_csv
from orchestrator.resources import runbook_files

router = APIRouter(include_in_schema=False)


def _safe_next(target: str | None) -> str:
    """Only a path of this site: never an open redirect."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


@router.get("/healthz")
def healthz() -> Response:
    return Response("ok\n", media_type="text/plain")


@router.get("/runbooks", response_class=HTMLResponse)
@router.get("/runbooks/{code}", response_class=HTMLResponse)
def runbook(request: Request, code: str = "README") -> Response:
    """What an error code means and what to do, for the hotline and technicians (they name
    commands and settings): a client account is refused (its pages say it in its words)."""
    viewer = page_viewer(request)
    staff_only(viewer)
    settings = settings_of(request)
    language = language_of(request, settings, viewer)
    if not re.fullmatch(r"README|HVB-[A-Z0-9-]{2,40}", code):
        raise NotFound(f"no runbook {code!r}")
    page = runbook_files() / language / f"{code}.md"
    if not page.is_file():
        raise NotFound(f"no runbook {code!r}")
    body = to_html(page.read_text(encoding="utf-8"), language)
    return render(request, settings, viewer, "runbook.html", code=code, body=body)


@router.get("/usage.csv")
def usage_csv(request: Request, month: str) -> Response:
    """A month of usage per client as CSV, for invoicing (admin accounts only)."""
    viewer = page_viewer(request)
    admin_only(viewer)
    settings = settings_of(request)
    try:
        first = parse_month(month)
    except ValueError:
        raise Invalid("bad_month") from None
    with settings.sessions() as session:
        rows = month_usage(session, first, settings.timezone)
    return Response(to_csv(rows, first), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="hvbackup-usage-{first:%Y-%m}.csv"'})


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/") -> HTMLResponse:
    return render(request, settings_of(request), None, "login.html", next=_safe_next(next),
                  error=None)


@router.post("/login", response_class=HTMLResponse)
def login(request: Request, username: Annotated[str, Form(max_length=100)],
          password: Annotated[str, Form(max_length=1000)],
          next: Annotated[str, Form()] = "/", csrf: Annotated[str, Form()] = "") -> Response:
    settings = settings_of(request)
    if not csrf_ok(request, csrf):  # a login form posted from another site
        return render(request, settings, None, "login.html", status_code=400,
                      next=_safe_next(next), error=("csrf", 0))
    throttle = settings.throttle
    assert throttle is not None
    address = request.client.host if request.client else "?"
    device = known_device(settings.secret, username, request.cookies.get(DEVICE_COOKIE))
    keys = login_keys(username, address, device)
    wait = throttle.wait(keys)
    now = settings.now()
    if wait is not None:
        minutes = max(1, math.ceil(wait.total_seconds() / 60))
        return render(request, settings, None, "login.html", status_code=429,
                      next=_safe_next(next), error=("throttled", minutes))
    user = authenticate(settings.sessions, username, password, now)
    with settings.sessions() as session, session.begin():
        session.add(AuditRow(at=now, actor=f"web:{username}@{address}",
                             action="login" if user else "login.failed", target=username))
    if user is None:
        throttle.failed(keys)
        return render(request, settings, None, "login.html", status_code=401,
                      next=_safe_next(next), error=("bad_login", 0))
    throttle.succeeded(keys)
    end_session(settings.sessions, request.session.get("sid"), now)
    request.session.clear()  # a new session at each login (no fixation)
    request.session["sid"] = open_session(settings.sessions, user.id, address, now)
    response = RedirectResponse(_safe_next(next), status_code=303)
    if device is None:
        response.set_cookie(DEVICE_COOKIE, device_cookie(settings.secret, user.username),
                            max_age=365 * 86400, httponly=True, samesite="lax",
                            secure=settings.secure_cookies)
    return response


@router.post("/logout")
def logout(request: Request, csrf: Annotated[str, Form()] = "") -> Response:
    if csrf_ok(request, csrf):
        settings = settings_of(request)
        end_session(settings.sessions, request.session.get("sid"), settings.now())
        request.session.clear()
    return RedirectResponse("/login", status_code=303)


@router.get("/", response_class=HTMLResponse)
def home(request: Request, client: str = "", status: str = "", baie: str = "") -> Response:
    viewer = page_viewer(request)
    if viewer.client is not None:  # "À traiter" is the hotline's: a client lands on its page
        return RedirectResponse(f"/clients/{viewer.client}", status_code=303)
    settings = settings_of(request)
    found = without_internal_notes(viewer, problems(
        settings.sessions, tz=settings.timezone, now=settings.now(), client=viewer.client))
    choices = {"clients": sorted({(p.client, p.name) for p in found}, key=lambda c: c[1]),
               "baies": sorted({b for p in found for b in p.baies})}
    shown = [p for p in found if (not client or p.client == client)
             and (not status or p.status == status) and (not baie or baie in p.baies)]
    # What the operator sees is counted: one row per cause.
    rows = by_cause(shown)
    return render(request, settings, viewer, "home.html", rows=rows,
                  total=len(by_cause(found)), flash=request.query_params.get("flash"),
                  choices=choices, statuses=PROBLEM_STATUSES,
                  chosen={"client": client, "status": status, "baie": baie})


@router.get("/clients", response_class=HTMLResponse)
def client_list(request: Request) -> Response:
    viewer = page_viewer(request)
    if viewer.client is not None:
        return RedirectResponse(f"/clients/{viewer.client}", status_code=303)
    settings = settings_of(request)
    return render(request, settings, viewer, "clients.html",
                  clients=clients(settings.sessions, tz=settings.timezone, now=settings.now()))


@router.get("/clients/{key}", response_class=HTMLResponse)
def client_view(request: Request, key: str) -> Response:
    viewer = page_viewer(request)
    settings = settings_of(request)
    visible_client(viewer, key)
    page = client_page(settings.sessions, key, settings.timezone, settings.now())
    language = language_of(request, settings, viewer)
    chart = volume_svg(page.usage, page.quota.quota, f"{page.name}: volume",
                       lambda n: size(n, language))
    return render(request, settings, viewer, "client.html", page=page, chart=chart,
                  flash=request.query_params.get("flash"))


@router.get("/clients/{key}/jobs/{job}", response_class=HTMLResponse)
def job_view(request: Request, key: str, job: str) -> Response:
    viewer = page_viewer(request)
    settings = settings_of(request)
    visible_client(viewer, key)
    runs = job_runs(settings.sessions, key, job, limit=100)
    with settings.sessions() as session:
        owner = client_row(session, key)
        name = owner.name if owner is not None else key
    return render(request, settings, viewer, "job.html", client=key, client_name=name, job=job,
                  runs=runs)


@router.get("/runs/{uid}", response_class=HTMLResponse)
def run_view(request: Request, uid: str) -> Response:
    viewer = page_viewer(request)
    settings = settings_of(request)
    visible_run(settings.sessions, viewer, uid)
    page = run_page(settings.sessions, uid)
    if not viewer.staff:  # the hotline's notes stay internal
        page = replace(page, acknowledgements=[])
    return render(request, settings, viewer, "run.html", page=page,
                  flash=request.query_params.get("flash"))


@router.post("/runs/acknowledge", response_class=HTMLResponse)
def acknowledge_cause(request: Request, uid: Annotated[list[str], Form()],
                      comment: Annotated[str, Form()] = "",
                      csrf: Annotated[str, Form()] = "") -> Response:
    """The jobs of one cause (one host down, its jobs failing alike), acknowledged at once
    from their row on the home page: one acknowledgement per run, each checked and audited."""
    viewer = page_viewer(request)
    settings = settings_of(request)
    for one in uid:
        visible_run(settings.sessions, viewer, one)
    staff_form(request, viewer, csrf)
    comment = comment_of(comment)
    now = settings.now()
    for one in dict.fromkeys(uid):
        acknowledge_run(settings.sessions, one, viewer.user_id, comment, now,
                        f"web:{viewer.username}")
    return RedirectResponse("/", status_code=303)


@router.post("/jobs/acknowledge", response_class=HTMLResponse)
def acknowledge_jobs(request: Request, job: Annotated[list[str], Form()],
                     comment: Annotated[str, Form()] = "",
                     csrf: Annotated[str, Form()] = "") -> Response:
    """Late jobs (no run to acknowledge: the scheduler is down), one or all of one cause,
    acknowledged from their row on the home page; ``job`` values are ``client/job``."""
    viewer = page_viewer(request)
    settings = settings_of(request)
    wanted = []
    for one in dict.fromkeys(job):
        owner, _slash, key = one.partition("/")
        visible_client(viewer, owner)
        wanted.append((owner, key))
    staff_form(request, viewer, csrf)
    comment = comment_of(comment)
    now = settings.now()
    for owner, key in wanted:
        with settings.sessions() as session:
            if job_row(session, owner, key) is None:
                raise NotFound(f"no job {owner}/{key}")
        acknowledge_job(settings.sessions, owner, key, viewer.user_id, comment, now,
                        f"web:{viewer.username}")
    return RedirectResponse("/", status_code=303)


@router.post("/runs/{uid}/acknowledge", response_class=HTMLResponse)
def acknowledge(request: Request, uid: str, comment: Annotated[str, Form()] = "",
                csrf: Annotated[str, Form()] = "",
                next: Annotated[str, Form()] = "") -> Response:
    viewer = page_viewer(request)
    settings = settings_of(request)
    visible_run(settings.sessions, viewer, uid)
    staff_form(request, viewer, csrf)
    comment = comment_of(comment)
    now = settings.now()
    acknowledge_run(settings.sessions, uid, viewer.user_id, comment, now,
                    f"web:{viewer.username}")
    return RedirectResponse(_safe_next(next) if next else f"/runs/{uid}", status_code=303)


@router.post("/alerts/{alert_id}/acknowledge", response_class=HTMLResponse)
def acknowledge_alert(request: Request, alert_id: int, comment: Annotated[str, Form()] = "",
                      csrf: Annotated[str, Form()] = "") -> Response:
    """Quota and missing-report problems have no run: they are acknowledged on the home page."""
    viewer = page_viewer(request)
    settings = settings_of(request)
    alert, owner = visible_alert(settings.sessions, viewer, alert_id)
    staff_form(request, viewer, csrf)
    comment = comment_of(comment)
    now = settings.now()
    with settings.sessions() as session, session.begin():
        session.add(AcknowledgementRow(job_id=alert.job_id, alert_id=alert.id,
                                       user_id=viewer.user_id, at=now, comment=comment))
        session.add(AuditRow(at=now, actor=f"web:{viewer.username}", action="alert.acknowledge",
                             target=f"{owner}/{alert.kind}", details={"comment": comment}))
    return RedirectResponse("/", status_code=303)


@router.post("/clients/{key}/jobs/{job}/run", response_class=HTMLResponse)
def run_now(request: Request, key: str, job: str,
            csrf: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "") -> Response:
    viewer = page_viewer(request)
    settings = settings_of(request)
    visible_client(viewer, key)
    staff_form(request, viewer, csrf)
    now = settings.now()
    with settings.sessions() as session, session.begin():
        found = job_row(session, key, job)
        if found is None or not found.active:
            raise NotFound(f"no job {key}/{job}")
        job_id = found.id
        pending = session.scalars(select(RunRequestRow).where(
            RunRequestRow.job_id == job_id, RunRequestRow.started_at.is_(None),
            RunRequestRow.requested_at > now - timedelta(hours=1))).first()
        if pending is None:  # a second click does not queue a second run
            session.add(RunRequestRow(job_id=job_id, requested_by=viewer.username,
                                      requested_at=now))
            session.add(AuditRow(at=now, actor=f"web:{viewer.username}", action="job.run_now",
                                 target=f"{key}/{job}"))
    _seen, late = scheduler_state(settings.sessions, now)
    flash = "run_requested_no_scheduler" if late else "run_requested"
    back = _safe_next(next) if next else f"/clients/{key}"  # the home page's "relancer"
    return RedirectResponse(f"{back}?flash={flash}", status_code=303)
