"""The WinRM adapter at the pypsrp boundary: what a real pypsrp PowerShell object does (states,
output, error streams, exceptions) is replayed by a stand-in, and the adapter must turn each
case into the right result or error. A live test runs against a real host when
HVB_TEST_WINRM_HOST, HVB_TEST_WINRM_USER and HVB_TEST_WINRM_PASSWORD are set."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
import requests
from pypsrp.complex_objects import PSInvocationState
from pypsrp.exceptions import AuthenticationError, WinRMTransportError, WSManFaultError

from orchestrator.errors import (
    HostAuthError,
    HostError,
    HostTimeout,
    HostUnreachable,
    ScriptFailed,
    ScriptOutputInvalid,
)
from orchestrator.hosts import scripts
from orchestrator.hosts.winrm import WinrmHost, _endpoint

STAGING_OK = {"ok": True, "dry_run": False, "path": "D:\\s\\r1", "removed": True,
              "bytes_freed": 10}


class Streams:
    def __init__(self, error: list[str] | None = None, warning: list[str] | None = None) -> None:
        self.error = error or []
        self.warning = warning or []


class FakePowerShell:
    """Replays what pypsrp's PowerShell does for one invocation."""

    def __init__(self, output: list[Any], *, polls: int = 1, had_errors: bool = False,
                 errors: list[str] | None = None, raise_on_poll: BaseException | None = None
                 ) -> None:
        self.state = PSInvocationState.NOT_STARTED
        self._final_output = output
        self.output: list[Any] = []
        self.had_errors = had_errors
        self.streams = Streams(errors, ["disk nearly full"])
        self._polls_left = polls
        self._raise = raise_on_poll
        self.scripts: list[str] = []
        self.commands: list[str] = []
        self.parameters: dict[str, Any] = {}
        self.poll_timeouts: list[int | None] = []
        self.stopped = False

    def add_script(self, text: str) -> FakePowerShell:
        self.scripts.append(text)
        return self

    def add_cmd(self, name: str) -> FakePowerShell:
        self.commands.append(name)
        return self

    def add_parameters(self, params: dict[str, Any]) -> FakePowerShell:
        self.parameters.update(params)
        return self

    def begin_invoke(self) -> None:
        self.state = PSInvocationState.RUNNING

    def poll_invoke(self, timeout: int | None = None) -> None:
        self.poll_timeouts.append(timeout)
        if self._raise is not None:
            raise self._raise
        self._polls_left -= 1
        if self._polls_left <= 0:
            self.output = list(self._final_output)
            self.state = (PSInvocationState.FAILED if self.had_errors
                          else PSInvocationState.COMPLETED)

    def stop(self) -> None:
        self.stopped = True
        self.state = PSInvocationState.STOPPED


class FakePool:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


def make_host(ps: FakePowerShell, *, pool_error: BaseException | None = None,
              clock: list[float] | None = None, endpoint: str | None = None) -> WinrmHost:
    ticks = clock if clock is not None else [0.0]

    def pool_factory(host: WinrmHost) -> FakePool:
        if pool_error is not None:
            raise pool_error
        return FakePool()

    def now() -> float:
        ticks[0] += 1.0
        return ticks[0]

    return WinrmHost("acme/hv01", "hv01.acme.local", username="ACME\\svc",
                     password="S3cr3t-pass", pool_factory=pool_factory,
                     powershell_factory=lambda pool: ps, clock=now,
                     configuration_name=endpoint)


def test_runs_the_script_with_its_parameters_and_returns_the_result() -> None:
    ps = FakePowerShell([json.dumps(STAGING_OK)], polls=3)
    host = make_host(ps)
    result = host.run("Remove-HvbStaging", StagingPath="D:\\s", RunId="r1", DryRun=False)
    assert result == STAGING_OK
    assert ps.scripts == [scripts.load_script("Remove-HvbStaging").text]
    assert ps.parameters == {"StagingPath": "D:\\s", "RunId": "r1"}  # switch off = absent
    assert ps.poll_timeouts == [10, 10, 10]  # polled with short WSMan timeouts


def test_through_a_jea_endpoint_the_installed_function_is_called_by_name() -> None:
    """No script text may run in a JEA session: the same script, installed on the host by the
    onboarding as a function, is called by name with the same parameters."""
    ps = FakePowerShell([json.dumps(STAGING_OK)])
    host = make_host(ps, endpoint="hvbackup")
    assert host.run("Remove-HvbStaging", StagingPath="D:\\s", RunId="r1") == STAGING_OK
    assert (ps.commands, ps.scripts) == (["Remove-HvbStaging"], [])
    assert ps.parameters == {"StagingPath": "D:\\s", "RunId": "r1"}
    default = FakePowerShell([json.dumps(STAGING_OK)])
    make_host(default, endpoint="Microsoft.PowerShell").run("Remove-HvbStaging",
                                                            StagingPath="D:\\s", RunId="r1")
    assert default.commands == [] and len(default.scripts) == 1


def test_script_error_result_becomes_script_failed() -> None:
    ps = FakePowerShell([json.dumps({"ok": False, "error": {
        "code": "STAGING_REMOVE_FAILED", "message": "file in use"}})])
    with pytest.raises(ScriptFailed, match=r"host acme/hv01 \(hv01.acme.local\): "
                                           r"Remove-HvbStaging.ps1 failed \(STAGING_REMOVE_FAILED"):
        make_host(ps).run("Remove-HvbStaging", StagingPath="D:\\s", RunId="r1")


def test_terminating_error_is_reported_with_the_error_stream() -> None:
    ps = FakePowerShell([], had_errors=True, errors=["The term 'Get-VM' is not recognized"])
    with pytest.raises(ScriptOutputInvalid, match=r"PowerShell error .*Get-VM' is not recognized"):
        make_host(ps).run("Get-HvbInventory")


def test_non_terminating_errors_without_output_are_not_ignored() -> None:
    ps = FakePowerShell([], errors=["Access is denied"])
    with pytest.raises(ScriptOutputInvalid, match="Access is denied"):
        make_host(ps).run("Get-HvbInventory")


def test_exactly_one_output_object_is_required() -> None:
    ps = FakePowerShell(["stray text", json.dumps(STAGING_OK)])
    with pytest.raises(ScriptOutputInvalid, match="exactly one JSON object, it wrote 2"):
        make_host(ps).run("Remove-HvbStaging", StagingPath="D:\\s", RunId="r1")


def test_a_script_past_its_deadline_is_stopped() -> None:
    ps = FakePowerShell([json.dumps(STAGING_OK)], polls=10_000)
    host = make_host(ps)
    with pytest.raises(HostTimeout, match="did not finish within 5 s; it was stopped"):
        host.run("Remove-HvbStaging", timeout_s=5, StagingPath="D:\\s", RunId="r1")
    assert ps.stopped


@pytest.mark.parametrize(("exc", "kind", "fragment"), [
    (AuthenticationError("Failed to authenticate the user ACME\\svc with ntlm"), HostAuthError,
     "credentials of ACME\\svc were refused"),
    (WinRMTransportError("http", 401, "Unauthorized"), HostAuthError, "were refused"),
    (requests.exceptions.SSLError("certificate verify failed"), HostAuthError,
     "Set winrm.ca_file"),
    (requests.exceptions.ConnectTimeout("timed out"), HostTimeout, "no answer within 30 s"),
    (requests.exceptions.ConnectionError("Connection refused"), HostUnreachable,
     "WinRM listens on port 5986"),
    (WinRMTransportError("http", 500, "Internal Server Error"), HostError, "HTTP 500"),
])
def test_connection_failures_are_translated(exc: BaseException, kind: type[HostError],
                                            fragment: str) -> None:
    host = make_host(FakePowerShell([]), pool_error=exc)
    with pytest.raises(kind, match=fragment.replace("\\", "\\\\")) as info:
        host.run("Get-HvbInventory")
    assert "S3cr3t-pass" not in str(info.value)
    assert "hv01.acme.local:5986" in str(info.value)


def test_a_failure_mid_call_drops_the_pool_and_hides_the_password() -> None:
    fault = WSManFaultError(500, "hv01", "wsman fault for S3cr3t-pass", "", "", "")
    ps = FakePowerShell([], raise_on_poll=fault)
    host = make_host(ps)
    with pytest.raises(HostError) as info:
        host.run("Get-HvbInventory")
    assert "S3cr3t-pass" not in str(info.value) and info.value.permanent is False
    assert host._pool is None


def test_repr_never_shows_the_password() -> None:
    assert "S3cr3t" not in repr(make_host(FakePowerShell([])))


def test_jea_endpoint_name() -> None:
    assert _endpoint("hvbackup") == "http://schemas.microsoft.com/powershell/hvbackup"
    assert _endpoint(None) is None


def test_real_pool_gets_the_configured_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    import pypsrp.powershell
    import pypsrp.wsman

    seen: dict[str, Any] = {}

    class RecordingWSMan:
        def __init__(self, server: str, **kwargs: Any) -> None:
            seen["server"], seen["wsman"] = server, kwargs

    class RecordingPool:
        def __init__(self, wsman: Any, **kwargs: Any) -> None:
            seen["pool"] = kwargs

        def open(self) -> None:
            seen["opened"] = True

    monkeypatch.setattr(pypsrp.wsman, "WSMan", RecordingWSMan)
    monkeypatch.setattr(pypsrp.powershell, "RunspacePool", RecordingPool)
    host = WinrmHost("acme/hv01", "hv01", username="u", password="p", cert_validation="/ca.pem",
                     configuration_name="hvbackup", operation_timeout_s=20, read_timeout_s=30,
                     powershell_factory=lambda pool: FakePowerShell([json.dumps(STAGING_OK)]))
    host.run("Remove-HvbStaging", StagingPath="D:\\s", RunId="r1")
    assert seen["wsman"]["operation_timeout"] == 20 and seen["wsman"]["read_timeout"] == 30
    assert seen["wsman"]["cert_validation"] == "/ca.pem" and seen["wsman"]["ssl"] is True
    assert seen["wsman"]["reconnection_retries"] == 3
    assert seen["pool"]["configuration_name"].endswith("/powershell/hvbackup")
    assert seen["opened"]


LIVE = all(os.environ.get(f"HVB_TEST_WINRM_{k}") for k in ("HOST", "USER", "PASSWORD"))


@pytest.mark.skipif(not LIVE, reason="needs a Windows host: set HVB_TEST_WINRM_HOST/_USER/"
                                     "_PASSWORD (and HVB_TEST_WINRM_CA for its CA file)")
def test_live_inventory_on_a_real_host() -> None:
    host = WinrmHost(
        "live", os.environ["HVB_TEST_WINRM_HOST"], username=os.environ["HVB_TEST_WINRM_USER"],
        password=os.environ["HVB_TEST_WINRM_PASSWORD"],
        cert_validation=os.environ.get("HVB_TEST_WINRM_CA") or True,
    )
    try:
        inventory = host.run("Get-HvbInventory", SkipSql=True)
    finally:
        host.close()
    assert inventory["host"]["name"]
    dry = host.run("Clear-HvbLeftovers", DryRun=True)
    assert dry["dry_run"] is True
