"""The agent API: enrollment tokens spent once, agent tokens confined to their site, revoked
agents refused, runs delivered exactly once (docs/agents.md)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select

from orchestrator.agent import registry
from orchestrator.clock import FrozenClock
from orchestrator.dashboard.accounts import add_user
from orchestrator.dashboard.auth import create_token
from orchestrator.history.models import (
    AgentRow,
    AlertRow,
    ClientRow,
    JobRow,
    RunEventRow,
    RunRequestRow,
    RunRow,
    RunStepRow,
    SnapshotRow,
)
from tests.config.two_sites import BOBCO_TRACES
from tests.dashboard.agents import API, Central, a_run, later


@pytest.fixture
def central(tmp_path: Path, clock: FrozenClock, db_url: str) -> Central:
    return Central(tmp_path, clock, database=db_url)


def _request_run_now(central: Central, client: str, job: str) -> int:
    with central.sessions() as session, session.begin():
        job_id = session.scalars(select(JobRow.id).join(ClientRow).where(
            ClientRow.key == client, JobRow.key == job)).one()
        row = RunRequestRow(job_id=job_id, requested_by="marie",
                            requested_at=central.clock.now())
        session.add(row)
        session.flush()
        return row.id


def _runs(central: Central) -> int:
    with central.sessions() as session:
        return session.scalar(select(func.count()).select_from(RunRow)) or 0


def test_an_enrollment_token_is_spent_once_and_expires(central: Central) -> None:
    token = central.enrollment("acme-siege", hours=2)
    first = central.web.post(f"{API}/enroll", json={"token": token, "name": "srv-acme",
                                                    "version": "1.0.0"})
    assert first.status_code == 200, first.text
    assert first.json()["agent_token"].startswith("hva_")
    again = central.web.post(f"{API}/enroll", json={"token": token, "name": "srv-acme-2",
                                                    "version": "1.0.0"})
    assert again.status_code == 401
    assert "unknown, already used or expired" in again.json()["detail"]

    stale = central.enrollment("acme-siege", hours=2)
    later(central.clock, 2.01)
    expired = central.web.post(f"{API}/enroll", json={"token": stale, "name": "srv-acme-3",
                                                      "version": "1.0.0"})
    assert expired.status_code == 401
    unknown = central.web.post(f"{API}/enroll", json={"token": "hve_" + "x" * 43,
                                                      "name": "srv-acme-4", "version": "1.0.0"})
    assert unknown.status_code == 401
    with central.sessions() as session:
        assert session.scalars(select(AgentRow.name)).all() == ["srv-acme"]
        # Kept hashed: the token the agent holds is nowhere in the history.
        assert first.json()["agent_token"] not in json.dumps(
            [r.token_sha256 for r in session.scalars(select(AgentRow))])


def test_a_name_already_enrolled_is_refused_without_spending_the_token(
        central: Central) -> None:
    central.enroll("acme-siege", "srv-acme")
    token = central.enrollment("bobco-usine")
    taken = central.web.post(f"{API}/enroll", json={"token": token, "name": "srv-acme",
                                                    "version": "1.0.0"})
    assert taken.status_code == 409
    assert "hvbackup agent revoke srv-acme" in taken.json()["detail"]
    other = central.web.post(f"{API}/enroll", json={"token": token, "name": "srv-bob",
                                                    "version": "1.0.0"})
    assert other.status_code == 200, other.text


def test_a_second_agent_for_a_site_is_refused_until_the_first_is_revoked(
        central: Central, cli) -> None:  # type: ignore[no-untyped-def]
    central.enroll("acme-siege", "srv-acme")
    token = central.enrollment("acme-siege")
    second = central.web.post(f"{API}/enroll", json={"token": token, "name": "pc-atelier",
                                                     "version": "1.0.0"})
    assert second.status_code == 409
    assert second.json()["detail"] == (
        "site 'acme-siege' already has an enrolled agent, 'srv-acme': revoke it first "
        "('hvbackup agent revoke srv-acme' on the server) to replace it; the token is not "
        "spent")
    assert cli("agent", "revoke", "-c", str(central.path), "srv-acme").code == 0
    again = central.web.post(f"{API}/enroll", json={"token": token, "name": "pc-atelier",
                                                    "version": "1.0.0"})
    assert again.status_code == 200, again.text


def test_another_sites_token_learns_nothing_of_that_site(central: Central) -> None:
    acme = central.enroll("acme-siege", "srv-acme")
    bob = central.enroll("bobco-usine", "srv-bob")
    bob_request = _request_run_now(central, "bobco", "usine-compta")
    assert central.web.post(f"{API}/runs", headers=bob,
                            json=a_run("bob-run-1", "bobco", "usine-compta")).status_code == 200

    calls = {
        ("GET", f"{API}/config"): lambda: central.web.get(f"{API}/config", headers=acme),
        ("GET", f"{API}/run-requests"): lambda: central.web.get(f"{API}/run-requests",
                                                                headers=acme),
        ("POST", f"{API}/runs"): lambda: central.web.post(
            f"{API}/runs", headers=acme, json=a_run("acme-run-x", "bobco", "usine-compta")),
        ("POST", f"{API}/heartbeat"): lambda: central.web.post(
            f"{API}/heartbeat", headers=acme, json={"version": "1.0.0", "running": [
                {"client": "bobco", "job": "usine-compta"}]}),
        ("GET", f"{API}/writer-keys"): lambda: central.web.get(f"{API}/writer-keys",
                                                               headers=acme),
    }
    routes = {(method.upper(), path) for path, item in central.app.openapi()["paths"].items()
              if path.startswith(API) and path != f"{API}/enroll" for method in item}
    assert routes == set(calls), "every agent route must be tried with another site's token"
    for (method, path), call in calls.items():
        answer = call()
        where = f"{method} {path}"
        assert answer.status_code in (200, 403, 404), (where, answer.status_code, answer.text)
        for trace in BOBCO_TRACES:
            # What the caller itself sent may be echoed by FastAPI's validation; our answers
            # never do, and nothing of BobCo's site is read out.
            assert trace not in answer.text, (where, trace, answer.text)
    assert calls[("GET", f"{API}/run-requests")]().json() == []
    assert calls[("POST", f"{API}/runs")]().status_code == 403
    assert calls[("POST", f"{API}/heartbeat")]().status_code == 403
    # The writer keys: ACME's only, the one the server keeps; BobCo's is BobCo's agent's.
    acme_keys = calls[("GET", f"{API}/writer-keys")]().json()["keys"]
    assert list(acme_keys) == ["acme"]
    kept = central.loaded.state_dir / "keys" / "acme.writer"
    assert acme_keys["acme"] == kept.read_text().strip()
    assert kept.stat().st_mode & 0o777 == 0o600
    bob_keys = central.web.get(f"{API}/writer-keys", headers=bob).json()["keys"]
    assert list(bob_keys) == ["bobco"] and bob_keys["bobco"] != acme_keys["acme"]

    # A job that exists nowhere gets the same answer as another site's job.
    nowhere = central.web.post(f"{API}/runs", headers=acme,
                               json=a_run("acme-run-y", "nobody", "nothing"))
    assert nowhere.status_code == 403
    assert nowhere.json() == calls[("POST", f"{API}/runs")]().json()
    # A uid already delivered by BobCo's agent, reused for an ACME job: refused, unnamed.
    reused = central.web.post(f"{API}/runs", headers=acme,
                              json=a_run("bob-run-1", "acme", "erp-acme"))
    assert reused.status_code == 409
    assert not any(t in reused.text for t in BOBCO_TRACES)

    # BobCo's agent, for its part, sees its request.
    mine = central.web.get(f"{API}/run-requests", headers=bob).json()
    assert [(r["id"], r["client"], r["job"]) for r in mine] == [
        (bob_request, "bobco", "usine-compta")]
    assert _runs(central) == 1


def test_a_revoked_agent_is_refused_everywhere(central: Central, cli) -> None:
    acme = central.enroll("acme-siege", "srv-acme")
    assert central.web.get(f"{API}/config", headers=acme).status_code == 200
    result = cli("agent", "revoke", "srv-acme", "-c", str(central.path))
    assert result.code == 0, result.err
    assert "agent srv-acme (site acme-siege) revoked" in result.out
    answers = [
        central.web.get(f"{API}/config", headers=acme),
        central.web.get(f"{API}/run-requests", headers=acme),
        central.web.post(f"{API}/runs", headers=acme, json=a_run("r1", "acme", "erp-acme")),
        central.web.post(f"{API}/heartbeat", headers=acme, json={"version": "1.0.0"}),
    ]
    assert [a.status_code for a in answers] == [401] * 4
    assert all(a.headers["www-authenticate"] == "Bearer" for a in answers)
    assert _runs(central) == 0


def test_no_token_or_a_dashboard_token_is_no_agent(central: Central) -> None:
    now = central.clock.now()
    add_user(central.sessions, "marie", "hotline password 1", "hotline", None, "test", now)
    user_token = create_token(central.sessions, "marie", "tests", "test", now)
    for headers in ({}, {"Authorization": f"Bearer {user_token}"},
                    {"Authorization": "Basic bWFyaWU6eA=="}):
        assert central.web.get(f"{API}/config", headers=headers).status_code == 401


def test_an_agent_token_opens_nothing_of_the_dashboard_api(central: Central) -> None:
    acme = central.enroll("acme-siege", "srv-acme")
    for path in ("/api/v1/clients", "/api/v1/problems", "/metrics"):
        assert central.web.get(path, headers=acme).status_code == 401, path


def test_the_same_run_delivered_twice_is_recorded_once(central: Central) -> None:
    acme = central.enroll("acme-siege", "srv-acme")
    run = a_run("202611222200-acme01", "acme", "erp-acme")
    first = central.web.post(f"{API}/runs", headers=acme, json=run)
    second = central.web.post(f"{API}/runs", headers=acme, json=run)
    assert (first.status_code, first.json()) == (200, {"uid": run["uid"], "recorded": True})
    assert (second.status_code, second.json()) == (200, {"uid": run["uid"], "recorded": False})
    with central.sessions() as session:
        assert session.scalar(select(func.count()).select_from(RunRow)) == 1
        assert session.scalar(select(func.count()).select_from(RunStepRow)) == 2
        assert session.scalar(select(func.count()).select_from(RunEventRow)) == 3

    # The hotline reads it like any other run, steps, figures and log included.
    now = central.clock.now()
    add_user(central.sessions, "marie", "hotline password 1", "hotline", None, "test", now)
    token = create_token(central.sessions, "marie", "tests", "test", now)
    page = central.web.get(f"/api/v1/runs/{run['uid']}",
                           headers={"Authorization": f"Bearer {token}"})
    assert page.status_code == 200, page.text
    body = page.json()
    assert (body["client"], body["job"], body["status"], body["bytes_sent"]) == (
        "acme", "erp-acme", "REUSSIE", 700_000_000)
    assert body["duration_s"] == 42 * 60
    assert [s["name"] for s in body["steps"]] == ["checkpoint", "upload"]
    assert [e["message"] for e in body["log"]][-1] == "run finished"


def test_a_delivered_echec_is_alerted_once_however_often_it_comes(central: Central) -> None:
    acme = central.enroll("acme-siege", "srv-acme")
    failed = a_run("202611222200-acme02", "acme", "erp-acme", status="ECHEC",
                   error_code="HVB-HOST-UNREACHABLE", error_message="hv01 does not answer",
                   findings=[{"kind": "run_failed", "object": None,
                              "code": "HVB-HOST-UNREACHABLE", "script_code": None,
                              "message": "hv01 does not answer on 5986"}])
    for _ in range(2):
        answer = central.web.post(f"{API}/runs", headers=acme, json=failed)
        assert answer.status_code == 200, answer.text
    with central.sessions() as session:
        [alert] = session.scalars(select(AlertRow))
        run = session.scalars(select(RunRow)).one()
    assert (alert.kind, alert.run_id, alert.severity) == ("echec", run.id, "error")
    assert "hv01 does not answer on 5986" in alert.message
    fine = a_run("202611232200-acme03", "acme", "erp-acme",
                 scheduled_for="2026-11-23T21:00:00+00:00")
    assert central.web.post(f"{API}/runs", headers=acme, json=fine).status_code == 200
    with central.sessions() as session:  # a REUSSIE alerts no one
        assert session.scalar(select(func.count()).select_from(AlertRow)) == 1


def test_a_delivered_runs_restore_points_are_catalogued_on_its_jobs_baies_only(
        central: Central) -> None:
    acme = central.enroll("acme-siege", "srv-acme")
    point = {"snapshot_id": "ab" * 32, "baie": "baie-bob", "taken_at": "2026-11-22T21:40:00Z",
             "bytes_total": 40_000_000_000, "files": 3}
    stray = a_run("202611222200-acme04", "acme", "erp-acme", snapshots=[point])
    answer = central.web.post(f"{API}/runs", headers=acme, json=stray)
    assert answer.status_code == 422
    assert "not a baie this job copies to" in answer.text
    assert _runs(central) == 0
    point["baie"] = "baie-acme-1"
    answer = central.web.post(f"{API}/runs", headers=acme, json=stray)
    assert answer.status_code == 200, answer.text
    with central.sessions() as session:
        [row] = session.scalars(select(SnapshotRow))
        run = session.scalars(select(RunRow)).one()
    assert (row.snapshot_id, row.baie, row.run_id, row.files) == ("ab" * 32, "baie-acme-1",
                                                                  run.id, 3)


def test_a_delivered_run_answers_its_run_now_request(central: Central) -> None:
    acme = central.enroll("acme-siege", "srv-acme")
    request_id = _request_run_now(central, "acme", "erp-acme")
    pending = central.web.get(f"{API}/run-requests", headers=acme).json()
    assert [(r["id"], r["job"], r["requested_by"]) for r in pending] == [
        (request_id, "erp-acme", "marie")]
    run = a_run("202611231000-acme02", "acme", "erp-acme", trigger="dashboard",
                request_id=request_id)
    assert central.web.post(f"{API}/runs", headers=acme, json=run).status_code == 200
    assert central.web.get(f"{API}/run-requests", headers=acme).json() == []
    with central.sessions() as session:
        assert session.get_one(RunRequestRow, request_id).run_uid == run["uid"]


def test_a_malformed_run_is_refused_and_nothing_recorded(central: Central) -> None:
    acme = central.enroll("acme-siege", "srv-acme")
    naive = a_run("r-naive", "acme", "erp-acme", finished_at="2026-11-22T21:42:00")
    extra = a_run("r-extra", "acme", "erp-acme", password="x")
    unknown_status = a_run("r-status", "acme", "erp-acme", status="OK")
    for body in (naive, extra, unknown_status):
        assert central.web.post(f"{API}/runs", headers=acme, json=body).status_code == 422
    assert _runs(central) == 0


def test_the_heartbeat_records_version_and_running_jobs(central: Central, cli) -> None:
    acme = central.enroll("acme-siege", "srv-acme")
    later(central.clock, 1)
    answer = central.web.post(f"{API}/heartbeat", headers=acme, json={
        "version": "1.2.0", "queued_runs": 2, "running": [
            {"client": "acme", "job": "erp-acme", "run_uid": "u1", "step": "upload",
             "done_bytes": 10, "total_bytes": 100}]})
    assert answer.status_code == 200, answer.text
    assert answer.json()["site"] == "acme-siege"
    with central.sessions() as session:
        row = session.scalars(select(AgentRow)).one()
        assert row.version == "1.2.0"
        assert row.running[0]["step"] == "upload"
        assert row.last_seen_at == central.clock.now()
        assert row.queued_runs == 2
    listed = cli("agent", "list", "-c", str(central.path))
    assert listed.code == 0, listed.err
    line = next(ln for ln in listed.out.splitlines() if ln.startswith("srv-acme"))
    assert line.split() == ["srv-acme", "acme-siege", "1.2.0", "Mon", "23/11/2026", "10:00",
                            "Mon", "23/11/2026", "11:00", "2", "enrolled"]


def _race(calls: list[Callable[[], object]]) -> list[object]:
    """Run ``calls`` at the same instant, each in its own thread; their results or errors."""
    barrier = threading.Barrier(len(calls))
    results: list[object] = [None] * len(calls)

    def one(i: int) -> None:
        barrier.wait()
        try:
            results[i] = calls[i]()
        except Exception as exc:  # the outcome, error or not, is what the test compares
            results[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


def test_two_agents_racing_with_one_token_cannot_both_enroll(
        tmp_path: Path, clock: FrozenClock, postgres_url: str) -> None:
    central = Central(tmp_path, clock, database=postgres_url)
    token = central.enrollment("acme-siege")
    outcomes = _race([
        lambda name=name: registry.enroll(central.sessions, token, name, "1.0.0", clock.now())
        for name in ("srv-a", "srv-b", "srv-c", "srv-d")])
    refused = [o for o in outcomes if isinstance(o, registry.EnrollmentRefused)]
    assert len(refused) == 3, outcomes
    with central.sessions() as session:
        assert len(session.scalars(select(AgentRow)).all()) == 1


def test_one_run_delivered_twice_at_the_same_moment_is_recorded_once(
        tmp_path: Path, clock: FrozenClock, postgres_url: str) -> None:
    central = Central(tmp_path, clock, database=postgres_url)
    acme = central.enroll("acme-siege", "srv-acme")
    run = a_run("202611222200-acme01", "acme", "erp-acme")
    answers = _race([lambda: central.web.post(f"{API}/runs", headers=acme, json=run)
                     for _ in range(4)])
    assert sorted(a.json()["recorded"] for a in answers) == [  # type: ignore[attr-defined]
        False, False, False, True]
    assert _runs(central) == 1
