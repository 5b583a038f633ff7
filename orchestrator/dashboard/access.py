"""Who may see and do what: helpers that return what the viewer may see, or raise.

A client account sees only its own client; anything else raises ``NotFound``, as for what does
not exist, so a portal cannot tell another client's job from no job at all. Actions
(acknowledge, run now) are for the hotline and admins, from a form of this site: ``Forbidden``
otherwise. The app answers these exceptions (app.py): the message page, or for /api/ the JSON
``{"detail": ...}`` of a 404. A view calls one helper and goes on with what it gets.
"""

from __future__ import annotations

from dataclasses import replace

from fastapi import Request
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.dashboard.auth import Viewer
from orchestrator.dashboard.problems import Problem
from orchestrator.dashboard.queries import NotFound, client_of_run
from orchestrator.dashboard.request import csrf_ok
from orchestrator.findings import RunStatus
from orchestrator.history.models import AlertRow, ClientRow, Role
from orchestrator.report.outcomes import client_sentences

COMMENT_MAX = 1000


def without_internal_notes(viewer: Viewer, found: list[Problem],
                           language: str = "fr") -> list[Problem]:
    """The problems as ``viewer`` may read them: the hotline's acknowledgements (who, when,
    their comment) are internal notes, and codes, hosts and the technical message are the
    hotline's: a client account reads the sentence its report gives (report/outcomes.py)."""
    if viewer.staff:
        return found
    return [replace(p, acknowledged_by=None, acknowledged_comment=None, acknowledged_at=None,
                    error_code=None, host=None, message=_in_client_words(p, language))
            for p in found]


def _in_client_words(problem: Problem, language: str) -> str:
    try:
        status = RunStatus(problem.status)
    except ValueError:  # a quota or report alert: said to the client by its own mail
        status = RunStatus.AVERTISSEMENT
    return " ".join(client_sentences([], status, language))


class Refused(Exception):
    """The request is answered with the message page: ``status_code`` and the i18n ``key`` of
    the sentence shown."""

    status_code = 400

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


class Forbidden(Refused):
    """403: not for this viewer (``forbidden``), or not from one of this site's forms
    (``csrf``)."""

    status_code = 403


class Invalid(Refused):
    """400: the form is not what the action needs (``comment_needed``)."""


def admin_only(viewer: Viewer) -> None:
    """Invoicing figures are the MSP's: admins only (Forbidden otherwise)."""
    if viewer.role != Role.ADMIN.value:
        raise Forbidden("forbidden")


def staff_only(viewer: Viewer) -> None:
    """The MSP's machinery (its agents, its schedulers) is for hotline and admins: Forbidden
    for a client account."""
    if not viewer.staff:
        raise Forbidden("forbidden")


def visible_client(viewer: Viewer, client: str) -> str:
    """``client``, when the viewer may see it; raises NotFound otherwise. Whether the client
    exists is for the query that follows to say (by raising NotFound too)."""
    if not viewer.may_see(client):
        raise NotFound(f"no client {client!r}")
    return client


def visible_run(sessions: sessionmaker[Session], viewer: Viewer, uid: str) -> str:
    """The client of run ``uid``; raises NotFound when there is no such run or it is not the
    viewer's to see."""
    owner = client_of_run(sessions, uid)
    if owner is None or not viewer.may_see(owner):
        raise NotFound(f"no run {uid!r}")
    return owner


def visible_alert(sessions: sessionmaker[Session], viewer: Viewer,
                  alert_id: int) -> tuple[AlertRow, str]:
    """The alert and its client's key (a site agent's alert, which has no client: its site,
    seen by the hotline only); raises NotFound when there is no such alert or it is not the
    viewer's to see."""
    with sessions() as session:
        found = session.execute(select(AlertRow, ClientRow.key).outerjoin(
            ClientRow, AlertRow.client_id == ClientRow.id).where(AlertRow.id == alert_id)).first()
    if found is None:
        raise NotFound(f"no alert {alert_id}")
    alert, owner = found
    if owner is None:
        if not viewer.staff:
            raise NotFound(f"no alert {alert_id}")
        return alert, f"site {(alert.details or {}).get('site', '-')}"
    if not viewer.may_see(owner):
        raise NotFound(f"no alert {alert_id}")
    return alert, owner


def staff_form(request: Request, viewer: Viewer, csrf: str) -> None:
    """Raises Forbidden unless the viewer is hotline or admin and ``csrf`` is this session's
    token (the form came from this site)."""
    if not viewer.staff:
        raise Forbidden("forbidden")
    if not csrf_ok(request, csrf):
        raise Forbidden("csrf")


def comment_of(text: str) -> str:
    """An acknowledgement's comment, stripped; raises Invalid unless it says something (1 to
    1000 characters)."""
    comment = text.strip()
    if not 0 < len(comment) <= COMMENT_MAX:
        raise Invalid("comment_needed")
    return comment
