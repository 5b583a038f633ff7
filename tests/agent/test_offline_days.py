"""An agent cut from the server for three nights keeps backing up its site every night and,
once the server answers again, delivers each of those runs exactly once."""

from __future__ import annotations

from pathlib import Path

from tests.agent.served import serve_tls
from tests.agent.test_agent_run import agent_run, central_of, enroll, runs
from tests.servers import free_port


def test_three_nights_offline_then_every_run_arrives_once(cli, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                          clock) -> None:
    central = central_of(tmp_path, clock)
    folder = tmp_path / "agent"
    port = free_port()
    with serve_tls(central.app, tmp_path, port) as (url, ca):
        enroll(cli, central, url, ca, folder)
        assert agent_run(folder, "2026-11-23T20:00:00+00:00").code == 0
    for night, day in enumerate(("23", "24", "25"), start=1):  # 22:05 in Paris, server down
        down = agent_run(folder, f"2026-11-{day}T21:05:00+00:00")
        assert down.code == 8, down.err
        assert f"{night} waiting in the spool" in down.out, down.out
    assert runs(central) == []
    with serve_tls(central.app, tmp_path, port):
        back = agent_run(folder, "2026-11-26T07:00:00+00:00")
        assert back.code == 0, back.err
        assert "3 run(s) delivered" in back.out and "0 waiting" in back.out
        again = agent_run(folder, "2026-11-26T07:05:00+00:00")
        assert again.code == 0, again.err
        assert "0 run(s), 0 waiting" in again.out  # nothing left, nothing sent twice
    delivered = runs(central)
    assert [(r.scheduled_for.day, r.status) for r in delivered] == [
        (23, "REUSSIE"), (24, "REUSSIE"), (25, "REUSSIE")]
    assert len({r.uid for r in delivered}) == 3
