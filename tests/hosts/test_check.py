"""`hvbackup host check` against the simulated host: ready when all is there, and a clear
verdict for each injected fault (the trial catches what only a backup would)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.world import Setup


def _check(cli, s: Setup, *extra: str):  # type: ignore[no-untyped-def]
    done = cli("host", "check", "-c", str(s.config), "acme/hv01", *extra)
    return done, done.out, done.out.splitlines()


def test_a_ready_host(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    done, out, _ = _check(cli, Setup(tmp_path))
    assert done.code == 0, out
    assert out.splitlines()[-1] == "acme/hv01: ready"
    assert "VM ERP01" in out and "VSS integration service healthy" in out
    assert "SQL01\\COMPTA" in out and "database(s) visible" in out
    assert "FAIL" not in out


def test_unreachable_host(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    done, out, _ = _check(cli, Setup(tmp_path, faults="{kind: unreachable}"))
    assert done.code == 1
    assert "FAIL" in out and "Initialize-HvbHost.ps1" in out and "5986" in out
    assert out.splitlines()[-1] == "acme/hv01: NOT READY"


@pytest.mark.parametrize(("consistency", "level", "code"),
                         [("application", "FAIL", 1), ("application-or-crash", "warning", 0)])
def test_guest_vss_broken(tmp_path: Path, cli, consistency: str, level: str,  # type: ignore[no-untyped-def]
                          code: int) -> None:
    s = Setup(tmp_path, faults="{kind: guest-vss-failure, target: ERP01}",
              consistency=consistency)
    done, out, _ = _check(cli, s)
    assert done.code == code
    [line] = [x for x in out.splitlines() if "VM ERP01" in x]
    assert line.startswith(level)
    dc01 = next(x for x in out.splitlines() if "VM DC01" in x)
    assert dc01.startswith("ok")  # the fault hits ERP01 only


def test_staging_full(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    done, out, _ = _check(cli, Setup(tmp_path, faults="{kind: staging-full}"))
    assert done.code == 1
    [line] = [x for x in out.splitlines() if " staging " in x]
    assert line.startswith("FAIL") and "D: has 0 B free" in line and "staging_dir" in line


def test_compression_asked_of_an_edition_without_it(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    s = Setup(tmp_path, simulated="seed: 4, vm_disk_mb: 4, share_files: 30, "
                                  "sql_edition: express",
              sql="\n        backup_compression: true")
    done, out, _ = _check(cli, s)
    assert done.code == 0, out
    [line] = [x for x in out.splitlines() if "backup_compression" in x]
    assert line.startswith("warning") and "Express Edition" in line


def test_leftovers_and_slowness_are_warnings(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    s = Setup(tmp_path, faults="{kind: leftover-checkpoint, target: ERP01}, "
                               "{kind: slow, delay_s: 1.2}")
    done, out, _ = _check(cli, s, "--slow-after", "1")
    assert done.code == 0, out
    [left] = [x for x in out.splitlines() if "leftovers" in x]
    assert left.startswith("warning") and "1 checkpoint(s)" in left and "ERP01" in left
    [speed] = [x for x in out.splitlines() if " speed " in x]
    assert speed.startswith("warning") and "expected under 1 s" in speed
    assert out.splitlines()[-1] == "acme/hv01: ready (2 warning(s))"


def test_trial_catches_a_stuck_merge_and_a_damaged_dump(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    s = Setup(tmp_path, faults="{kind: merge-stuck, target: DC01}, "
                               "{kind: verifyonly-failure, target: PAIE}")
    done, out, _ = _check(cli, s)
    assert done.code == 0, out  # nothing shows until something is tried
    done, out, _ = _check(cli, s, "--trial")
    assert done.code == 1
    lines = out.splitlines()
    assert next(x for x in lines if "trial VM ERP01" in x).startswith("ok")
    stuck = next(x for x in lines if "trial VM DC01" in x)
    assert stuck.startswith("FAIL") and "merge did not finish" in stuck
    dump = next(x for x in lines if "trial SQL" in x)
    assert dump.startswith("FAIL") and "PAIE" in dump and "VERIFYONLY" in dump
    host = s.host()
    try:  # the trial removed its dumps; the merge the fault holds outlives its checkpoint
        inventory = host.run("Get-HvbInventory")
        assert inventory["leftovers"]["checkpoints"] == []
        assert [v["name"] for v in inventory["vms"] if v["unmerged_files"]] == ["DC01"]
    finally:
        host.close()
    done, out, _ = _check(cli, s)  # and the next check says so
    merges = next(x for x in out.splitlines() if "merges" in x)
    assert merges.startswith("warning") and "DC01: " in merges and ".avhdx" in merges


def test_json_and_unknown_host(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    import json

    s = Setup(tmp_path, faults="{kind: staging-full}")
    done = cli("host", "check", "-c", str(s.config), "acme/hv01", "--json")
    report = json.loads(done.out)
    assert report["ready"] is False
    assert {"topic": "staging", "level": "FAIL"}.items() <= next(
        v for v in report["verdicts"] if v["topic"] == "staging").items()
    unknown = cli("host", "check", "-c", str(s.config), "acme/nope")
    assert unknown.code == 2 and "acme/hv01" in unknown.err


def test_winrm_host_without_jea_endpoint(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    from tests.servers import free_port

    s = Setup(tmp_path)
    port = free_port()  # nothing listens there
    text = s.config.read_text().replace(
        "        address: hv01\n        transport: simulated\n",
        f"        address: 127.0.0.1\n        transport: winrm\n        winrm: {{port: {port}, "
        "connect_retries: 0, username: svc, password_env: HVB_TEST_PW}\n")
    text = text.replace("        simulated: {seed: 4, vm_disk_mb: 4, share_files: 30, "
                        "faults: []}\n", "")
    s.config.write_text(text)
    import os

    os.environ["HVB_TEST_PW"] = "not a real password"
    try:
        done = cli("host", "check", "-c", str(s.config), "acme/hv01")
    finally:
        del os.environ["HVB_TEST_PW"]
    assert done.code == 1, done.out + done.err
    lines = done.out.splitlines()
    assert next(x for x in lines if " endpoint " in x).startswith("warning")
    assert "configuration_name: hvbackup" in done.out
    assert next(x for x in lines if " connection " in x).startswith("FAIL")


def test_trial_through_jea_exports_as_the_job_does(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    from tests.world import SIMULATED

    s = Setup(tmp_path, simulated=SIMULATED + ", jea: true", vm="\n        mode: export")
    done, out, _ = _check(cli, s, "--trial")
    lines = out.splitlines()
    for vm in ("ERP01", "DC01"):
        trial = next(x for x in lines if f"trial VM {vm}" in x)
        assert trial.startswith("ok") and "export" in trial, out
    assert done.code == 0, out
    host = s.host()
    try:  # nothing of the trial is left on the host: no checkpoint, no export, no share
        leftovers = host.run("Get-HvbInventory")["leftovers"]
        assert leftovers["checkpoints"] == [], leftovers
        assert not leftovers.get("shares"), leftovers
    finally:
        host.close()
