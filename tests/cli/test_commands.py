"""The hvbackup commands as a technician runs them."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from orchestrator.cli.main import COMMANDS, build_parser
from orchestrator.history.db import head_revision, open_engine, session_factory
from orchestrator.history.models import AuditRow, ClientRow, JobRow
from tests.config.base import BASE
from tests.conftest import REPO, write_config

EXAMPLE = str(REPO / "config" / "example.yaml")


def test_validate_prints_the_summary(cli) -> None:
    result = cli("validate", "-c", EXAMPLE)
    assert result.code == 0, result.err
    assert "valid — 3 clients, 7 hosts, 8 jobs, 2 baies" in result.out
    lines = result.out.splitlines()
    erp = next(ln for ln in lines if ln.startswith("acme/erp "))
    # The frozen clock is Monday 23/11/2026 10:00 in Paris: next run is tonight.
    assert erp.split() == ["acme/erp", "hyperv-vm", "hv01", "daily", "22:00", "Mon",
                           "23/11/2026", "22:00", "paris-1,", "paris-2"]
    juris = next(ln for ln in lines if ln.startswith("cabinet-durand/juris-sql"))
    assert "Tue 24/11/2026 01:00" in juris
    assert "warning(s):" in result.out


def test_config_from_environment(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HVBACKUP_CONFIG", EXAMPLE)
    assert cli("validate", "-q").code == 0


def test_no_config_is_a_usage_error(cli) -> None:
    result = cli("validate")
    assert result.code == 2
    assert "no configuration file: pass -c FILE or set HVBACKUP_CONFIG" in result.err


def test_plan_lists_runs_and_restore_points(cli) -> None:
    result = cli("plan", "-c", EXAMPLE, "--days", "7")
    assert result.code == 0, result.err
    text = result.out
    assert "times in Europe/Paris" in text
    block = text.split("acme/erp:")[1].split("\n\n")[0]
    assert "7 run(s):\n    Mon 23/11/2026 22:00, Tue 24/11/2026 22:00" in block
    assert "retention 30 days rolling: 30 restore points" in block
    partages = text.split("acme/partages:")[1].split("\n\n")[0]
    assert "5 run(s)" in partages  # weekdays only
    durand = text.split("cabinet-durand/serveurs:")[1].split("\n\n")[0]
    assert "30 daily, 12 monthly: 40 restore points, the oldest 11 months old" in durand


def test_plan_rejects_silly_days(cli) -> None:
    result = cli("plan", "-c", EXAMPLE, "--days", "0")
    assert result.code == 2
    assert "--days must be between 1 and 366" in result.err


def test_every_command_has_help(cli) -> None:
    assert cli("--help").code == 0
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    names = list(subparsers.choices)  # type: ignore[union-attr]
    assert len(names) == len(COMMANDS)
    for name in names:
        result = cli(name, "--help")
        assert result.code == 0
        assert "usage: hvbackup " + name in result.out
    assert "usage: hvbackup db upgrade" in cli("db", "upgrade", "--help").out


def _config_with_db(tmp_path: Path, url: str, text: str = BASE) -> Path:
    return write_config(tmp_path, text.replace("sqlite:///var/h.db", url))


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_db_upgrade_twice_records_clients_and_jobs(cli, tmp_path: Path, backend: str,
                                                   request: pytest.FixtureRequest) -> None:
    url = (f"sqlite:///{tmp_path / 'state' / 'h.db'}" if backend == "sqlite"
           else request.getfixturevalue("postgres_url"))
    config = _config_with_db(tmp_path, url)
    first = cli("db", "upgrade", "-c", str(config))
    assert first.code == 0, first.err
    assert f"schema created (revision {head_revision()})" in first.out
    assert "clients: 1 (1 new), jobs: 3 (3 new)" in first.out
    second = cli("db", "upgrade", "-c", str(config))
    assert second.code == 0, second.err
    assert f"schema already current (revision {head_revision()})" in second.out
    assert "clients: 1 (0 new), jobs: 3 (0 new)" in second.out
    engine = open_engine(url)
    with session_factory(engine)() as session:
        assert [c.key for c in session.scalars(select(ClientRow))] == ["acme"]
        jobs = {j.key: j for j in session.scalars(select(JobRow))}
        assert set(jobs) == {"erp", "compta", "partages"}
        assert jobs["erp"].objects == ["ERP01", "DC01"]
        assert jobs["erp"].copies == ["site-a", "site-b"]
        audits = list(session.scalars(select(AuditRow)))
        assert len(audits) == 1 and audits[0].action == "config.sync"
        assert audits[0].actor.startswith("cli:")
    engine.dispose()


def test_removed_job_is_kept_inactive(cli, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    assert cli("db", "upgrade", "-c", str(_config_with_db(tmp_path, url))).code == 0
    text = BASE[: BASE.index("      partages:")]  # the last job, removed
    result = cli("db", "upgrade", "-c", str(_config_with_db(tmp_path, url, text)))
    assert result.code == 0, result.err
    assert "no longer in the configuration, kept as inactive: acme/partages" in result.out
    engine = open_engine(url)
    with session_factory(engine)() as session:
        partages = session.scalars(select(JobRow).where(JobRow.key == "partages")).one()
        assert partages.active is False
    engine.dispose()


def test_db_upgrade_on_unreachable_server_exits_6(cli, tmp_path: Path) -> None:
    config = _config_with_db(tmp_path, "postgresql+psycopg://hvb@127.0.0.1:1/none")
    result = cli("db", "upgrade", "-c", str(config))
    assert result.code == 6
    assert "history database postgresql+psycopg://hvb@127.0.0.1:1/none" in result.err
    assert "Traceback" not in result.err


def test_the_installed_console_script_runs(tmp_path: Path) -> None:
    import shutil
    import subprocess

    exe = shutil.which("hvbackup") or str(Path(__import__("sys").executable).parent / "hvbackup")
    out = subprocess.run([exe, "validate", "-c", EXAMPLE, "-q"], capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0, out.stderr
    bad = write_config(tmp_path, "version: 1\nmsp: []\n")
    out = subprocess.run([exe, "validate", "-c", str(bad)], capture_output=True, text=True,
                         check=False)
    assert out.returncode == 2
    assert f"{bad}:2: msp: expected a mapping of keys" in out.stderr
