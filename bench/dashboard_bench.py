"""Dashboard page timings on three years of history for 200 clients of 5 jobs each.

    make bench-dashboard
    .venv/bin/python bench/dashboard_bench.py [--clients 200] [--years 3] [--requests 60]
                                              [--backends sqlite,postgresql]

Generates the history through the real migrations (same schema and indexes as production):
one run a night per job (about 1.1 million runs: mostly REUSSIE, a few per cent AVERTISSEMENT,
ECHEC and NON EXECUTEE, some failing streaks, some flagged INHABITUELLE), steps and log lines
for the last month, restore points (the last 30 days kept on two baies, older ones forgotten on
the first), the baies' usage measured every night, a few quota alerts and acknowledgements.
Then asks the real application (in process, through its ASGI interface, logged in as hotline)
for the home page ("À traiter"), client pages, the API's problems, a run page and /metrics,
and prints p50 / p95 / max per page and backend. Goal: p95 under 150 ms on SQLite and on
PostgreSQL (for the pages; /metrics is scraped, not looked at).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import create_engine, insert, text  # noqa: E402

from orchestrator.dashboard.accounts import add_user  # noqa: E402
from orchestrator.dashboard.app import DashboardSettings, create_app  # noqa: E402
from orchestrator.history.db import open_engine, session_factory, upgrade  # noqa: E402
from orchestrator.history.models import (  # noqa: E402
    AcknowledgementRow,
    AlertRow,
    BaieUsageRow,
    ClientRow,
    JobRow,
    RunEventRow,
    RunRow,
    RunStepRow,
    SnapshotRow,
)

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
NOW = datetime(2026, 11, 24, 7, 30, tzinfo=UTC)
JOB_KINDS = [("erp", "hyperv-vm", 21), ("compta", "sql-server", 22), ("partages", "files", 20),
             ("serveurs", "hyperv-vm", 23), ("mails", "files", 19)]
BATCH = 20_000


def _batches(engine: Any, table: Any, rows: list[dict[str, Any]]) -> None:
    with engine.begin() as conn:
        for start in range(0, len(rows), BATCH):
            conn.execute(insert(table), rows[start:start + BATCH])


def generate(engine: Any, clients: int, years: int, seed: int = 7) -> dict[str, int]:
    """Fill an empty, migrated history; returns how many rows of each kind were written."""
    rng = random.Random(seed)
    days = 365 * years
    first = NOW - timedelta(days=days)
    counts = dict.fromkeys(("runs", "steps", "events", "snapshots", "usage"), 0)
    with engine.begin() as conn:
        conn.execute(insert(ClientRow.__table__), [
            {"key": f"client{c:03d}", "name": f"Client {c:03d} SARL", "language": "fr",
             "quota_bytes": rng.choice([None, 200_000_000_000, 500_000_000_000,
                                        1_000_000_000_000]), "active": True,
             "created_at": first, "updated_at": first} for c in range(clients)])
        client_ids = [r[0] for r in conn.execute(text("SELECT id FROM clients ORDER BY id"))]
        conn.execute(insert(JobRow.__table__), [
            {"client_id": cid, "key": key, "type": kind, "host": "hv01",
             "schedule": f"daily {hour}:00", "window_hours": 8.0, "objects": [],
             "copies": ["site-a", "site-b"], "active": True, "created_at": first,
             "updated_at": first} for cid in client_ids for key, kind, hour in JOB_KINDS])
        jobs = [tuple(r) for r in conn.execute(text(
            "SELECT id, client_id, key FROM jobs ORDER BY id"))]
    hour_of = {key: hour for key, _kind, hour in JOB_KINDS}
    run_id = 0
    for job_id, client_id, key in jobs:
        runs, steps, events, snaps = [], [], [], []
        size = rng.randint(2, 400) * 1_000_000_000
        files = rng.randint(2, 200_000)
        streak = 0
        # About 5 % of jobs end the period failing, a few of them for weeks.
        tail = rng.choice([0] * 19 + [rng.choice([1, 2, 3, 5, 12, 45])])
        for day in range(days):
            when = first + timedelta(days=day, hours=hour_of[key] - 7)
            run_id += 1
            if day >= days - tail:
                status = "ECHEC"
            elif streak:
                streak -= 1
                status = "ECHEC"
            else:
                roll = rng.random()
                status = ("ECHEC" if roll < 0.015 else "NON EXECUTEE" if roll < 0.02
                          else "AVERTISSEMENT" if roll < 0.03 else "REUSSIE")
                if status == "ECHEC" and rng.random() < 0.2:
                    streak = rng.randint(1, 4)
            ok = status in ("REUSSIE", "AVERTISSEMENT")
            read = int(size * rng.uniform(0.98, 1.02)) if ok else None
            flags = [{"figure": "bytes_read", "reason": "volume lu 3x l'habituel"}] if (
                ok and rng.random() < 0.005) else []
            runs.append({
                "id": run_id, "uid": f"{when:%Y%m%d%H%M}-{run_id:06x}", "job_id": job_id,
                "trigger": "schedule", "scheduled_for": when,
                "window_ends_at": when + timedelta(hours=8), "state": "finished",
                "status": status, "claimed_by": "bench:1", "heartbeat_at": when,
                "started_at": when, "finished_at": when + timedelta(minutes=40),
                "duration_s": 2400.0, "consistency": "application" if ok else None,
                "bytes_read": read, "bytes_new": read and read // 50,
                "bytes_sent": read and read // 60, "files": files if ok else None,
                "error_code": None if ok else "HVB-HOST-UNREACHABLE",
                "error_message": None if ok else "hv01 does not answer on 5986 (WinRM HTTPS): "
                "check that the host is up and the firewall lets the orchestrator in",
                "sanity_flags": flags})
            if day >= days - 30:
                for seq, name in enumerate(("sweep leftovers", "checkpoint", "read", "copy",
                                            "retention"), start=1):
                    steps.append({"run_id": run_id, "seq": seq, "name": name, "object": None,
                                  "status": "ok" if ok else "failed", "started_at": when,
                                  "finished_at": when, "details": {"parity": True}
                                  if name == "copy" else {}})
                    events.append({"run_id": run_id, "at": when, "level": "INFO",
                                   "message": f"{name}: done"})
            if ok:
                kept = day >= days - 30
                for baie in ("site-a", "site-b") if kept else ("site-a",):
                    snaps.append({"snapshot_id": uuid.UUID(int=rng.getrandbits(128)).hex,
                                  "baie": baie, "client_id": client_id, "job_id": job_id,
                                  "run_id": run_id, "taken_at": when, "bytes_total": read,
                                  "files": files, "objects": [],
                                  "forgotten_at": None if kept else when + timedelta(days=30),
                                  "forget_reason": None if kept else "older than 30 days"})
        _batches(engine, RunRow.__table__, runs)
        _batches(engine, RunStepRow.__table__, steps)
        _batches(engine, RunEventRow.__table__, events)
        _batches(engine, SnapshotRow.__table__, snaps)
        counts["runs"] += len(runs)
        counts["steps"] += len(steps)
        counts["events"] += len(events)
        counts["snapshots"] += len(snaps)
    usage = []
    for cid in client_ids:
        stored = rng.randint(50, 900) * 1_000_000_000
        for day in range(days):
            for baie in ("site-a", "site-b"):
                usage.append({"client_id": cid, "baie": baie, "bytes_stored": stored,
                              "measured_at": first + timedelta(days=day, hours=-1)})
            stored = int(stored * rng.uniform(0.999, 1.0015))
    _batches(engine, BaieUsageRow.__table__, usage)
    counts["usage"] = len(usage)
    with engine.begin() as conn:
        conn.execute(insert(AlertRow.__table__), [
            {"kind": "quota_warning", "severity": "warning", "client_id": cid,
             "created_at": NOW - timedelta(days=rng.randint(1, 25)),
             "message": "volume souscrit dépassé de plus de 10 %", "details": {"baie": "site-a"}}
            for cid in rng.sample(client_ids, 5)])
        last_failed = conn.execute(text(
            "SELECT id, job_id FROM runs WHERE status = 'ECHEC' AND scheduled_for > :since"),
            {"since": (NOW - timedelta(days=1)).replace(tzinfo=None)
             if engine.dialect.name == "sqlite" else NOW - timedelta(days=1)}).all()
        if last_failed:
            conn.execute(insert(AcknowledgementRow.__table__), [
                {"job_id": job, "run_id": rid, "user_id": None, "at": NOW,
                 "comment": "client prévenu"} for rid, job in last_failed[::3]])
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    return counts


def measure(client: TestClient, paths: list[str]) -> list[float]:
    times = []
    for path in paths:
        start = time.perf_counter()
        answer = client.get(path)
        times.append((time.perf_counter() - start) * 1000)
        assert answer.status_code == 200, (path, answer.status_code)
    return times


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bench_backend(name: str, url: str, args: argparse.Namespace,
                  reuse: bool = False) -> list[tuple[str, ...]]:
    engine = open_engine(url)
    sessions = session_factory(engine)
    if not reuse:
        upgrade(engine)
        started = time.perf_counter()
        counts = generate(engine, args.clients, args.years)
        print(f"{name}: generated {counts['runs']:,} runs, {counts['snapshots']:,} restore "
              f"points, {counts['usage']:,} usage measurements, {counts['steps']:,} steps in "
              f"{time.perf_counter() - started:.0f} s", flush=True)
        add_user(sessions, "hotline", "bench hotline password", "hotline", None, "bench", NOW)
    settings = DashboardSettings(sessions=sessions, timezone=ZoneInfo("Europe/Paris"),
                                 language="fr", now=lambda: NOW, secret="bench",
                                 secure_cookies=False)
    web = TestClient(create_app(settings), follow_redirects=False)
    login = web.post("/login", data={"username": "hotline",
                                     "password": "bench hotline password"})
    assert login.status_code == 303
    home = web.get("/")
    shown = home.text.count('class="problem"')
    rng = random.Random(3)
    clients = [f"/clients/client{rng.randrange(args.clients):03d}" for _ in range(args.requests)]
    measure(web, ["/", clients[0], "/api/v1/problems"])  # warm caches
    rows = []
    for page, paths in (("home (À traiter)", ["/"] * args.requests),
                        ("client page", clients),
                        ("API /problems", ["/api/v1/problems"] * args.requests),
                        ("run page", [f"/runs/{_last_uid(engine)}"] * args.requests),
                        ("/metrics (all)", ["/metrics"] * max(5, args.requests // 6))):
        times = measure(web, paths)
        p95 = percentile(times, 0.95)
        rows.append((name, page, f"{statistics.median(times):.1f}", f"{p95:.1f}",
                     f"{max(times):.1f}", "-" if page.startswith("/metrics")
                     else "yes" if p95 < 150 else "NO"))
    print(f"{name}: the home page lists {shown} problems", flush=True)
    engine.dispose()
    return rows


def _last_uid(engine: Any) -> str:
    with engine.connect() as conn:
        uid: str = conn.execute(text("SELECT uid FROM runs ORDER BY id DESC LIMIT 1")).scalar_one()
    return uid


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--years", type=int, default=3)
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--sqlite-file", metavar="PATH", type=Path,
                        help="keep the generated SQLite history there, and reuse it when it "
                             "exists (to measure again without generating again)")
    args = parser.parse_args()
    rows: list[tuple[str, ...]] = []
    with tempfile.TemporaryDirectory(prefix="hvb-dash-bench-") as tmp:
        for backend in args.backends.split(","):
            if backend == "sqlite":
                path = args.sqlite_file or Path(tmp) / "history.db"
                rows += bench_backend("SQLite", f"sqlite:///{path}", args,
                                      reuse=args.sqlite_file is not None and path.exists())
            elif backend == "postgresql":
                name = f"hvb_bench_{uuid.uuid4().hex[:8]}"
                admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
                with admin.connect() as conn:
                    conn.execute(text(f'CREATE DATABASE "{name}"'))
                try:
                    rows += bench_backend("PostgreSQL", PG_ADMIN.rsplit("/", 1)[0] + "/" + name,
                                          args)
                finally:
                    with admin.connect() as conn:
                        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                    admin.dispose()
            else:
                parser.error(f"unknown backend {backend!r}: sqlite or postgresql")
    header = ("backend", "page", "p50 ms", "p95 ms", "max ms", "p95 < 150 ms")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print()
    for row in [header, *rows]:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)))
    return 0 if all(r[-1] != "NO" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
