"""The service definitions: the systemd units pass `systemd-analyze verify` (unknown keys,
bad values, a missing executable all show there), are hardened, reload with SIGHUP and may
write only to the state directory and the local baies; the WinSW file is valid XML."""

from __future__ import annotations

import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from orchestrator.cli.service import unit_text
from tests.world import Setup


def _verify(path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is missing (Debian package systemd)")
    done = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr  # warnings (unknown keys...) are failures too


@pytest.mark.parametrize("dashboard", [False, True])
def test_units_verify_and_are_hardened(tmp_path: Path, dashboard: bool) -> None:
    s = Setup(tmp_path)
    executable = tmp_path / "bin" / "hvbackup"
    executable.parent.mkdir()
    executable.write_text("#!/bin/sh\n")
    executable.chmod(0o755)
    text = unit_text(s.config, dashboard, "hvbackup", str(executable))
    unit = tmp_path / ("hvbackup-dashboard.service" if dashboard else "hvbackup.service")
    unit.write_text(text)
    _verify(unit)
    for placeholder in ("@USER@", "@CONFIG@", "@EXEC@", "@WRITABLE@"):
        assert placeholder not in text
    for setting in ("NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes",
                    "PrivateTmp=yes", "CapabilityBoundingSet=\n", "SystemCallFilter=",
                    "UMask=0077", "Restart=on-failure"):
        assert setting in text
    writable = next(line for line in text.splitlines() if line.startswith("ReadWritePaths="))
    assert sorted(writable.split("=", 1)[1].split()) == sorted(
        f"-{p}" for p in (tmp_path / "state", tmp_path / "baie-a", tmp_path / "baie-b"))
    if dashboard:
        assert f"ExecStart={executable} serve --host 127.0.0.1" in text
    else:
        assert f"ExecStart={executable} run" in text
        assert "ExecReload=/bin/kill -HUP $MAINPID" in text
        assert "TimeoutStopSec=6h" in text  # running backups finish before the stop


def test_a_broken_unit_is_caught(tmp_path: Path) -> None:
    """The check above can fail: a misspelt key does."""
    s = Setup(tmp_path)
    text = unit_text(s.config, False, "hvbackup", "/bin/true").replace("ProtectClock=",
                                                                          "ProtectClocks=")
    unit = tmp_path / "hvbackup.service"
    unit.write_text(text)
    with pytest.raises(AssertionError, match="Unknown key 'ProtectClocks'"):
        _verify(unit)


def test_windows_service_definition(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    s = Setup(tmp_path)
    done = cli("service", "winsw", "-c", str(s.config))
    assert done.code == 0
    root = ET.fromstring(done.out)
    assert root.findtext("arguments") == "run"
    assert root.find("env").get("value") == str(s.config.resolve())  # type: ignore[union-attr]
    assert root.findtext("executable", "").endswith("hvbackup")


def _enrolled_agent(tmp_path: Path) -> Path:
    """An agent's state folder as 'hvbackup agent enroll' and its first cycle leave it: its
    state, its token and the site's part received from the server (ACME's site, whose two
    baies are local folders)."""
    from orchestrator.agent.runner import PART_FILE
    from orchestrator.agent.state import AgentState, save
    from orchestrator.config.load import load_config
    from tests.config.two_sites import write_two_sites

    central = load_config(write_two_sites(tmp_path / "central"))
    folder = tmp_path / "agent"
    save(folder, AgentState("https://central.msp.example", "acme-siege", "srv-acme", None),
         "hvb-agent-token")
    (folder / PART_FILE).write_text(json.dumps(central.site_part("acme-siege")),
                                    encoding="utf-8")
    return folder


def test_the_agent_unit_verifies_and_writes_only_its_folder_and_its_sites_baies(
        tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    folder = _enrolled_agent(tmp_path)
    done = cli("service", "unit", "--agent", "--state-dir", str(folder))
    assert done.code == 0, done.err
    unit = tmp_path / "hvbackup-agent.service"
    unit.write_text(done.out + "\n")
    executable = next(line for line in done.out.splitlines() if line.startswith("ExecStart="))
    assert executable.endswith(f" agent run --state-dir {folder}")
    _verify_with(unit, executable.split("=", 1)[1].split()[0], tmp_path)
    writable = next(line for line in done.out.splitlines()
                    if line.startswith("ReadWritePaths="))
    # ACME's site copies to baie-acme-1 and -2; the central site's baie is not the agent's.
    assert sorted(writable.split("=", 1)[1].split()) == sorted(
        f"-{p}" for p in (str(folder), "/srv/acme-1", "/srv/acme-2"))
    for setting in ("NoNewPrivileges=yes", "ProtectSystem=strict", "UMask=0077",
                    "TimeoutStopSec=6h", "Restart=on-failure"):
        assert setting in done.out
    assert "HVBACKUP_CONFIG" not in done.out and "@" not in done.out.replace("@system", "")


def _verify_with(unit: Path, executable: str, tmp_path: Path) -> None:
    """systemd-analyze wants the executable to exist: a stand-in at the same path when the
    installed one is elsewhere (a virtual environment)."""
    if not Path(executable).exists():
        stand_in = tmp_path / "bin" / "hvbackup"
        stand_in.parent.mkdir(exist_ok=True)
        stand_in.write_text("#!/bin/sh\n")
        stand_in.chmod(0o755)
        unit.write_text(unit.read_text().replace(executable, str(stand_in)))
    _verify(unit)


def test_the_agent_windows_service_runs_the_agent_of_its_folder(
        tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    folder = _enrolled_agent(tmp_path)
    done = cli("service", "winsw", "--agent", "--state-dir", str(folder))
    assert done.code == 0, done.err
    root = ET.fromstring(done.out)
    assert root.findtext("id") == "hvbackup-agent"
    assert root.findtext("arguments") == f'agent run --state-dir "{folder}"'
    assert root.find("env") is None  # no configuration file: it comes from the server


def test_an_agent_service_before_enrollment_or_with_a_configuration_is_refused(
        tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    s = Setup(tmp_path)
    early = cli("service", "unit", "--agent", "--state-dir", str(tmp_path / "nothing"))
    assert early.code == 2
    assert f"no agent is enrolled in {tmp_path / 'nothing'}" in early.err
    assert "hvbackup agent enroll" in early.err
    both = cli("service", "winsw", "--agent", "-c", str(s.config))
    assert both.code == 2 and "--agent takes no -c" in both.err
    neither = cli("service", "unit")
    assert neither.code == 2 and "-c FILE" in neither.err
