"""validate warns about host settings that fail on a real host the first time: the onboarded
account without its JEA endpoint, and a SQL job whose instance lives on another machine than
its host (the WinRM identity cannot make the second hop)."""

from __future__ import annotations

from pathlib import Path

from orchestrator.config.load import load_config
from tests.config.base import BASE, mutate
from tests.conftest import write_config


def _warnings(tmp_path: Path, text: str) -> str:
    return "\n".join(str(w) for w in load_config(write_config(tmp_path, text)).warnings)


def test_the_onboarded_account_without_the_endpoint_is_warned(tmp_path: Path) -> None:
    onboarded = mutate("username: 'ACME\\svc'", "username: 'HV01\\hvbackup'")
    said = _warnings(tmp_path, onboarded)
    assert "clients.acme.hosts.hv01.winrm.username: the account Initialize-HvbHost.ps1" in said
    with_endpoint = mutate("username: 'HV01\\hvbackup'",
                           "username: 'HV01\\hvbackup', configuration_name: hvbackup", onboarded)
    # Through the endpoint a VM job must export (docs/lab/shares.md; an error otherwise).
    with_endpoint = mutate("vms: [ERP01, DC01]\n", "vms: [ERP01, DC01]\n        mode: export\n",
                           with_endpoint)
    assert "Initialize-HvbHost" not in _warnings(tmp_path, with_endpoint)


def test_a_sql_instance_on_another_machine_is_a_double_hop(tmp_path: Path) -> None:
    said = _warnings(tmp_path, BASE)  # SQL01\COMPTA through hv01
    assert "clients.acme.jobs.compta.instance: the instance runs on SQL01, not on host 'hv01'" \
        in said
    local = mutate("instance: 'SQL01\\COMPTA'", "instance: 'HV01\\COMPTA'")
    assert "second machine" not in _warnings(tmp_path, local)
