"""The subscribed volume: measured after every run, judged by a pure rule, enforced before.

Over the quota: noted. 10 % over: the client and the hotline are told (an alert is recorded
for the reports to send), and the client has 30 days to act: the grace ends
``warned_since + GRACE``, computed here once (:attr:`QuotaState.grace_ends`) and read by every
mail, page and check. After those 30 days, what the client's contract says
(``quota.on_overrun``):

- ``block``: new backups stop with an explicit ECHEC "quota dépassé", never silently;
- ``next_tier``: backups go on; the subscribed volume becomes the smallest of the MSP's tiers
  that holds the data (a :class:`TierMove`, recorded and audited), billed from the first day
  of the following month; the client and the hotline are told.

The forecast says on which day the quota will be reached at the recent pace, when that is
within a year and the measurements are enough to say it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.baie.open import open_target
from orchestrator.config.load import LoadedConfig
from orchestrator.errors import HvbError
from orchestrator.findings import AlertKind
from orchestrator.history.models import (
    AlertRow,
    AuditRow,
    BaieUsageRow,
    ClientRow,
    QuotaTierMoveRow,
)
from orchestrator.history.queries import known_client, usage_points
from orchestrator.humanize import size

GRACE = timedelta(days=30)
WARN_RATIO = 1.10
GB = 1_000_000_000
FORECAST_POINTS = 5  # measurements within the last 30 days, over at least FORECAST_SPAN
FORECAST_SPAN = timedelta(days=3)
FORECAST_HORIZON = timedelta(days=365)  # further away, a forecast is noise
QUOTA_ALERTS = (AlertKind.QUOTA_WARNING, AlertKind.QUOTA_BLOCKED)


class QuotaExceeded(HvbError):
    code = "HVB-QUOTA"
    exit_code = 1


@dataclass(frozen=True)
class TierMove:
    decided_at: datetime
    billed_from: date
    from_bytes: int
    to_bytes: int
    used_bytes: int


@dataclass(frozen=True)
class QuotaState:
    status: str  # ok | over | warning | blocked | tier_due | none (no quota)
    used: int
    quota: int | None
    warned_since: datetime | None = None
    forecast: date | None = None
    on_overrun: str = "block"

    @property
    def percent(self) -> float | None:
        return 100 * self.used / self.quota if self.quota else None

    @property
    def grace_ends(self) -> datetime | None:
        """When the 30 days to act end: the one date every notice, page and check shows."""
        return self.warned_since + GRACE if self.warned_since is not None else None


def evaluate(points: list[tuple[datetime, int]], quota: int | None, now: datetime,
             on_overrun: str = "block") -> QuotaState:
    """Judge a client's usage history (measurements, oldest first). Pure."""
    used = points[-1][1] if points else 0
    if not quota:
        return QuotaState("none", used, quota, on_overrun=on_overrun)
    # The current stretch over the quota, and when it first went 10 % over.
    warned_since = None
    for when, value in points:
        if value <= quota:
            warned_since = None
        elif value >= quota * WARN_RATIO and warned_since is None:
            warned_since = when
    if used <= quota:
        return QuotaState("ok", used, quota, None, _forecast(points, quota, now),
                          on_overrun=on_overrun)
    if warned_since is None:
        return QuotaState("over", used, quota, on_overrun=on_overrun)
    status = "warning"
    if now - warned_since >= GRACE:
        status = "tier_due" if on_overrun == "next_tier" else "blocked"
    return QuotaState(status, used, quota, warned_since, on_overrun=on_overrun)


def _forecast(points: list[tuple[datetime, int]], quota: int, now: datetime) -> date | None:
    recent = [(t, v) for t, v in points if t >= now - timedelta(days=30)]
    if len(recent) < FORECAST_POINTS or recent[-1][0] - recent[0][0] < FORECAST_SPAN:
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
    ahead = timedelta(seconds=(quota - recent[-1][1]) / slope)
    return (now + ahead).date() if ahead <= FORECAST_HORIZON else None


def effective_quota(configured: int | None, moves: list[TierMove]) -> int | None:
    """The subscribed volume after the tier moves made from it. A move counts only when it
    was made from the volume in force: when the technician sets another ``quota_gb``, moves
    made from the old one no longer apply. Pure."""
    current = configured
    for move in sorted(moves, key=lambda m: m.decided_at):
        if current is not None and move.from_bytes == current:
            current = move.to_bytes
    return current


def next_tier(used: int, tiers: list[int]) -> int:
    """The smallest tier that holds ``used`` (the largest when none does). Pure."""
    return next((t for t in tiers if t >= used), tiers[-1])


def first_of_next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def tier_moves(session: Session, client: str) -> list[TierMove]:
    rows = session.scalars(select(QuotaTierMoveRow).join(ClientRow).where(
        ClientRow.key == client).order_by(QuotaTierMoveRow.decided_at))
    return [TierMove(r.decided_at, r.billed_from, r.from_bytes, r.to_bytes, r.used_bytes)
            for r in rows]


def state_of(session: Session, client: str, configured: int | None, on_overrun: str,
             now: datetime, usage: dict[str, list[tuple[datetime, int]]] | None = None
             ) -> QuotaState:
    """The client's state: the worst over its baies, against its subscribed volume after
    tier moves. The one computation behind the CLI, the reports and the dashboard."""
    quota = effective_quota(configured, tier_moves(session, client))
    by_baie = usage if usage is not None else usage_points(session, client)
    # Measurements taken before the volume in force was set are judged against it too: a
    # client moved up a tier is judged afresh against the new volume.
    states = [evaluate(points, quota, now, on_overrun) for points in by_baie.values()] or [
        evaluate([], quota, now, on_overrun)]
    order = ["none", "ok", "over", "warning", "tier_due", "blocked"]
    return max(states, key=lambda s: (order.index(s.status), s.used))


def client_state(sessions: sessionmaker[Session], loaded: LoadedConfig, client: str,
                 now: datetime) -> QuotaState:
    """:func:`state_of` with the configuration's subscribed volume and policy."""
    settings = loaded.config.clients[client]
    configured = int(settings.quota_gb * GB) if settings.quota_gb is not None else None
    with sessions() as session:
        return state_of(session, client, configured, loaded.on_overrun_of(settings), now)


def check_before_run(sessions: sessionmaker[Session], loaded: LoadedConfig, client: str,
                     now: datetime) -> None:
    state = client_state(sessions, loaded, client, now)
    if state.status == "blocked":
        assert state.warned_since is not None and state.quota is not None
        raise QuotaExceeded(
            f"quota dépassé: {client} uses {size(state.used, 'en')} of "
            f"{size(state.quota, 'en')} subscribed, over by more than 10 % since "
            f"{state.warned_since:%d/%m/%Y}; backups stop until the volume is raised or data "
            "is removed (shorter retention, fewer jobs)")


def measure_and_judge(sessions: sessionmaker[Session], loaded: LoadedConfig, client: str,
                      baies: list[str], now: datetime) -> QuotaState:
    """Record what the client's repositories take on ``baies``; move a ``next_tier`` client
    up a tier when its grace ended; record an alert when the state became a warning, a block
    or a new tier. Returns the new state."""
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
    if state.status == "tier_due":
        _move_up(sessions, loaded, client, state, now)
        state = client_state(sessions, loaded, client, now)
    if state.status in ("warning", "blocked"):
        kind = AlertKind.QUOTA_WARNING if state.status == "warning" else AlertKind.QUOTA_BLOCKED
        with sessions() as session, session.begin():
            owner = known_client(session, client)
            open_alert = session.scalars(select(AlertRow).where(
                AlertRow.client_id == owner.id, AlertRow.kind == kind.value,
                AlertRow.resolved_at.is_(None))).first()
            if open_alert is None:
                session.add(_alert(kind, owner, state, now, loaded))
    elif state.status in ("ok", "none", "over"):
        _resolve_quota_alerts(sessions, client, now)
    return state


def _alert(kind: AlertKind, owner: ClientRow, state: QuotaState, now: datetime,
           loaded: LoadedConfig) -> AlertRow:
    assert state.quota is not None and state.grace_ends is not None
    after = {"block": "backups stop", "next_tier": "the next tier is billed"}[state.on_overrun]
    said = (f"; {after} on {state.grace_ends.astimezone(loaded.config.msp.timezone):%d/%m/%Y} "
            "unless the volume is raised or data removed" if kind == AlertKind.QUOTA_WARNING
            else "; backups are stopped")
    return AlertRow(
        kind=kind.value, severity="warning" if kind == AlertKind.QUOTA_WARNING else "error",
        client_id=owner.id, created_at=now,
        message=(f"{owner.name} uses {size(state.used, 'en')} of {size(state.quota, 'en')} "
                 f"subscribed ({state.percent:.0f} %)" + said),
        details={"used": state.used, "quota": state.quota,
                 "grace_ends": state.grace_ends.isoformat(), "on_overrun": state.on_overrun})


def _move_up(sessions: sessionmaker[Session], loaded: LoadedConfig, client: str,
             state: QuotaState, now: datetime) -> None:
    """Record the client's move to the tier that holds its data, audited, with its alert."""
    assert state.quota is not None
    tiers = [int(t * GB) for t in loaded.config.msp.volume_tiers_gb or []]
    new = next_tier(state.used, tiers) if tiers else state.quota
    if new <= state.quota:  # already in the largest tier: the hotline must decide
        new = state.quota
    local = now.astimezone(loaded.config.msp.timezone).date()
    billed = first_of_next_month(local)
    with sessions() as session, session.begin():
        owner = known_client(session, client)
        if new == state.quota:
            exists = session.scalars(select(AlertRow).where(
                AlertRow.client_id == owner.id, AlertRow.kind == AlertKind.QUOTA_TIER.value,
                AlertRow.resolved_at.is_(None))).first()
            if exists is None:
                session.add(AlertRow(
                    kind=AlertKind.QUOTA_TIER.value, severity="error", client_id=owner.id,
                    created_at=now, message=(
                        f"{owner.name} uses {size(state.used, 'en')}, more than the largest "
                        f"tier ({size(state.quota, 'en')}): backups go on, the contract "
                        "must be looked at"),
                    details={"used": state.used, "quota": state.quota, "to": state.quota,
                             "billed_from": billed.isoformat(), "largest": True}))
            return
        session.add(QuotaTierMoveRow(client_id=owner.id, decided_at=now, billed_from=billed,
                                     from_bytes=state.quota, to_bytes=new,
                                     used_bytes=state.used))
        session.add(AuditRow(at=now, actor="hvbackup", action="quota.tier", target=client,
                             details={"from": state.quota, "to": new, "used": state.used,
                                      "billed_from": billed.isoformat()}))
        for alert in session.scalars(select(AlertRow).where(
                AlertRow.client_id == owner.id, AlertRow.kind == AlertKind.QUOTA_WARNING.value,
                AlertRow.resolved_at.is_(None))):
            alert.resolved_at = now
        session.add(AlertRow(
            kind=AlertKind.QUOTA_TIER.value, severity="warning", client_id=owner.id,
            created_at=now, resolved_at=now,  # told once; nothing is left to do
            message=(f"{owner.name} stayed over {size(state.quota, 'en')} for 30 days "
                     f"({size(state.used, 'en')}): moved to the {size(new, 'en')} tier, "
                     f"billed from {billed:%d/%m/%Y}"),
            details={"used": state.used, "quota": state.quota, "to": new,
                     "billed_from": billed.isoformat()}))


def _resolve_quota_alerts(sessions: sessionmaker[Session], client: str, now: datetime) -> None:
    with sessions() as session, session.begin():
        for alert in session.scalars(select(AlertRow).join(ClientRow).where(
                ClientRow.key == client,
                AlertRow.kind.in_([k.value for k in (*QUOTA_ALERTS, AlertKind.QUOTA_TIER)]),
                AlertRow.resolved_at.is_(None))):
            alert.resolved_at = now


__all__ = [
    "GRACE",
    "QuotaExceeded",
    "QuotaState",
    "TierMove",
    "client_state",
    "effective_quota",
    "evaluate",
    "first_of_next_month",
    "measure_and_judge",
    "next_tier",
    "replace",
    "state_of",
]
