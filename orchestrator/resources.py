"""Files shipped inside the package: PowerShell scripts and e-mail templates.

They live at the top of the repository (powershell/, reports/) and are installed as the
packages ``orchestrator.powershell`` and ``orchestrator.reports``; always reach them through
these functions, never through a path relative to a checkout.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable

from orchestrator.errors import HvbError


def powershell_files() -> Traversable:
    """The folder of host scripts."""
    return resources.files("orchestrator.powershell")


def report_files() -> Traversable:
    """The folder of e-mail templates (one subfolder per language)."""
    return resources.files("orchestrator.reports")


def service_files() -> Traversable:
    """The folder of service definitions (systemd units, WinSW)."""
    return resources.files("orchestrator.service")


def runbook_files() -> Traversable:
    """The runbooks, one folder per language (docs/runbooks in a checkout)."""
    return resources.files("orchestrator.runbooks")


def read_text(folder: Traversable, name: str) -> str:
    """The text of ``name`` inside ``folder``; raises HvbError naming what is missing."""
    item = folder
    for part in name.split("/"):
        item = item / part
    if not item.is_file():
        raise HvbError(f"packaged file {name!r} is missing from this installation of hvbackup; "
                       "reinstall the package")
    return item.read_text(encoding="utf-8")
