"""The statuses the dashboard shows, and the orders it sorts them in.

A run's status is a ``RunStatus`` (history/models.py). The dashboard shows three more: a REUSSIE
run whose figures were flagged shows INHABITUELLE (its status is unchanged), and an open alert
is a problem of kind ``quota`` (subscribed volume), ``report`` (a report that was not sent) or
``agent`` (a site agent that gives no news).
"""

from __future__ import annotations

from orchestrator.history.models import RunStatus

UNUSUAL = "INHABITUELLE"
QUOTA = "quota"
REPORT = "report"
AGENT = "agent"  # a site agent gives no news (agent/silence.py)

# A client's worst last status, in the client list: lowest first.
WORST: dict[str, int] = {RunStatus.ECHEC: 0, RunStatus.NON_EXECUTEE: 1,
                         RunStatus.AVERTISSEMENT: 2, RunStatus.REUSSIE: 3}
# A job counted as failing in the client list.
FAILING: tuple[str, ...] = (RunStatus.ECHEC, RunStatus.NON_EXECUTEE)
# "À traiter": what the hotline looks at first.
SEVERITY: dict[str, int] = {RunStatus.ECHEC: 0, RunStatus.NON_EXECUTEE: 1, AGENT: 1,
                            QUOTA: 2, REPORT: 2,
                            RunStatus.AVERTISSEMENT: 3, UNUSUAL: 4}
# The status filter of the home page, in the order offered.
PROBLEM_STATUSES: list[str] = [RunStatus.ECHEC, RunStatus.NON_EXECUTEE, RunStatus.AVERTISSEMENT,
                               UNUSUAL, QUOTA, REPORT, AGENT]


def shown(status: str | None, flagged: bool) -> str | None:
    """What a run shows: INHABITUELLE for a REUSSIE run with flagged figures, else its status
    (None for a run not finished)."""
    return UNUSUAL if flagged and status == RunStatus.REUSSIE else status
