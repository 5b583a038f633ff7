"""``hvbackup agent run --once`` in a process of its own, against the central server under a
real uvicorn on loopback: the agent runs its site's job on a simulated host from the part it
received (or kept, when the server is down), and the run reaches the server's history once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from orchestrator.history.models import AgentRow, JobRow, RunEventRow, RunRequestRow, RunRow
from orchestrator.history.queries import job_row
from orchestrator.store.keys import generate_private_key
from tests.agent.served import serve_tls
from tests.conftest import REPO
from tests.dashboard.agents import Central
from tests.servers import free_port

CONFIG = """\
version: 1
database: sqlite:///{root}/central.db
state_dir: {root}/central-state
msp:
  name: MSP Test
  hotline: [hotline@msp.example]
sites:
  acme-siege: {{name: 'ACME, siège de Lyon', heartbeat_minutes: 30}}
baies:
  baie-acme: {{type: local, path: {root}/baie-acme}}
  baie-msp: {{type: local, path: {root}/baie-msp}}
clients:
  acme:
    name: ACME SARL
    contacts: [it@acme.example]
    encryption: {{public_key_file: {root}/acme.pub}}
    copies: [baie-acme]
    hosts:
      hv01:
        address: hv01.acme.local
        site: acme-siege
        transport: simulated
        simulated: {{seed: 4, share_files: 12}}
      hv-msp:
        address: hv-msp.msp.local
        transport: simulated
        simulated: {{seed: 5, share_files: 5}}
    jobs:
      partages:
        type: files
        host: hv01
        paths: ['D:\\Partages']
        schedule: "daily 22:00"
      central-files:
        type: files
        host: hv-msp
        paths: ['D:\\Partages']
        schedule: "daily 22:00"
        copies: [baie-msp]
"""

# The agent's own process, on a clock the test sets (the server's runs on the test's clock).
AGENT = ("import sys; from datetime import datetime; from orchestrator.cli.main import main; "
         "from orchestrator.clock import FrozenClock; "
         "sys.exit(main(sys.argv[2:], clock=FrozenClock(datetime.fromisoformat(sys.argv[1]))))")


@dataclass
class Ran:
    code: int
    out: str
    err: str


def agent_run(folder: Path, at: str, env: dict[str, str] | None = None) -> Ran:
    done = subprocess.run([sys.executable, "-c", AGENT, at, "agent", "run", "--once",
                           "--state-dir", str(folder)], cwd=REPO, capture_output=True,
                          text=True, timeout=300, check=False, env={**os.environ, **(env or {})})
    return Ran(done.returncode, done.stdout, done.stderr)


def central_of(root: Path, clock, hosts: str = "", jobs: str = "") -> Central:  # type: ignore[no-untyped-def]
    for baie in ("baie-acme", "baie-msp"):
        (root / baie).mkdir(parents=True, exist_ok=True)
    (root / "acme.pub").write_text(generate_private_key().public.text() + "\n")
    path = root / "hvbackup.yaml"
    text = CONFIG.format(root=root)
    text = text.replace("    jobs:\n", hosts + "    jobs:\n") + jobs
    path.write_text(text, encoding="utf-8")
    return Central(root, clock, config=path)


def runs(central: Central) -> list[RunRow]:
    with central.sessions() as session:
        return list(session.scalars(select(RunRow).order_by(RunRow.id)))


def enroll(cli, central: Central, url: str, ca: Path, folder: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("agent", "enroll", "--server", url, "--token",
                 central.enrollment("acme-siege"), "--ca-file", str(ca), "--name", "srv-acme",
                 "--state-dir", str(folder))
    assert result.code == 0, result.err


def test_the_agent_runs_its_sites_job_and_the_server_has_it_once(cli, tmp_path: Path,
                                                                 clock) -> None:  # type: ignore[no-untyped-def]
    central = central_of(tmp_path, clock)
    folder = tmp_path / "agent"
    with serve_tls(central.app, tmp_path) as (url, ca):
        enroll(cli, central, url, ca, folder)
        before = agent_run(folder, "2026-11-23T20:00:00+00:00")  # 21:00 in Paris
        assert before.code == 0, before.err
        assert "srv-acme (site acme-siege): 0 run(s), 0 waiting" in before.out
        part = (folder / "part.json").read_text(encoding="utf-8")
        assert "hv01" in part and "hv-msp" not in part and "central-files" not in part

        night = agent_run(folder, "2026-11-23T21:05:00+00:00")  # 22:05: partages is due
        assert night.code == 0, night.err
        assert "1 run(s) delivered" in night.out and "0 waiting" in night.out
        [run] = runs(central)
        assert (run.status, run.trigger, run.claimed_by) == ("REUSSIE", "schedule",
                                                             "agent:srv-acme")
        assert run.scheduled_for.replace(tzinfo=UTC) == datetime(2026, 11, 23, 21, 0,
                                                                 tzinfo=UTC)
        assert run.files == 12 and run.bytes_read and run.bytes_read > 0
        assert f"run {run.uid} finished" in night.out
        with central.sessions() as session:
            steps = [s.name for s in session.get_one(RunRow, run.id).steps]
            lines = session.scalars(select(RunEventRow.message)
                                    .where(RunEventRow.run_id == run.id)).all()
            agent = session.scalars(select(AgentRow)).one()
        assert "commit snapshot" in steps and "read" in steps
        assert any("finished: REUSSIE" in line for line in lines)
        assert agent.last_seen_at is not None and agent.version and agent.queued_runs == 0
        # The backup is on the site's baie, written by the agent.
        assert any((tmp_path / "baie-acme").rglob("*"))
        assert not any((tmp_path / "baie-msp").rglob("*"))

        again = agent_run(folder, "2026-11-23T21:30:00+00:00")
        assert again.code == 0, again.err
        assert "0 run(s), 0 waiting" in again.out
        assert len(runs(central)) == 1


def test_with_the_server_down_the_agent_backs_up_and_delivers_once_when_it_is_back(
        cli, tmp_path: Path, clock) -> None:  # type: ignore[no-untyped-def]
    central = central_of(tmp_path, clock)
    folder = tmp_path / "agent"
    port = free_port()
    with serve_tls(central.app, tmp_path, port) as (url, ca):
        enroll(cli, central, url, ca, folder)
        assert agent_run(folder, "2026-11-23T20:00:00+00:00").code == 0
    down = agent_run(folder, "2026-11-23T21:05:00+00:00")
    assert down.code == 8, down.err
    assert "the server cannot be reached, the runs wait in the spool" in down.err
    assert "1 run(s), 1 waiting in the spool" in down.out
    assert runs(central) == []
    assert any((tmp_path / "baie-acme").rglob("*"))  # backed up all the same
    with serve_tls(central.app, tmp_path, port):
        back = agent_run(folder, "2026-11-23T21:40:00+00:00")
        assert back.code == 0, back.err
        assert "0 run(s), 0 waiting" in back.out and "1 run(s) delivered" in back.out
        again = agent_run(folder, "2026-11-23T21:45:00+00:00")
        assert again.code == 0, again.err
    [run] = runs(central)
    assert run.status == "REUSSIE" and run.claimed_by == "agent:srv-acme"


def test_an_agent_never_enrolled_and_never_configured_says_so(tmp_path: Path) -> None:
    ran = agent_run(tmp_path / "agent", "2026-11-23T21:05:00+00:00")
    assert ran.code == 2  # a usage error: the wrong --state-dir, or not enrolled yet
    assert "no agent is enrolled in" in ran.err and "hvbackup agent enroll" in ran.err


def test_a_run_now_request_is_run_by_the_agent_once_and_closed(cli, tmp_path: Path,
                                                               clock) -> None:  # type: ignore[no-untyped-def]
    central = central_of(tmp_path, clock)
    folder = tmp_path / "agent"
    with central.sessions() as session, session.begin():
        job = job_row(session, "acme", "partages")
        assert job is not None
        session.add(RunRequestRow(job_id=job.id, requested_by="hotline",
                                  requested_at=clock.now()))
    with serve_tls(central.app, tmp_path) as (url, ca):
        enroll(cli, central, url, ca, folder)
        first = agent_run(folder, "2026-11-23T09:05:00+00:00")
        assert first.code == 0, first.err
        assert "1 run(s) delivered" in first.out
        second = agent_run(folder, "2026-11-23T09:10:00+00:00")
        assert second.code == 0 and "0 run(s)" in second.out
    [run] = runs(central)
    assert (run.trigger, run.status) == ("dashboard", "REUSSIE")
    with central.sessions() as session:
        request = session.scalars(select(RunRequestRow)).one()
        assert request.run_uid == run.uid and request.started_at is not None
        assert session.scalars(select(JobRow.key)).all()  # the server's jobs are untouched


def test_the_kept_part_holds_no_other_site_and_the_server_no_secret(cli, tmp_path: Path,
                                                                    clock) -> None:  # type: ignore[no-untyped-def]
    central = central_of(tmp_path, clock)
    folder = tmp_path / "agent"
    with serve_tls(central.app, tmp_path) as (url, ca):
        enroll(cli, central, url, ca, folder)
        assert agent_run(folder, "2026-11-23T20:00:00+00:00").code == 0
    part = json.loads((folder / "part.json").read_text(encoding="utf-8"))
    assert set(part["clients"]["acme"]["hosts"]) == {"hv01"}
    assert set(part["baies"]) == {"baie-acme"}
    assert "database" not in part and "state_dir" not in part


SECRET = "Tr0ub4dor-acme-winrm-only-on-site"
WINRM_HOST = """\
      hv02:
        address: 127.0.0.1
        site: acme-siege
        transport: winrm
        winrm: {{port: {port}, connect_retries: 0, username: 'ACME\\svc',
                password_env: ACME_WINRM_PASSWORD}}
"""
WINRM_JOB = """\
      donnees:
        type: files
        host: hv02
        paths: ['D:\\Donnees']
        schedule: "daily 21:30"
"""


def test_a_password_env_is_read_on_the_agents_machine_and_never_reaches_the_server(
        cli, tmp_path: Path, clock) -> None:  # type: ignore[no-untyped-def]
    assert "ACME_WINRM_PASSWORD" not in os.environ  # the server's side has no such variable
    central = central_of(tmp_path, clock, hosts=WINRM_HOST.format(port=free_port()),
                         jobs=WINRM_JOB)
    folder = tmp_path / "agent"
    with serve_tls(central.app, tmp_path) as (url, ca):
        enroll(cli, central, url, ca, folder)
        assert agent_run(folder, "2026-11-23T19:00:00+00:00").code == 0
        # First night, the agent's machine lacks the variable: the run says so.
        assert agent_run(folder, "2026-11-23T21:05:00+00:00").code == 0
        # Second night, it has it: the run goes past the password, to the host (which
        # nothing answers for here).
        assert agent_run(folder, "2026-11-24T21:05:00+00:00",
                         env={"ACME_WINRM_PASSWORD": SECRET}).code == 0
    with central.sessions() as session:
        found = session.execute(select(RunRow.scheduled_for, RunRow.error_code)
                                .join(JobRow, RunRow.job_id == JobRow.id)
                                .where(JobRow.key == "donnees")
                                .order_by(RunRow.scheduled_for)).all()
    assert [code for _when, code in found] == ["HVB-SECRET", "HVB-HOST-UNREACHABLE"]
    # Everything the server's SQLite holds: the file and its write-ahead log, if any.
    database = b"".join(p.read_bytes() for p in sorted(tmp_path.glob("central.db*")))
    assert b"ACME_WINRM_PASSWORD" in database  # the reference is there (the error says it)
    assert SECRET.encode() not in database
    part = (folder / "part.json").read_text(encoding="utf-8")
    assert '"password_env": "ACME_WINRM_PASSWORD"' in part and SECRET not in part


def test_an_agent_that_never_received_its_part_runs_nothing_and_says_so(
        cli, tmp_path: Path, clock) -> None:  # type: ignore[no-untyped-def]
    central = central_of(tmp_path, clock)
    folder = tmp_path / "agent"
    with serve_tls(central.app, tmp_path) as (url, ca):
        enroll(cli, central, url, ca, folder)
    down = agent_run(folder, "2026-11-23T21:05:00+00:00")
    assert down.code == 8
    assert "no configuration was ever received from the server" in down.err
    assert not (folder / "part.json").exists() and not any((tmp_path / "baie-acme").rglob("*"))


def test_a_relative_state_dir_is_one_folder_whatever_the_cwd(tmp_path: Path,
                                                             monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # The folder is the base of the part's relative paths, its own state_dir included: a
    # relative one would nest (agent1/agent1/history.db).
    from orchestrator.agent.runner import load_part
    from orchestrator.agent.state import agent_dir

    monkeypatch.chdir(tmp_path)
    folder = agent_dir("agent1")
    assert folder == tmp_path / "agent1"
    loaded = load_part({"version": 1, "msp": {"name": "MSP", "hotline": ["h@msp.example"]},
                        "baies": {"b": {"type": "local", "path": "/srv/b"}}, "clients": {}},
                       folder)
    assert loaded.state_dir == tmp_path / "agent1"
    assert loaded.database_url == f"sqlite:///{tmp_path / 'agent1' / 'history.db'}"


def test_an_agent_replacing_a_revoked_one_does_not_run_what_the_server_has(
        cli, tmp_path: Path, clock) -> None:  # type: ignore[no-untyped-def]
    central = central_of(tmp_path, clock)
    with serve_tls(central.app, tmp_path) as (url, ca):
        enroll(cli, central, url, ca, tmp_path / "agent")
        first = agent_run(tmp_path / "agent", "2026-11-23T21:05:00+00:00")  # 22:05: partages
        assert first.code == 0 and "1 run(s) delivered" in first.out, first.err
        assert cli("agent", "revoke", "-c", str(central.path), "srv-acme").code == 0
        # The site's machine replaced: a new agent, a new (empty) state folder, same night.
        result = cli("agent", "enroll", "--server", url, "--token",
                     central.enrollment("acme-siege"), "--ca-file", str(ca), "--name",
                     "srv-acme-neuf", "--state-dir", str(tmp_path / "new"))
        assert result.code == 0, result.err
        again = agent_run(tmp_path / "new", "2026-11-23T21:30:00+00:00")
        assert again.code == 0, again.err
        assert "0 run(s), 0 waiting" in again.out  # the server has that night's run
        night = agent_run(tmp_path / "new", "2026-11-24T21:05:00+00:00")  # the next one runs
        assert night.code == 0 and "1 run(s) delivered" in night.out, night.err
    assert [(r.scheduled_for.day, r.claimed_by) for r in runs(central)] == [
        (23, "agent:srv-acme"), (24, "agent:srv-acme-neuf")]
    # The restore point the first agent wrote is the server's, hence known to the new one:
    # not "a backup we did not make" on the baie.
    second = runs(central)[1]
    assert (second.status, second.error_code) == ("REUSSIE", None), second.findings
