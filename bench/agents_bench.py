"""A night of site agents delivering to two central server processes on one PostgreSQL.

    make bench-agents
    .venv/bin/python bench/agents_bench.py [--agents 1000] [--jobs 5] [--concurrency 32]

Builds a configuration of ``--agents`` sites (one client, one host and ``--jobs`` jobs each),
a fresh PostgreSQL database through the real migrations, and starts two real ``hvbackup
serve`` processes on it. Every agent enrolls (single-use token), sends a heartbeat and
delivers its night (3 % of runs failed, 2 % warned): one finished run per job, with its steps
and log lines, as the agent's spool sends it. A bounded load generator plays the agents over
loopback: requests leave at ``--rate`` per second (a real night spreads its runs over hours:
5,000 runs in ten hours is 0.14 a second; the default is a few hundred times that, all the
agents reconnecting after an outage at once), never more than ``--concurrency`` in flight; a
latency counts from when the request was due, so a generator falling behind shows as
latency, not as a gentler load.
``--rate 0`` sends flat out: that measures capacity, and its latencies are mostly waiting in
line. Halfway through the night the first server process is killed (SIGKILL), and agents
whose request it held send the same run again to the other, as an agent retries its spool.
Afterwards the history must hold every run exactly once, and the dashboard pages are timed
on the surviving process.

Goals (issue "site agents"): ingestion p95 under 100 ms, no run lost or duplicated with one
of the two processes killed, dashboard pages p95 under 150 ms afterwards. Plain HTTP on
loopback: in production the server sits behind a TLS reverse proxy (docs/agents.md), whose
cost is not the server's. Every commit waits for PostgreSQL to flush its log to the disk (a
run the server answered for is the agent's to forget); on a virtual disk whose flushes stall
now and then, that is most of the tail: ``--commit no-wait`` measures the same night without
it, to tell the two apart (``HVB_BENCH_TRACE=1`` prints the latency ten seconds at a time).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
from sqlalchemy import create_engine, func, select, text  # noqa: E402

from orchestrator.agent.registry import create_enrollment  # noqa: E402
from orchestrator.clock import SystemClock  # noqa: E402
from orchestrator.config.load import load_config  # noqa: E402
from orchestrator.dashboard.accounts import add_user  # noqa: E402
from orchestrator.history.db import open_engine, upgrade  # noqa: E402
from orchestrator.history.models import RunEventRow, RunRow, RunStepRow  # noqa: E402
from orchestrator.jobs.context import open_context  # noqa: E402

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
API = "/api/agent/v1"
PASSWORD = "un mot de passe de banc d'essai"
JOBS = [("vm", "hyperv-vm"), ("sql", "sql-server"), ("fichiers", "files"),
        ("serveurs", "hyperv-vm"), ("mails", "files")]


def _config(folder: Path, database: str, agents: int, jobs: int) -> Path:
    lines = ["version: 1", f"database: {database}", f"state_dir: {folder / 'state'}",
             "msp:", "  name: MSP Banc", "  hotline: [hotline@msp.example]",
             "  timezone: Europe/Paris", "baies:", f"  baie-1: {{type: local, path: {folder}/b1}}",
             f"  baie-2: {{type: local, path: {folder}/b2}}", "sites:"]
    for n in range(agents):
        lines += [f"  site-{n:04d}:", f"    name: Site {n}", "    heartbeat_minutes: 30"]
    lines.append("clients:")
    for n in range(agents):
        lines += [f"  c{n:04d}:", f"    name: Client {n}", f"    contacts: [it@c{n:04d}.example]",
                  f"    encryption: {{public_key_file: {folder}/client.pub}}",
                  "    copies: [baie-1, baie-2]", "    hosts:", "      hv:",
                  f"        address: hv.c{n:04d}.lan", f"        site: site-{n:04d}",
                  "        winrm: {username: 'svc', password_env: HVB_BENCH_WINRM}",
                  "    jobs:"]
        for j, (name, kind) in enumerate(JOBS[:jobs]):
            what = {"hyperv-vm": [f"vms: [SRV{j:02d}]"],
                    "sql-server": ["instance: 'HV\\\\SQL'", "databases: [all]"],
                    "files": [f"paths: ['D:\\\\Partages{j}']"]}[kind]
            lines += [f"      {name}:", f"        type: {kind}", "        host: hv",
                      *(f"        {w}" for w in what),
                      f"        schedule: \"daily {20 + j % 4}:00\""]
    path = folder / "hvbackup.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _public_key(folder: Path) -> None:
    from orchestrator.store.keys import PublicKey, generate_private_key

    key = generate_private_key()
    (folder / "client.pub").write_text(PublicKey(key.public.raw, "banc").text() + "\n")


def _a_run(uid: str, client: str, job: str, night: datetime, steps: int,
           lines: int, status: str) -> dict[str, Any]:
    start = night
    end = start + timedelta(minutes=42)
    failed = status == "ECHEC"
    return {
        "uid": uid, "client": client, "job": job, "scheduled_for": start.isoformat(),
        "window_ends_at": (start + timedelta(hours=8)).isoformat(),
        "started_at": start.isoformat(), "finished_at": end.isoformat(), "status": status,
        "error_code": "HVB-HOST-UNREACHABLE" if failed else None,
        "error_message": "hv does not answer on 5986" if failed else None,
        "consistency": "application", "bytes_read": 40_000_000_000,
        "bytes_new": 1_200_000_000, "bytes_sent": 700_000_000, "files": 3,
        "steps": [{"seq": s + 1, "name": "upload", "object": f"disque-{s}", "status": "ok",
                   "started_at": start.isoformat(), "finished_at": end.isoformat(),
                   "bytes_read": 8_000_000_000, "bytes_new": 240_000_000,
                   "bytes_sent": 140_000_000} for s in range(steps)],
        "events": [{"at": start.isoformat(), "level": "INFO",
                    "message": f"disque-{e % steps}: 240 MB new, 140 MB sent", "step_seq":
                    e % steps + 1} for e in range(lines)],
    }


class Servers:
    """Two ``hvbackup serve`` processes on one database; ``alive`` the ones not killed."""

    def __init__(self, config: Path, ports: list[int], env: dict[str, str]) -> None:
        self.urls = [f"http://127.0.0.1:{p}" for p in ports]
        self.procs = [subprocess.Popen(
            [str(REPO / ".venv" / "bin" / "hvbackup"), "serve", "-c", str(config),
             "--port", str(p), "--cookie-secure", "no"], env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for p in ports]
        self.alive = list(self.urls)

    def wait_up(self, deadline_s: float = 120) -> None:
        end = time.monotonic() + deadline_s
        for url, proc in zip(self.urls, self.procs, strict=True):
            while True:
                if proc.poll() is not None:
                    raise SystemExit(f"server {url} exited: {proc.stderr.read().decode()[-2000:]}"
                                     if proc.stderr else f"server {url} exited")
                try:
                    if httpx.get(url + "/login", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > end:
                    raise SystemExit(f"server {url} did not start")
                time.sleep(0.2)

    def kill_first(self) -> None:
        self.procs[0].send_signal(signal.SIGKILL)
        self.procs[0].wait()
        self.alive.remove(self.urls[0])

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()


async def _send(client: httpx.AsyncClient, servers: Servers, index: int, method: str,
                path: str, due: float | None = None, **kw: Any) -> tuple[httpx.Response, float]:
    """As an agent does: the same request again, to the other server, until one answers.
    The time is counted from ``due`` (perf_counter) when given, else from the first send."""
    attempt = 0
    started = time.perf_counter() if due is None else due
    while True:
        url = servers.alive[(index + attempt) % len(servers.alive)]
        try:
            answer = await client.request(method, url + path, **kw)
        except httpx.TransportError:
            attempt += 1
            await asyncio.sleep(0)  # the other server, at once
            continue
        if answer.status_code >= 500:
            attempt += 1
            continue
        return answer, (time.perf_counter() - started) * 1000


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def _night(servers: Servers, tokens: list[tuple[str, str]], jobs: int, concurrency: int,
                 rate: float, steps: int, lines: int) -> dict[str, Any]:
    night = datetime.now(UTC).replace(hour=20, minute=0, second=0, microsecond=0) \
        - timedelta(days=1)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    timings: dict[str, list[float]] = {"enroll": [], "heartbeat": [], "run": [],
                                       "run-before-kill": [], "run-after-kill": []}
    trace: list[tuple[float, float]] = []  # (seconds into the night, ms) of each run
    recorded = {"true": 0, "false": 0}
    done = 0
    total_runs = len(tokens) * jobs
    killed_at: int | None = None
    queue: asyncio.Queue[tuple[str, int, Any]] = asyncio.Queue()
    agent_tokens: dict[int, str] = {}

    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        async def enroll(i: int) -> None:
            _site, token = tokens[i]
            answer, ms = await _send(client, servers, i, "POST", f"{API}/enroll", json={
                "token": token, "name": f"agent-{i:04d}", "version": "1.0.0"})
            assert answer.status_code == 200, answer.text
            agent_tokens[i] = answer.json()["agent_token"]
            timings["enroll"].append(ms)

        sent = 0

        async def worker() -> None:
            nonlocal done, killed_at, sent
            while True:
                try:
                    kind, i, body = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                if kind == "run":
                    body = _a_run(*body[:4], steps, lines, body[4])
                due = None
                if rate > 0:
                    due = started + sent / rate
                    sent += 1
                    await asyncio.sleep(max(0.0, due - time.perf_counter()))
                headers = {"Authorization": f"Bearer {agent_tokens[i]}"}
                if kind == "heartbeat":
                    answer, ms = await _send(client, servers, i, "POST", f"{API}/heartbeat",
                                             due, json=body, headers=headers)
                    assert answer.status_code == 200, answer.text
                    timings["heartbeat"].append(ms)
                    continue
                answer, ms = await _send(client, servers, i, "POST", f"{API}/runs", due,
                                         json=body, headers=headers)
                assert answer.status_code == 200, f"{answer.status_code} {answer.text}"
                recorded["true" if answer.json()["recorded"] else "false"] += 1
                timings["run"].append(ms)
                (timings["run-after-kill"] if killed_at is not None
                 else timings["run-before-kill"]).append(ms)
                trace.append((time.perf_counter() - started, ms))
                done += 1
                if killed_at is None and done >= total_runs // 2:
                    killed_at = done
                    servers.kill_first()

        for start in range(0, len(tokens), concurrency):
            await asyncio.gather(*(enroll(i) for i in range(start, min(len(tokens),
                                                                        start + concurrency))))
        for i in range(len(tokens)):
            queue.put_nowait(("heartbeat", i, {"version": "1.0.0", "running": [],
                                               "queued_runs": jobs}))
            for j, (name, _kind) in enumerate(JOBS[:jobs]):
                uid = f"{night:%Y%m%d}{20 + j % 4:02d}00-a{i:04d}{j}"
                # A bad night's share of trouble: 3 % failed, 2 % with a warning.
                n = i * jobs + j
                status = ("ECHEC" if n % 100 < 3 else "AVERTISSEMENT" if n % 100 < 5
                          else "REUSSIE")
                queue.put_nowait(("run", i, (uid, f"c{i:04d}", name,
                                             night + timedelta(hours=j % 4), status)))
        # The generator's own pauses would count as the server's latency: what it holds for
        # the whole night is kept out of the garbage collector's way, and a run's body (40
        # log lines) is made just before it is sent.
        gc.collect()
        gc.freeze()
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {"timings": timings, "trace": trace, "recorded": recorded, "killed_at": killed_at,
            "elapsed": elapsed, "total": total_runs}


def _pages(url: str, client_keys: list[str], requests: int) -> dict[str, list[float]]:
    with httpx.Client(base_url=url, timeout=60, follow_redirects=False) as web:
        form = web.get("/login").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', form)
        data = {"username": "hotline", "password": PASSWORD}
        if csrf:
            data["csrf"] = csrf.group(1)
        answer = web.post("/login", data=data)
        assert answer.status_code in (302, 303), answer.text[:500]
        pages = {"/": "À traiter", "/clients/{c}": "client", "/api/v1/problems": "API problems"}
        timings: dict[str, list[float]] = {name: [] for name in pages.values()}
        for n in range(requests):
            for path, name in pages.items():
                started = time.perf_counter()
                got = web.get(path.format(c=client_keys[n % len(client_keys)]))
                timings[name].append((time.perf_counter() - started) * 1000)
                assert got.status_code == 200, f"{path}: {got.status_code}"
    return timings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=5, choices=range(1, 6))
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight at most")
    parser.add_argument("--rate", type=float, default=40,
                        help="requests sent per second (0: flat out, to measure capacity)")
    parser.add_argument("--steps", type=int, default=4, help="steps per run")
    parser.add_argument("--lines", type=int, default=40, help="log lines per run")
    parser.add_argument("--page-requests", type=int, default=60)
    parser.add_argument("--commit", choices=["wait", "no-wait"], default="wait",
                        help="wait: each commit waits for the disk, as in production; no-wait: "
                             "synchronous_commit off on the bench's database, to tell the "
                             "server's own time from the disk's flush latency")
    args = parser.parse_args()

    from tests.servers import free_port

    name = f"hvb_agents_bench_{os.getpid()}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
        if args.commit == "no-wait":
            conn.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
    database = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    servers: Servers | None = None
    try:
        with tempfile.TemporaryDirectory(prefix="hvb-agents-bench-") as tmp:
            folder = Path(tmp)
            _public_key(folder)
            config = _config(folder, database, args.agents, args.jobs)
            loaded = load_config(config)
            engine = open_engine(loaded.database_url)
            upgrade(engine)
            engine.dispose()
            ctx = open_context(loaded, SystemClock(), "bench")
            now = datetime.now(UTC)
            tokens = [(f"site-{n:04d}", create_enrollment(ctx.sessions, f"site-{n:04d}", 24,
                                                          "bench", now)[0])
                      for n in range(args.agents)]
            add_user(ctx.sessions, "hotline", PASSWORD, "hotline", None, "bench", now)
            env = dict(os.environ, HVB_BENCH_WINRM="unused", HVBACKUP_DASHBOARD_SECRET="x" * 40)
            servers = Servers(config, [free_port(), free_port()], env)
            servers.wait_up()
            result = asyncio.run(_night(servers, tokens, args.jobs, args.concurrency,
                                        args.rate, args.steps, args.lines))
            with ctx.sessions() as session:
                stored = session.scalar(select(func.count()).select_from(RunRow))
                distinct = session.scalar(select(func.count(func.distinct(RunRow.uid))))
                steps = session.scalar(select(func.count()).select_from(RunStepRow))
                events = session.scalar(select(func.count()).select_from(RunEventRow))
            # The morning after, PostgreSQL's autovacuum has analysed the night's rows (it is off
            # on some test machines; a database filled in two minutes would otherwise be
            # planned as if its tables were empty).
            with ctx.sessions() as session:
                session.execute(text("ANALYZE"))
                session.commit()
            pages = _pages(servers.alive[0], [f"c{n:04d}" for n in range(args.agents)],
                           args.page_requests)
    finally:
        if servers is not None:
            servers.stop()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    t = result["timings"]
    total = result["total"]
    print(f"agents: {args.agents}, runs: {total} ({args.steps} steps and {args.lines} log lines "
          f"each), {f'{args.rate:g} requests/s' if args.rate > 0 else 'flat out'}, at most "
          f"{args.concurrency} in flight, two server processes on PostgreSQL, commits "
          f"{'waiting for the disk' if args.commit == 'wait' else 'not waiting for the disk'}")
    print(f"first server killed (SIGKILL) after {result['killed_at']} runs; night delivered in "
          f"{result['elapsed']:.1f} s ({total / result['elapsed']:.0f} runs/s)")
    for kind in ("enroll", "heartbeat", "run", "run-before-kill", "run-after-kill"):
        values = t[kind]
        print(f"  {kind:<15} n={len(values):>5}  p50 {statistics.median(values):6.1f} ms  "
              f"p95 {_pct(values, 95):6.1f} ms  p99 {_pct(values, 99):6.1f} ms  "
              f"max {max(values):7.1f} ms")
    if os.environ.get("HVB_BENCH_TRACE"):
        by_ten: dict[int, list[float]] = {}
        for at, ms in result["trace"]:
            by_ten.setdefault(int(at // 10), []).append(ms)
        for tens, values in sorted(by_ten.items()):
            print(f"    {tens * 10:>4}-{tens * 10 + 10:<4} s  n={len(values):>4}  p95 "
                  f"{_pct(values, 95):6.1f} ms  max {max(values):7.1f} ms")
    lost = total - distinct
    duplicated = stored - distinct
    print(f"history: {stored} runs ({distinct} distinct uids), {steps} steps, {events} log lines; "
          f"answers recorded=true {result['recorded']['true']}, "
          f"recorded=false (sent again) {result['recorded']['false']}")
    print(f"  lost {lost}, duplicated {duplicated}")
    for page, values in pages.items():
        print(f"  page {page:<13} n={len(values):>4}  p50 {statistics.median(values):6.1f} ms  "
              f"p95 {_pct(values, 95):6.1f} ms  max {max(values):7.1f} ms")
    run_p95 = _pct(t["run"], 95)
    page_p95 = max(_pct(v, 95) for v in pages.values())
    goals = [("ingestion p95 < 100 ms", run_p95 < 100),
             ("no run lost or duplicated", lost == 0 and duplicated == 0),
             ("dashboard pages p95 < 150 ms", page_p95 < 150)]
    for goal, met in goals:
        print(f"goal {goal}: {'met' if met else 'NOT MET'}")
    return 0 if all(met for _goal, met in goals) else 1


if __name__ == "__main__":
    raise SystemExit(main())
