"""An agent enrolls with the central server over verified TLS, then delivers the runs of its
spool, each once, whether the server was there or not (docs/agents.md)."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import func, select

from orchestrator.agent.protocol import RunIn
from orchestrator.agent.server import HttpServer
from orchestrator.agent.spool import Spool
from orchestrator.agent.state import SPOOL_FILE, TOKEN_FILE
from orchestrator.clock import FrozenClock
from orchestrator.history.models import AgentEnrollmentRow, AgentRow, RunRow
from tests.agent.served import serve_tls
from tests.dashboard.agents import Central, a_run
from tests.servers import free_port


def _runs(central: Central) -> list[str]:
    with central.sessions() as session:
        return sorted(session.scalars(select(RunRow.uid)).all())


def _queue(agent_dir: Path, clock: FrozenClock, *uids: str) -> Spool:
    spool = Spool(agent_dir / SPOOL_FILE)
    for night, uid in enumerate(uids, start=10):  # one run a night
        run = a_run(uid, "acme", "erp-acme", scheduled_for=f"2026-11-{night}T21:00:00+00:00")
        assert spool.add(RunIn.model_validate(run), clock.now())
    return spool


def test_enroll_over_tls_then_deliver_each_run_once(cli, tmp_path: Path,
                                                    clock: FrozenClock) -> None:
    central = Central(tmp_path / "central", clock)
    agent_dir = tmp_path / "agent"
    with serve_tls(central.app, tmp_path) as (url, ca):
        token = central.enrollment("acme-siege")
        result = cli("agent", "enroll", "--server", url, "--token", token, "--ca-file",
                     str(ca), "--name", "srv-acme", "--state-dir", str(agent_dir))
        assert result.code == 0, result.err
        assert f"agent srv-acme enrolled for site acme-siege with {url}" in result.out
        assert (agent_dir / TOKEN_FILE).stat().st_mode & 0o777 == 0o600
        assert token not in (agent_dir / "agent.json").read_text()
        state = json.loads((agent_dir / "agent.json").read_text())
        assert (state["site"], state["server"]) == ("acme-siege", url)

        spool = _queue(agent_dir, clock, "202611222200-acme01", "202611232200-acme02")
        first = cli("agent", "deliver", "--state-dir", str(agent_dir))
        assert first.code == 0, first.err
        assert "2 run(s) delivered" in first.out and "none waiting" in first.out
        assert _runs(central) == ["202611222200-acme01", "202611232200-acme02"]
        # Queued again (a spool restored from a copy): neither queued nor sent twice.
        assert not spool.add(RunIn.model_validate(a_run("202611222200-acme01", "acme",
                                                        "erp-acme")), clock.now())
        again = cli("agent", "deliver", "--state-dir", str(agent_dir))
        assert again.code == 0 and "0 run(s) delivered" in again.out
        assert len(_runs(central)) == 2


def test_a_run_whose_answer_was_lost_is_recorded_once(cli, tmp_path: Path,
                                                      clock: FrozenClock) -> None:
    central = Central(tmp_path / "central", clock)
    agent_dir = tmp_path / "agent"
    with serve_tls(central.app, tmp_path) as (url, ca):
        assert cli("agent", "enroll", "--server", url, "--token",
                   central.enrollment("acme-siege"), "--ca-file", str(ca), "--name",
                   "srv-acme", "--state-dir", str(agent_dir)).code == 0
        spool = _queue(agent_dir, clock, "202611222200-acme01")
        # The server got it, but the agent never read the answer: it is still waiting.
        token = (agent_dir / TOKEN_FILE).read_text().strip()
        with HttpServer(url, ca, token) as server:
            assert server.post_run(spool.waiting()[0]).recorded is True
        assert [r.uid for r in spool.waiting()] == ["202611222200-acme01"]
        result = cli("agent", "deliver", "--state-dir", str(agent_dir))
        assert result.code == 0, result.err
        assert spool.waiting() == []
    with central.sessions() as session:
        assert session.scalar(select(func.count()).select_from(RunRow)) == 1


def test_runs_wait_while_the_server_is_down_then_go(cli, tmp_path: Path,
                                                    clock: FrozenClock) -> None:
    central = Central(tmp_path / "central", clock)
    agent_dir = tmp_path / "agent"
    port = free_port()
    with serve_tls(central.app, tmp_path, port) as (url, ca):
        assert cli("agent", "enroll", "--server", url, "--token",
                   central.enrollment("acme-siege"), "--ca-file", str(ca), "--name",
                   "srv-acme", "--state-dir", str(agent_dir)).code == 0
    spool = _queue(agent_dir, clock, "202611222200-acme01", "202611232200-acme02")
    down = cli("agent", "deliver", "--state-dir", str(agent_dir))
    assert down.code == 8
    assert "0 run(s) delivered, 2 waiting" in down.err and "does not answer" in down.err
    assert len(spool.waiting()) == 2 and _runs(central) == []
    with serve_tls(central.app, tmp_path, port):
        back = cli("agent", "deliver", "--state-dir", str(agent_dir))
        assert back.code == 0, back.err
        assert "2 run(s) delivered" in back.out
    assert _runs(central) == ["202611222200-acme01", "202611232200-acme02"]


def test_a_server_certificate_not_signed_by_a_trusted_ca_is_refused(
        cli, tmp_path: Path, clock: FrozenClock) -> None:
    central = Central(tmp_path / "central", clock)
    token = central.enrollment("acme-siege")
    with serve_tls(central.app, tmp_path) as (url, _ca):
        refused = cli("agent", "enroll", "--server", url, "--token", token, "--name",
                      "srv-acme", "--state-dir", str(tmp_path / "agent"))
    assert refused.code == 8
    assert "is not trusted" in refused.err and "--ca-file" in refused.err
    assert not (tmp_path / "agent" / TOKEN_FILE).exists()
    with central.sessions() as session:  # the token was never presented: still unused
        assert session.scalars(select(AgentEnrollmentRow.used_at)).one() is None
        assert session.scalars(select(AgentRow)).all() == []


def test_a_spent_token_and_a_revoked_agent_are_refused(cli, tmp_path: Path,
                                                       clock: FrozenClock) -> None:
    central = Central(tmp_path / "central", clock)
    agent_dir = tmp_path / "agent"
    token = central.enrollment("acme-siege")
    with serve_tls(central.app, tmp_path) as (url, ca):
        args = ["agent", "enroll", "--server", url, "--token", token, "--ca-file", str(ca),
                "--name", "srv-acme", "--state-dir", str(agent_dir)]
        assert cli(*args).code == 0
        spent = cli(*[a if a != "srv-acme" else "srv-acme-2" for a in args])
        assert spent.code == 8
        assert "unknown, already used or expired" in spent.err
        assert cli("agent", "revoke", "srv-acme", "-c", str(central.path)).code == 0
        _queue(agent_dir, clock, "202611222200-acme01")
        revoked = cli("agent", "deliver", "--state-dir", str(agent_dir))
        assert revoked.code == 8
        assert "the server refused this agent: unknown or revoked agent token" in revoked.err
    assert _runs(central) == []


def test_plain_http_is_refused_beyond_this_machine(cli, tmp_path: Path) -> None:
    result = cli("agent", "enroll", "--server", "http://sauvegardes.msp.example",
                 "--token", "hve_x", "--state-dir", str(tmp_path / "agent"))
    assert result.code == 2
    assert "plain http would send the agent's token in clear; use https" in result.err


def test_a_run_the_server_refuses_is_kept_and_the_others_go(cli, tmp_path: Path,
                                                            clock: FrozenClock) -> None:
    central = Central(tmp_path / "central", clock)
    agent_dir = tmp_path / "agent"
    with serve_tls(central.app, tmp_path) as (url, ca):
        assert cli("agent", "enroll", "--server", url, "--token",
                   central.enrollment("acme-siege"), "--ca-file", str(ca), "--name",
                   "srv-acme", "--state-dir", str(agent_dir)).code == 0
        # A job moved to another site since the run was made, queued between two others.
        spool = Spool(agent_dir / SPOOL_FILE)
        for uid, client, job in [("202611222200-acme01", "acme", "erp-acme"),
                                 ("202611222200-bob01", "bobco", "usine-compta"),
                                 ("202611232200-acme02", "acme", "erp-acme")]:
            night = uid[6:8]
            run = a_run(uid, client, job, scheduled_for=f"2026-11-{night}T21:00:00+00:00")
            assert spool.add(RunIn.model_validate(run), clock.now())
        result = cli("agent", "deliver", "--state-dir", str(agent_dir))
        assert result.code == 8
        assert "2 run(s) delivered" in result.out
        assert ("refused by the server, kept in the spool and no longer sent: "
                "202611222200-bob01: run 202611222200-bob01 refused (403): the job is not "
                "one of site 'acme-siege''s jobs") in result.err
        assert [uid for uid, _ in spool.refused()] == ["202611222200-bob01"]
        assert spool.waiting() == []
    assert _runs(central) == ["202611222200-acme01", "202611232200-acme02"]
