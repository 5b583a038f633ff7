"""`hvbackup inventory` against the simulated host, and its failures."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from orchestrator.hosts.scripts import load_script
from tests.config.base import BASE
from tests.conftest import write_config

SIMULATED = """\
    hosts:
      hv01:
        address: hv01.acme.local
        transport: simulated
        simulated: {seed: 3, vm_disk_mb: 2, share_files: 10%s}
"""


def _config(tmp_path: Path, faults: str = "") -> Path:
    start = BASE.index("    hosts:\n")
    end = BASE.index("    jobs:\n")
    text = BASE[:start] + SIMULATED % faults + BASE[end:]
    text = text.replace("database: sqlite:///var/h.db", f"state_dir: {tmp_path / 'state'}")
    return write_config(tmp_path, text)


def test_inventory_json_has_the_script_contract_shape(cli, tmp_path: Path) -> None:
    result = cli("inventory", "-c", str(_config(tmp_path)), "acme/hv01", "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    jsonschema.validate(data, load_script("Get-HvbInventory").schema)
    assert [vm["name"] for vm in data["vms"]] == ["DC01", "ERP01"]
    assert data["sql"][0]["instance"] == "SQL01\\COMPTA"


def test_inventory_table_shows_readiness_and_jobs(cli, tmp_path: Path) -> None:
    result = cli("inventory", "-c", str(_config(tmp_path)), "acme/hv01")
    assert result.code == 0, result.err
    erp = next(line for line in result.out.splitlines() if line.startswith("ERP01"))
    assert erp.split()[:3] == ["ERP01", "Running", "2"]
    assert erp.split()[-2:] == ["yes", "acme/erp"]
    assert "SQL Server SQL01\\COMPTA: Standard Edition" in result.out
    assert "D:      Data" in result.out


def test_inventory_shows_guest_vss_trouble_and_leftovers(cli, tmp_path: Path) -> None:
    faults = (", faults: [{kind: guest-vss-failure, target: ERP01}, "
              "{kind: leftover-checkpoint, target: DC01}]")
    result = cli("inventory", "-c", str(_config(tmp_path, faults)), "acme/hv01")
    assert result.code == 0, result.err
    erp = next(line for line in result.out.splitlines() if line.startswith("ERP01"))
    assert "guest VSS Error: application-consistent will fail" in erp
    assert "Left behind by earlier runs (the next run removes them):" in result.out
    assert "checkpoint 'hvbackup-crashed-" in result.out


def test_unreachable_host_exits_3_with_a_sentence(cli, tmp_path: Path) -> None:
    result = cli("inventory", "-c", str(_config(tmp_path, ", faults: [{kind: unreachable}]")),
                 "acme/hv01")
    assert result.code == 3
    assert "host acme/hv01 (simulated): cannot connect" in result.err
    assert "Traceback" not in result.err


def test_unknown_host(cli, tmp_path: Path) -> None:
    result = cli("inventory", "-c", str(_config(tmp_path)), "acme/hv09")
    assert result.code == 2
    assert "no host 'acme/hv09'" in result.err and "acme/hv01" in result.err


def test_winrm_host_without_its_password_variable(cli, tmp_path: Path) -> None:
    result = cli("inventory", "-c", str(write_config(tmp_path, BASE)), "acme/hv01")
    assert result.code == 2
    assert "environment variable ACME_WINRM_PASSWORD is not set" in result.err


def test_winrm_host_unreachable_is_reported_not_raised(cli, tmp_path: Path,
                                                        monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from tests.servers import free_port

    port = free_port()
    text = BASE.replace("address: hv01.acme.local", "address: 127.0.0.1").replace(
        "operation_timeout_s: 20}", f"operation_timeout_s: 5, read_timeout_s: 10, port: {port},"
                                    " connect_retries: 0}")
    monkeypatch.setenv("ACME_WINRM_PASSWORD", "not-used-S3cret")
    result = cli("inventory", "-c", str(write_config(tmp_path, text)), "acme/hv01")
    assert result.code == 3, result.err
    assert f"host acme/hv01 (127.0.0.1:{port}): cannot connect" in result.err
    assert "not-used-S3cret" not in result.err

