"""Quotas: the rule (pure), then a client that fills its subscribed volume."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from orchestrator.history.models import AlertRow
from orchestrator.jobs.quota import evaluate
from tests.world import Setup

T0 = datetime(2026, 11, 1, tzinfo=UTC)
GB = 1_000_000_000


def day(n: int) -> datetime:
    return T0 + timedelta(days=n)


def test_under_quota_with_a_forecast() -> None:
    points = [(day(i), (50 + i) * GB) for i in range(10)]  # +1 GB a day, 59 GB now
    state = evaluate(points, 100 * GB, day(9))
    assert state.status == "ok"
    assert state.forecast is not None and abs((state.forecast - day(50).date()).days) <= 1


def test_over_is_noted_ten_percent_over_warns_then_blocks_after_thirty_days() -> None:
    assert evaluate([(day(0), 105 * GB)], 100 * GB, day(0)).status == "over"
    warned = evaluate([(day(0), 105 * GB), (day(1), 111 * GB)], 100 * GB, day(1))
    assert (warned.status, warned.warned_since) == ("warning", day(1))
    still = [(day(0), 105 * GB), (day(1), 111 * GB), (day(20), 104 * GB)]
    assert evaluate(still, 100 * GB, day(30)).status == "warning"
    assert evaluate([*still, (day(31), 104 * GB)], 100 * GB, day(31)).status == "blocked"


def test_going_back_under_resets_the_grace() -> None:
    points = [(day(0), 111 * GB), (day(10), 90 * GB), (day(35), 112 * GB)]
    state = evaluate(points, 100 * GB, day(35))
    assert (state.status, state.warned_since) == ("warning", day(35))


def test_no_quota() -> None:
    assert evaluate([(day(0), 5 * GB)], None, day(0)).status == "none"


def test_a_client_over_its_volume_is_told_then_stopped(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    s = Setup(tmp_path)
    text = s.config.read_text().replace("    contacts: [it@acme.example]",
                                        "    contacts: [it@acme.example]\n    quota_gb: 0.001")
    s.config.write_text(text)
    s.reload()
    first = s.run("erp")  # 8 MB of disks: far over 1 MB
    assert first.status == "REUSSIE", first
    with s.sessions() as session:
        alerts = [(a.kind, a.message) for a in session.scalars(select(AlertRow))]
    assert alerts and alerts[0][0] == "quota_warning"
    assert "backups stop on 23/12/2026 unless the volume is raised" in alerts[0][1]
    from orchestrator.report.hotline import send_alerts

    assert send_alerts(s.loaded, s.sessions, s.clock.now(), send_it=False) == 1
    import email
    from email import policy

    raw = next((tmp_path / "state" / "outbox").glob("*-acme-quota.eml")).read_bytes()
    notice = email.message_from_bytes(raw, policy=policy.default)
    assert notice["To"] == "it@acme.example"
    body = notice.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Vous avez 30\u00a0jours pour agir\u00a0: sans changement d'ici le 23/12/2026" in body
    shown = cli("quota", "-c", str(s.config))
    assert "10 % OVER: client told, 30 days to act" in shown.out
    s.clock.advance(timedelta(days=31))
    stopped = s.run("partages")
    assert stopped.status == "ECHEC"
    assert (stopped.headline.kind, stopped.headline.code) == ("run_failed", "HVB-QUOTA")
    assert stopped.headline.message.startswith("quota dépassé: acme uses")
