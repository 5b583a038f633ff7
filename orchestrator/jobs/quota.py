"""The subscribed volume: measured after every run, judged by a pure rule, enforced before.

Over the quota: noted. 10 % over: the client and the hotline are told (an alert is recorded
for the reports to send), and the client has 30 days to act. Still over the quota 30 days after
that warning: new backups for the client stop with an explicit ECHEC "quota dépassé", never
silently. The forecast says when the quota will be reached at the recent pace.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.baie.open import open_target
from orchestrator.config.load import LoadedConfig
from orchestrator.errors import HvbError
from orchestrator.findings import AlertKind
from orchestrator.history.models import AlertRow, BaieUsageRow, ClientRow
from orchestrator.history.queries import known_client, usage_points

GRACE = timedelta(days=30)
WARN_RATIO = 1.10


class QuotaExceeded(HvbError):
    code = "HVB-QUOTA"
    exit_code = 1


@dataclass(frozen=True)
class QuotaState:
    status: str  # ok | over | warning | blocked | none (no quota)
    used: int
    quota: int | None
    warned_since: datetime | None = None
    forecast: datetime | None = None

    @property
    def percent(self) -> float | None:
        return 100 * self.used / self.quota if self.quota else None


def evaluate(points: list[tuple[datetime, int]], quota: int | None, now: datetime) -> QuotaState:
    """Judge a client's usage history (measurements, oldest first). Pure."""
    used = points[-1][1] if points else 0
    if not quota:
        return QuotaState("none", used, quota)
    # The current stretch over the quota, and when it first went 10 % over.
    warned_since = None
    for when, value in points:
        if value <= quota:
            warned_since = None
        elif value >= quota * WARN_RATIO and warned_since is None:
            warned_since = when
    forecast = _forecast(points, quota, now) if used < quota else None
    if used <= quota:
        return QuotaState("ok", used, quota, None, forecast)
    if warned_since is None:
        return QuotaState("over", used, quota)
    status = "blocked" if now - warned_since >= GRACE else "warning"
    return QuotaState(status, used, quota, warned_since)


def _forecast(points: list[tuple[datetime, int]], quota: int, now: datetime) -> datetime | None:
    recent = [(t, v) for t, v in points if t >= now - timedelta(days=30)]
    if len(recent) < 2:
        return None
    xs = [(t - recent[0][0]).total_seconds() for t, _ in recent]
    ys = [float(v) for _, v in recent]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mean_x) ** 2 for x in xs)
    if var == 0:
        return None
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / var
    if slope <= 0:
        return None
    return now + timedelta(seconds=(quota - recent[-1][1]) / slope)


def client_state(sessions: sessionmaker[Session], loaded: LoadedConfig, client: str,
                 now: datetime) -> QuotaState:
    """The worst state over the client's baies."""
    quota_gb = loaded.config.clients[client].quota_gb
    quota = int(quota_gb * 1_000_000_000) if quota_gb is not None else None
    with sessions() as session:
        by_baie = usage_points(session, client)
    states = [evaluate(points, quota, now) for points in by_baie.values()] or [
        evaluate([], quota, now)]
    order = ["none", "ok", "over", "warning", "blocked"]
    return max(states, key=lambda s: (order.index(s.status), s.used))


def check_before_run(sessions: sessionmaker[Session], loaded: LoadedConfig, client: str,
                     now: datetime) -> None:
    state = client_state(sessions, loaded, client, now)
    if state.status == "blocked":
        assert state.warned_since is not None and state.quota is not None
        raise QuotaExceeded(
            f"quota dépassé: {client} uses {state.used / 1e9:.1f} GB of "
            f"{state.quota / 1e9:.1f} GB subscribed, over by more than 10 % since "
            f"{state.warned_since:%d/%m/%Y}; backups stop until the volume is raised or data "
            "is removed (shorter retention, fewer jobs)")


def measure_and_judge(sessions: sessionmaker[Session], loaded: LoadedConfig, client: str,
                      baies: list[str], now: datetime) -> QuotaState:
    """Record what the client's repositories take on ``baies``; record an alert when the
    state became a warning or a block. Returns the new state."""
    usage = {}
    for baie in baies:
        target = open_target(loaded.baie(baie, client), retry=False)  # a figure, not worth waiting
        try:
            usage[baie] = sum(e.size for prefix in ("data", "index", "snapshots")
                              for e in target.list(prefix))
        finally:
            target.close()
    with sessions() as session, session.begin():
        owner = known_client(session, client)
        for baie, value in usage.items():
            session.add(BaieUsageRow(client_id=owner.id, baie=baie, measured_at=now,
                                     bytes_stored=value))
    state = client_state(sessions, loaded, client, now)
    if state.status in ("warning", "blocked"):
        kind = (AlertKind.QUOTA_WARNING if state.status == "warning"
                else AlertKind.QUOTA_BLOCKED).value
        with sessions() as session, session.begin():
            owner = known_client(session, client)
            open_alert = session.scalars(select(AlertRow).where(
                AlertRow.client_id == owner.id, AlertRow.kind == kind,
                AlertRow.resolved_at.is_(None))).first()
            if open_alert is None:
                assert state.quota is not None and state.warned_since is not None
                deadline = state.warned_since + GRACE
                session.add(AlertRow(
                    kind=kind, severity="warning" if state.status == "warning" else "error",
                    client_id=owner.id, created_at=now,
                    message=(f"{client} uses {state.used / 1e9:.1f} GB of "
                             f"{state.quota / 1e9:.1f} GB subscribed ({state.percent:.0f} %)"
                             + (f"; backups stop on {deadline:%d/%m/%Y} unless the volume is "
                                "raised or data removed" if state.status == "warning"
                                else "; backups are stopped")),
                    details={"used": state.used, "quota": state.quota}))
    elif state.status in ("ok", "none"):
        with sessions() as session, session.begin():
            for alert in session.scalars(select(AlertRow).join(ClientRow).where(
                    ClientRow.key == client, AlertRow.kind.in_(
                        [AlertKind.QUOTA_WARNING.value, AlertKind.QUOTA_BLOCKED.value]),
                    AlertRow.resolved_at.is_(None))):
                alert.resolved_at = now
    return state
