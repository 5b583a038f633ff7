"""``hvbackup agent token | list | revoke`` on the central server."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from orchestrator.agent.registry import sha256
from orchestrator.clock import FrozenClock
from orchestrator.history.models import AgentEnrollmentRow
from tests.dashboard.agents import API, Central


def test_a_token_is_printed_once_and_kept_hashed(cli, tmp_path: Path,
                                                 clock: FrozenClock) -> None:
    central = Central(tmp_path, clock)
    result = cli("agent", "token", "--site", "bobco-usine", "--hours", "4", "-c",
                 str(central.path))
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    # 09:00 UTC on Monday 23 November 2026, 4 hours later, in Paris.
    assert lines[0] == ("enrollment token for site bobco-usine, single use, valid until "
                        "Mon 23/11/2026 14:00 (shown once):")
    token = lines[1]
    assert token.startswith("hve_") and token not in lines[2]
    with central.sessions() as session:
        row = session.scalars(select(AgentEnrollmentRow)).one()
        assert (row.site, row.token_sha256, row.used_at) == ("bobco-usine", sha256(token), None)
    answer = central.web.post(f"{API}/enroll", json={"token": token, "name": "srv-bob",
                                                     "version": "1.0.0"})
    assert answer.status_code == 200 and answer.json()["site"] == "bobco-usine"


def test_a_token_for_an_unknown_site_is_refused(cli, tmp_path: Path,
                                                clock: FrozenClock) -> None:
    central = Central(tmp_path, clock)
    result = cli("agent", "token", "--site", "bobco-usin", "-c", str(central.path))
    assert result.code == 2
    assert "no site 'bobco-usin'" in result.err
    assert "did you mean 'bobco-usine'?" in result.err
    too_long = cli("agent", "token", "--site", "central", "--hours", "1000", "-c",
                   str(central.path))
    assert too_long.code == 2
    assert "--hours must be more than 0 and at most 168 (got 1000)" in too_long.err
    with central.sessions() as session:
        assert session.scalars(select(AgentEnrollmentRow)).all() == []


def test_list_and_revoke(cli, tmp_path: Path, clock: FrozenClock) -> None:
    central = Central(tmp_path, clock)
    empty = cli("agent", "list", "-c", str(central.path))
    assert "no agent enrolled" in empty.out
    central.enroll("acme-siege", "srv-acme")
    unknown = cli("agent", "revoke", "srv-acm", "-c", str(central.path))
    assert unknown.code == 2
    assert "no enrolled agent 'srv-acm'; did you mean 'srv-acme'?" in unknown.err
    assert cli("agent", "revoke", "srv-acme", "-c", str(central.path)).code == 0
    listed = cli("agent", "list", "-c", str(central.path)).out
    assert "revoked Mon 23/11/2026 10:00" in listed
    assert cli("agent", "revoke", "srv-acme", "-c", str(central.path)).code == 2
