"""A site's agent cut off from the server all night: the server records its job NON EXECUTEE
after the window and the client's morning report says so; when the agent reaches the server
again, the run it did make replaces the missed record, and the client gets a "Complément"
saying the backup did happen."""

from __future__ import annotations

import email
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

from sqlalchemy import select

from orchestrator.clock import FrozenClock
from orchestrator.history.models import EmailRow, JobRow, RunEventRow, RunRow
from orchestrator.jobs.context import RunContext
from orchestrator.jobs.daemon import Daemon
from tests.agent.served import serve_tls
from tests.agent.test_agent_run import agent_run, central_of, enroll
from tests.servers import free_port

NBSP, NNBSP = "\u00a0", "\u202f"


def _mail(row: EmailRow) -> EmailMessage:
    assert row.outbox_path is not None
    message = email.message_from_bytes(Path(row.outbox_path).read_bytes(), policy=default)
    assert isinstance(message, EmailMessage)
    return message


def _text(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())  # type: ignore[attr-defined]


def _digests(central: RunContext) -> list[EmailRow]:
    with central.sessions() as session:
        return list(session.scalars(select(EmailRow).where(
            EmailRow.kind.in_(["digest", "digest_update"])).order_by(EmailRow.id)))


def test_a_run_delivered_after_its_night_was_reported_missed_replaces_it_with_a_complement(
        cli, tmp_path: Path, clock: FrozenClock) -> None:  # type: ignore[no-untyped-def]
    central = central_of(tmp_path, clock)
    ctx = RunContext(central.loaded, clock, central.sessions)
    daemon = Daemon(ctx)
    folder = tmp_path / "agent"
    port = free_port()
    with serve_tls(central.app, tmp_path, port) as (url, ca):
        enroll(cli, central, url, ca, folder)
        assert agent_run(folder, "2026-11-23T20:00:00+00:00").code == 0
    # 22:05 in Paris, the server out of reach: the agent backs up, the run waits.
    assert agent_run(folder, "2026-11-23T21:05:00+00:00").code == 8

    clock.set(datetime(2026, 11, 24, 6, 1, tzinfo=UTC))  # 07:01: the windows are over
    daemon.tick()
    daemon.wait_idle()
    [first] = _digests(ctx)
    assert _mail(first)["Subject"] == ("[NON EXECUTEE] ACME SARL — sauvegardes du 23/11/2026 "
                                       "— 2 non exécutées")

    clock.set(datetime(2026, 11, 24, 8, 0, tzinfo=UTC))
    with serve_tls(central.app, tmp_path, port):
        back = agent_run(folder, "2026-11-24T08:00:00+00:00")
        assert back.code == 0, back.err + back.out
        assert "1 run(s) delivered" in back.out
        again = agent_run(folder, "2026-11-24T08:02:00+00:00")
        assert again.code == 0 and "delivered" not in again.out.replace("0 run(s) delivered",
                                                                        "")
    with central.sessions() as session:
        [run] = session.scalars(select(RunRow).join(JobRow).where(JobRow.key == "partages"))
        lines = session.scalars(select(RunEventRow.message)
                                .where(RunEventRow.run_id == run.id)).all()
    assert (run.status, run.claimed_by) == ("REUSSIE", "agent:srv-acme")
    assert run.replaced_at is not None and run.started_at is not None
    assert run.scheduled_for.replace(tzinfo=UTC) == datetime(2026, 11, 23, 21, 0, tzinfo=UTC)
    assert any("replaces the NON EXECUTEE the server recorded at 2026-11-24 06:01" in line
               for line in lines)
    assert not any("did not start before the end of its window" in line for line in lines)

    clock.set(datetime(2026, 11, 24, 8, 1, tzinfo=UTC))
    daemon.tick()
    daemon.wait_idle()
    _first, complement = _digests(ctx)
    assert complement.kind == "digest_update"
    message = _mail(complement)
    assert message["Subject"] == ("Complément — [NON EXECUTEE] ACME SARL — sauvegardes du "
                                  "23/11/2026 — 1 réussie, 1 non exécutée")
    text = _text(message)
    assert (f"Complément au compte rendu du 23/11/2026{NBSP}: une sauvegarde annoncée NON "
            f"EXECUTEE a bien eu lieu sur votre site{NNBSP}; son résultat vient seulement de "
            "nous parvenir. Voici le résultat définitif.") in text
    html = message.get_body(("html",))
    assert html is not None and "a bien eu lieu sur votre site" in str(
        html.get_content())  # type: ignore[attr-defined]
    daemon.tick()
    assert len(_digests(ctx)) == 2  # told once
