"""Contracts that move a client up a tier instead of stopping its backups (next_tier), the one
grace end date every notice shows, a forecast that says nothing rather than noise, and the
monthly usage the MSP invoices from."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from orchestrator.history.models import AlertRow, AuditRow, BaieUsageRow, ClientRow, JobRow, RunRow
from orchestrator.history.sync import sync_config
from orchestrator.jobs.quota import (
    TierMove,
    client_state,
    effective_quota,
    evaluate,
    first_of_next_month,
    next_tier,
)
from orchestrator.jobs.usage import month_usage, to_csv
from orchestrator.report.hotline import send_alerts
from tests.world import Setup

GB = 1_000_000_000
T0 = datetime(2026, 11, 1, 21, 0, tzinfo=UTC)


def day(n: int) -> datetime:
    return T0 + timedelta(days=n)


def test_a_next_tier_client_is_due_a_tier_where_a_block_client_is_blocked() -> None:
    points = [(day(i), 112 * GB) for i in range(41)]  # 12 % over for 40 days
    assert evaluate(points[:30], 100 * GB, day(29), "next_tier").status == "warning"
    assert evaluate(points, 100 * GB, day(30), "next_tier").status == "tier_due"
    assert evaluate(points, 100 * GB, day(30), "block").status == "blocked"
    state = evaluate(points[:1], 100 * GB, day(0), "block")
    assert state.grace_ends == day(30)


def test_tiers_and_moves() -> None:
    tiers = [100 * GB, 250 * GB, 500 * GB]
    assert next_tier(112 * GB, tiers) == 250 * GB
    assert next_tier(260 * GB, tiers) == 500 * GB
    assert next_tier(900 * GB, tiers) == 500 * GB  # the largest: the hotline decides
    up = TierMove(day(30), date(2026, 12, 1), 100 * GB, 250 * GB, 112 * GB)
    again = TierMove(day(80), date(2027, 2, 1), 250 * GB, 500 * GB, 280 * GB)
    assert effective_quota(100 * GB, [again, up]) == 500 * GB
    assert effective_quota(1000 * GB, [up, again]) == 1000 * GB  # set by hand since: it rules
    assert first_of_next_month(date(2026, 12, 23)) == date(2027, 1, 1)


def test_the_forecast_is_a_day_within_a_year_or_nothing() -> None:
    steady = [(day(i), (50 + i) * GB) for i in range(10)]  # +1 GB a day, 59 GB now
    assert evaluate(steady, 100 * GB, day(9)).forecast == (day(9) + timedelta(days=41)).date()
    assert evaluate(steady[:3], 100 * GB, day(2)).forecast is None  # too few points
    creeping = [(day(i), 50 * GB + i * 1_000_000) for i in range(10)]  # 1 MB a day
    assert evaluate(creeping, 100 * GB, day(9)).forecast is None  # decades away: noise


@pytest.fixture
def tiered(tmp_path: Path) -> Setup:
    """ACME on a next_tier contract, its first night measured 12 % over its tier; tiers of
    ratio 2.5, as 100, 250, 500 GB."""
    # Disks that change little: what the baie holds grows by a few % in 40 nights.
    s = Setup(tmp_path, simulated="seed: 4, vm_disk_mb: 16, share_files: 30, "
                                  "daily_change_percent: 0.01")
    s.run("erp")
    with s.sessions() as session:
        used = max(session.scalars(select(BaieUsageRow.bytes_stored)))
    tier = used / 1.12 / GB
    s.config.write_text(s.config.read_text().replace(
        "  hotline: [hotline@msp.example]",
        f"  hotline: [hotline@msp.example]\n  volume_tiers_gb: [{tier:.9f}, {2.5 * tier:.9f}, "
        f"{5 * tier:.9f}]").replace(
        "    contacts: [it@acme.example]",
        f"    contacts: [it@acme.example]\n    quota_gb: {tier:.9f}\n"
        "    quota: {on_overrun: next_tier}"))
    s.reload()
    with s.sessions() as session, session.begin():
        sync_config(session, s.loaded, s.clock.now(), "test")
    return s


def _quota_mails(root: Path) -> list[email.message.EmailMessage]:
    found = []
    for path in sorted((root / "state" / "outbox").glob("*-acme-quota.eml")):
        found.append(email.message_from_bytes(path.read_bytes(), policy=email.policy.default))
    return found  # type: ignore[return-value]


def test_forty_nights_twelve_percent_over_move_up_one_tier_and_are_invoiced(
        tiered: Setup, tmp_path: Path) -> None:
    s = tiered
    first_quota = client_state(s.sessions, s.loaded, "acme", s.clock.now()).quota
    assert first_quota is not None
    statuses = []
    # A backup every five nights, 23/11 → 02/01 (December holds the move): what the baie
    # holds stays between 12 % and 60 % over the first tier.
    for _night in range(5, 41, 5):
        s.clock.advance(timedelta(days=5))
        statuses.append(s.run("erp").status)
        send_alerts(s.loaded, s.sessions, s.clock.now(), send_it=False)
    assert set(statuses) == {"REUSSIE"}  # backups never stop for volume
    with s.sessions() as session:
        audits = list(session.scalars(select(AuditRow).where(AuditRow.action == "quota.tier")))
        alerts = [a.kind for a in session.scalars(select(AlertRow).order_by(AlertRow.id))]
    [move] = audits  # exactly one tier up
    assert move.at == datetime(2026, 12, 23, 21, 0, tzinfo=UTC)  # 30 days after the warning
    assert move.details["to"] == pytest.approx(2.5 * first_quota, rel=1e-6)  # the next one
    assert move.details["billed_from"] == "2027-01-01"
    assert alerts == ["quota_warning", "quota_tier"]
    state = client_state(s.sessions, s.loaded, "acme", s.clock.now())
    assert state.quota == move.details["to"] and state.status == "ok"
    warning, moved = _quota_mails(tmp_path)
    told = warning.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Vous avez jusqu'au 23/12/2026 pour réduire ce qui est sauvegardé" in told
    assert "Vos sauvegardes continuent normalement." in told
    text = moved.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "passe à la tranche de" in text and "facturée à partir du 01/01/2027" in text
    assert "nouvelle tranche de volume souscrit" in moved["Subject"]

    # The month's usage, for invoicing, matches the history, with a second client.
    with s.sessions() as session, session.begin():  # a second client, straight into the history
        durand = ClientRow(key="durand", name="DURAND SA", language="fr", quota_bytes=50 * GB)
        session.add(durand)
        session.flush()
        job = JobRow(client_id=durand.id, key="serveurs", type="hyperv-vm", host="hyperv1",
                     schedule="daily 23:00", window_hours=8, copies=["site-a"])
        session.add(job)
        session.flush()
        for n, (value, status) in enumerate([(40, "REUSSIE"), (55, "ECHEC"), (45, "REUSSIE")]):
            when = datetime(2026, 12, 10 + n, 22, tzinfo=UTC)
            session.add(BaieUsageRow(client_id=durand.id, baie="site-a", measured_at=when,
                                     bytes_stored=value * GB))
            session.add(RunRow(uid=f"202612{10 + n}2200-d0d0d{n}", job_id=job.id,
                               scheduled_for=when, state="finished", status=status))
    tz = s.loaded.config.msp.timezone
    with s.sessions() as session:
        december = {u.client: u for u in month_usage(session, date(2026, 12, 1), tz)}
        measured = {b: [v for (bb, t, v) in session.execute(select(
            BaieUsageRow.baie, BaieUsageRow.measured_at, BaieUsageRow.bytes_stored).join(
            ClientRow).where(ClientRow.key == "acme")).all()
            if bb == b and t.astimezone(tz).month == 12] for b in ("site-a", "site-b")}
    acme = december["acme"]
    assert acme.subscribed_end == pytest.approx(2.5 * acme.subscribed_start, rel=1e-6)  # type: ignore[operator]
    assert [m.billed_from for m in acme.tier_moves] == [date(2027, 1, 1)]
    for baie in acme.baies:
        assert baie.peak_bytes == max(measured[baie.baie])
        assert baie.end_bytes == measured[baie.baie][-1]
    assert acme.runs["REUSSIE"] == 6  # 03, 08, 13, 18, 23 and 28/12
    with s.sessions() as session:
        november = {u.client: u for u in month_usage(session, date(2026, 11, 1), tz)}
    assert november["acme"].tier_moves == [] and november["acme"].runs["REUSSIE"] == 2
    d = december["durand"]
    assert [(b.baie, b.peak_bytes, b.end_bytes) for b in d.baies] == [
        ("site-a", 55 * GB, 45 * GB)]
    assert (d.runs["REUSSIE"], d.runs["ECHEC"], d.subscribed_end) == (2, 1, 50 * GB)
    csv_text = to_csv(list(december.values()), date(2026, 12, 1))
    assert "2026-12,durand,DURAND SA,50.000,50.000,,site-a,55.000,45.000,2,0,1,0" in csv_text


def test_a_block_client_is_told_the_same_date_it_is_stopped_on(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    s.config.write_text(s.config.read_text().replace(
        "    contacts: [it@acme.example]", "    contacts: [it@acme.example]\n    quota_gb: 0.001"))
    s.reload()
    s.run("erp")
    s.clock.advance(timedelta(days=2))  # the notice goes out two days later
    send_alerts(s.loaded, s.sessions, s.clock.now(), send_it=False)
    [notice] = _quota_mails(tmp_path)
    body = notice.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "sans changement d'ici le 23/12/2026" in body  # not two days later
    with s.sessions() as session:
        [alert] = session.scalars(select(AlertRow))
    assert "backups stop on 23/12/2026" in alert.message
    s.clock.advance(timedelta(days=27, hours=23))
    assert s.run("partages").status == "REUSSIE"  # 22/12: still within the 30 days
    s.clock.advance(timedelta(days=1))
    assert s.run("partages").status == "ECHEC"  # 23/12: stopped, as announced
    assert s.run("erp").status == "ECHEC"
    send_alerts(s.loaded, s.sessions, s.clock.now(), send_it=False)
    _warned, stopped = _quota_mails(tmp_path)  # told once that it is stopped, and why
    body = stopped.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "les nouvelles sauvegardes sont arrêtées" in body
    with s.sessions() as session:
        open_alerts = [a.kind for a in session.scalars(select(AlertRow).where(
            AlertRow.resolved_at.is_(None)))]
    assert open_alerts.count("quota_blocked") == 1 and "quota_warning" not in open_alerts


def test_a_client_still_over_is_reminded_once_a_week_before_the_date(tmp_path: Path) -> None:
    from orchestrator.report.hotline import remind_quota

    s = Setup(tmp_path)
    s.config.write_text(s.config.read_text().replace(
        "    contacts: [it@acme.example]", "    contacts: [it@acme.example]\n    quota_gb: 0.001"))
    s.reload()
    s.run("erp")  # 23/11 21:00: over, the 30 days end on 23/12
    send_alerts(s.loaded, s.sessions, s.clock.now(), send_it=False)
    s.clock.advance(timedelta(days=22, hours=23))  # 16/12 20:00: eight days left
    assert remind_quota(s.loaded, s.sessions, s.clock.now(), send_it=False) == 0
    s.clock.advance(timedelta(hours=2))  # 16/12 22:00: within the last week
    assert remind_quota(s.loaded, s.sessions, s.clock.now(), send_it=False) == 1
    assert remind_quota(s.loaded, s.sessions, s.clock.now(), send_it=False) == 0  # once
    notice, reminder = _quota_mails(tmp_path)
    assert "rappel : volume de sauvegarde dépassé, échéance le 23/12/2026" in reminder["Subject"]
    body = reminder.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Rappel\u00a0: il reste 7\u00a0jours avant le 23/12/2026." in body
    assert "Sans changement d'ici le 23/12/2026, les nouvelles sauvegardes s'arrêteront." \
        in body  # the same date as the notice
    assert "30 jours pour agir" not in body  # a week is left, not thirty days
    assert "sans changement d'ici le 23/12/2026" in notice.get_body(  # type: ignore[union-attr]
        ("plain",)).get_content()


def test_a_blocked_clients_report_says_what_it_can_do(tmp_path: Path) -> None:
    """Stopped for volume: the ECHEC report tells the client it is its move (raise the volume
    or back up less), not that the hotline handles it."""
    from orchestrator.report.digest import send_digest

    s = Setup(tmp_path)
    s.config.write_text(s.config.read_text().replace(
        "    contacts: [it@acme.example]", "    contacts: [it@acme.example]\n    quota_gb: 0.001"))
    s.reload()
    s.run("erp")
    s.clock.advance(timedelta(days=30, hours=1))
    assert s.run("partages").status == "ECHEC"
    send_digest(s.loaded, s.sessions, "acme", s.clock.now().date(), s.clock.now(),
                send_it=False)
    [path] = sorted((tmp_path / "state" / "outbox").glob("*acme-digest*.eml"))
    mail = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
    for part in (text, html):
        assert "les nouvelles sauvegardes sont arrêtées car le volume souscrit est dépassé" \
            in part.replace("\u00a0", " ").replace("\u202f", " ")
        assert "notre hotline est prévenue et revient vers vous" not in part
