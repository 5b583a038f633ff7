"""The wheel carries the PowerShell scripts, templates and migrations, and they are found
through importlib.resources once installed — not through a path into a checkout."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from orchestrator.resources import powershell_files, read_text, report_files
from tests.conftest import REPO


def test_every_subpackage_is_listed_in_pyproject() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    listed = set(pyproject["tool"]["setuptools"]["packages"])
    found = {
        ".".join(p.parent.relative_to(REPO).parts)
        for p in (REPO / "orchestrator").rglob("__init__.py")
    }
    assert found <= listed, f"add to pyproject.toml packages: {sorted(found - listed)}"


def test_packaged_folders_are_found_in_this_install() -> None:
    assert "one JSON object" in read_text(powershell_files(), "README.md")
    assert "fr/" in read_text(report_files(), "README.md")


@pytest.mark.slow
def test_wheel_contains_data_and_works_outside_the_checkout(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                    str(tmp_path / "dist"), str(REPO)], check=True)
    wheel = next((tmp_path / "dist").glob("hvbackup-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "orchestrator/powershell/README.md",
        "orchestrator/reports/README.md",
        "orchestrator/history/migrations/env.py",
        "orchestrator/history/migrations/script.py.mako",
        "orchestrator/history/migrations/versions/0001_initial_schema.py",
        "orchestrator/history/migrations/versions/0002_baie_usage_for_quotas.py",
        "orchestrator/history/migrations/versions/0003_api_tokens_and_run_requests.py",
        "orchestrator/history/migrations/versions/0004_acknowledge_alerts.py",
        "orchestrator/dashboard/templates/base.html",
        "orchestrator/powershell/onboarding/Initialize-HvbHost.ps1",
        "orchestrator/powershell/onboarding/Hvbackup.psrc",
        "orchestrator/service/hvbackup.service",
        "orchestrator/runbooks/fr/HVB-HOST-UNREACHABLE.md",
        "orchestrator/runbooks/en/HVB-HOST-UNREACHABLE.md",
    ):
        assert required in names, f"{required} missing from {wheel.name}"
    for ps1 in (REPO / "powershell").rglob("*.ps1"):
        assert f"orchestrator/powershell/{ps1.relative_to(REPO / 'powershell')}" in names
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel)],
                   check=True)
    probe = ("from orchestrator.resources import powershell_files, read_text; "
             "p = powershell_files(); print(p); print(read_text(p, 'README.md')[:12])")
    out = subprocess.run([str(python), "-c", probe], cwd=tmp_path, capture_output=True,
                         text=True, check=True).stdout
    assert str(venv) in out and str(REPO) not in out
    assert "# powershell" in out
