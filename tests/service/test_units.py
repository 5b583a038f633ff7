"""The service definitions: the systemd units pass `systemd-analyze verify` (unknown keys,
bad values, a missing executable all show there), are hardened, reload with SIGHUP and may
write only to the state directory and the local baies; the WinSW file is valid XML."""

from __future__ import annotations

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
