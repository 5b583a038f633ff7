"""A month of usage per client, for the MSP's invoicing: the subscribed volume (and its tier
moves in the month), the peak and the end-of-month volume stored on each baie, and the runs by
status. Read from the history only; the CLI (``hvbackup usage``), the dashboard's CSV and the
API show the same rows.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from orchestrator.findings import RunStatus
from orchestrator.history.models import BaieUsageRow, ClientRow, JobRow, RunRow
from orchestrator.jobs.quota import TierMove, effective_quota, first_of_next_month, tier_moves


@dataclass
class BaieUsage:
    baie: str
    peak_bytes: int
    end_bytes: int  # the last measurement of the month


@dataclass
class ClientUsage:
    client: str
    name: str
    subscribed_start: int | None  # bytes, on the first day of the month
    subscribed_end: int | None  # bytes, at the end of the month
    tier_moves: list[TierMove] = field(default_factory=list)  # decided within the month
    baies: list[BaieUsage] = field(default_factory=list)
    runs: dict[str, int] = field(default_factory=dict)  # status -> count

    def to_dict(self) -> dict[str, object]:
        return {
            "client": self.client, "name": self.name,
            "subscribed_bytes_start": self.subscribed_start,
            "subscribed_bytes_end": self.subscribed_end,
            "tier_moves": [{"decided_at": m.decided_at.isoformat(), "from_bytes": m.from_bytes,
                            "to_bytes": m.to_bytes, "billed_from": m.billed_from.isoformat()}
                           for m in self.tier_moves],
            "baies": [{"baie": b.baie, "peak_bytes": b.peak_bytes, "end_bytes": b.end_bytes}
                      for b in self.baies],
            "runs": self.runs,
        }


def parse_month(text: str) -> date:
    """``2026-11`` → 1 November 2026; ValueError with the expected form otherwise."""
    try:
        year, month = (int(part) for part in text.split("-"))
        return date(year, month, 1)
    except (ValueError, TypeError):
        raise ValueError(f"{text!r} is not a month: give it as YYYY-MM (e.g. 2026-11)") from None


def month_usage(session: Session, month: date, tz: ZoneInfo) -> list[ClientUsage]:
    """Every client that had a run or a measurement in ``month`` (in the MSP's time zone), or
    is active, by key."""
    start = datetime.combine(month, time(), tz)
    end = datetime.combine(first_of_next_month(month), time(), tz)
    found = []
    for client in session.scalars(select(ClientRow).order_by(ClientRow.key)):
        moves = tier_moves(session, client.key)
        runs = {str(status): int(count) for status, count in session.execute(
            select(RunRow.status, func.count()).join(JobRow)
            .where(JobRow.client_id == client.id, RunRow.status.is_not(None),
                   RunRow.scheduled_for >= start, RunRow.scheduled_for < end)
            .group_by(RunRow.status)).all()}
        measured = session.execute(
            select(BaieUsageRow.baie, BaieUsageRow.measured_at, BaieUsageRow.bytes_stored)
            .where(BaieUsageRow.client_id == client.id, BaieUsageRow.measured_at >= start,
                   BaieUsageRow.measured_at < end)
            .order_by(BaieUsageRow.baie, BaieUsageRow.measured_at)).all()
        if not client.active and not runs and not measured:
            continue
        baies: dict[str, BaieUsage] = {}
        for baie, _when, value in measured:
            seen = baies.setdefault(baie, BaieUsage(baie, value, value))
            seen.peak_bytes = max(seen.peak_bytes, value)
            seen.end_bytes = value
        found.append(ClientUsage(
            client.key, client.name,
            effective_quota(client.quota_bytes, [m for m in moves if m.decided_at < start]),
            effective_quota(client.quota_bytes, [m for m in moves if m.decided_at < end]),
            [m for m in moves if start <= m.decided_at < end], list(baies.values()),
            {status.value: int(runs.get(status.value, 0)) for status in RunStatus}))
    return found


CSV_COLUMNS = ["month", "client", "name", "subscribed_gb_start", "subscribed_gb_end",
               "tier_moves", "baie", "peak_gb", "end_of_month_gb",
               *(f"runs_{s.value.lower().replace(' ', '_')}" for s in RunStatus)]


def to_csv(rows: list[ClientUsage], month: date) -> str:
    """One line per client and baie (a client without a measurement: one line, no baie)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)

    def gb(value: int | None) -> str:
        return "" if value is None else f"{value / 1e9:.3f}"

    for row in rows:
        moves = "; ".join(f"{m.decided_at:%Y-%m-%d}: {gb(m.from_bytes)} -> {gb(m.to_bytes)} GB "
                          f"billed from {m.billed_from:%Y-%m-%d}" for m in row.tier_moves)
        for baie in baies_or_none(row.baies):
            writer.writerow([f"{month:%Y-%m}", row.client, row.name, gb(row.subscribed_start),
                             gb(row.subscribed_end), moves, baie.baie if baie else "",
                             gb(baie.peak_bytes) if baie else "",
                             gb(baie.end_bytes) if baie else "",
                             *(row.runs.get(s.value, 0) for s in RunStatus)])
    return out.getvalue()


def baies_or_none(baies: list[BaieUsage]) -> list[BaieUsage | None]:
    """A client's baies, or one empty place for a client with no measurement."""
    return [*baies] if baies else [None]
