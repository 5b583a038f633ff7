"""The WinRM adapter through the real pypsrp client, down to HTTPS and WSMan.

Nothing of pypsrp is replaced: ``WinrmHost`` opens a real ``RunspacePool`` over a real ``WSMan``
transport (requests, TLS checked against the stand-in's CA, Basic auth) to the local WSMan
server of tests/hosts/wsman_standin.py, which applies the endpoint's rules (resource URI,
NoLanguage JEA session with its visible functions only) and records what reached it. A live
test runs against a real host when HVB_TEST_WINRM_HOST, HVB_TEST_WINRM_USER and
HVB_TEST_WINRM_PASSWORD are set (docs/lab/winrm.md).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
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
from orchestrator.hosts.winrm import WinrmHost, _endpoint, translate
from tests.hosts.wsman_standin import (
    NO_LANGUAGE,
    PS_CTRL_C,
    TERMINATE,
    Call,
    Reply,
    WsmanStandIn,
    serving,
)
from tests.servers import free_port

STAGING_OK = {"ok": True, "dry_run": False, "path": "D:\\s\\r1", "removed": True,
              "bytes_freed": 10}
USER, PASSWORD = "svc-hvbackup", "S3cr3t-pass"
BY_TEXT = {scripts.load_script(n).text: n for n in scripts.script_names()}


def _visible_functions() -> set[str]:
    """The functions the onboarding's role capability makes visible (Hvbackup.psrc)."""
    psrc = (Path(__file__).resolve().parents[2] / "powershell" / "onboarding"
            / "Hvbackup.psrc").read_text(encoding="utf-8-sig")
    block = re.search(r"VisibleFunctions\s*=\s*@\((.*?)\)", psrc, re.S)
    assert block is not None
    return set(re.findall(r"'([A-Za-z-]+)'", block.group(1)))


class Host:
    """What a test drives: the stand-in, its replies by script name, a host factory."""

    def __init__(self, standin: WsmanStandIn, ca: Path) -> None:
        self.standin, self.ca = standin, ca
        self.replies: dict[str, Reply] = {}

    def session(self, *, endpoint: str | None = None, password: str = PASSWORD,
                clock: Callable[[], float] | None = None, ca: str | bool | None = None
                ) -> WinrmHost:
        ticks = [0.0]

        def now() -> float:
            ticks[0] += 1.0
            return ticks[0]

        return WinrmHost(
            "acme/hv01", "127.0.0.1", username=USER, password=password,
            port=self.standin.port, auth="basic",
            cert_validation=str(self.ca) if ca is None else ca,
            configuration_name=endpoint, connect_retries=0, clock=clock or now)


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    holder: list[Host] = []

    def handler(call: Call) -> Reply:
        (cmd,) = call.commands
        name = BY_TEXT[cmd.text] if cmd.is_script else cmd.text
        return holder[0].replies.get(name, Reply(output=[json.dumps(STAGING_OK)]))

    standin = WsmanStandIn({"Microsoft.PowerShell": None, "hvbackup": _visible_functions()},
                           handler, username=USER, password=PASSWORD)
    with serving(standin, tmp_path) as ca:
        holder.append(Host(standin, ca))
        yield holder[0]
    assert standin.failures == []


def test_runs_the_script_text_with_its_parameters_and_returns_the_result(host: Host) -> None:
    host.replies["Remove-HvbStaging"] = Reply(output=[json.dumps(STAGING_OK)], running_polls=2)
    session = host.session()
    result = session.run("Remove-HvbStaging", StagingPath="D:\\s", RunId="r1", DryRun=False)
    assert result == STAGING_OK
    (call,) = host.standin.calls
    assert call.configuration == "microsoft.powershell"
    (cmd,) = call.commands
    assert cmd.is_script and cmd.text == scripts.load_script("Remove-HvbStaging").text
    assert cmd.parameters == {"StagingPath": "D:\\s", "RunId": "r1"}  # switch off = absent
    assert host.standin.operation_timeouts == ["PT10S"] * 3  # polled with short WSMan timeouts
    pool = session._pool
    assert pool.connection.transport.read_timeout == 30  # the real pypsrp objects
    assert pool.connection.operation_timeout == 20


def test_through_a_jea_endpoint_the_function_is_called_with_parameters_only(
        host: Host) -> None:
    """A JEA session is NoLanguage: the adapter sends the exposed function's name and its
    parameters, never script text (defect 1: the call went through ``add_cmd``, which pypsrp's
    PowerShell does not have)."""
    session = host.session(endpoint="hvbackup")
    assert session.run("Remove-HvbStaging", StagingPath="D:\\s", RunId="r1",
                       DryRun=True) == STAGING_OK
    (call,) = host.standin.calls
    assert call.configuration == "hvbackup"
    (cmd,) = call.commands
    assert (cmd.text, cmd.is_script) == ("Remove-HvbStaging", False)
    assert cmd.parameters == {"StagingPath": "D:\\s", "RunId": "r1", "DryRun": True}
    assert not any(c.is_script for c in call.commands)


def test_a_jea_endpoint_refuses_script_text_and_hidden_commands(host: Host) -> None:
    """The stand-in's JEA rules, through the real client: what the adapter must never send."""
    from pypsrp.powershell import PowerShell

    session = host.session(endpoint="hvbackup")
    pool = session._connect()
    ps = PowerShell(pool)
    ps.add_script("Get-Process")
    ps.invoke()
    assert ps.had_errors and str(ps.streams.error[0]) == NO_LANGUAGE
    ps = PowerShell(pool)
    ps.add_cmdlet("Remove-Item").add_parameter("Path", "C:\\Windows")
    ps.invoke()
    assert ps.had_errors and "'Remove-Item' is not recognized" in str(ps.streams.error[0])


def test_the_jea_session_opens_on_the_configuration_name(host: Host) -> None:
    """Defect 2: pypsrp prefixes http://schemas.microsoft.com/powershell/ itself; a full URI
    given to it names a configuration that does not exist, and the session never opens."""
    for name in ("hvbackup", "http://schemas.microsoft.com/powershell/hvbackup"):
        session = host.session(endpoint=name)
        assert session.run("Remove-HvbStaging", StagingPath="D:\\s", RunId="r1") == STAGING_OK
    uris = set(host.standin.resource_uris)
    assert uris == {"http://schemas.microsoft.com/powershell/hvbackup"}


def test_a_missing_endpoint_says_what_to_check(host: Host) -> None:
    with pytest.raises(HostError, match=r"Cannot find the hvbakup session configuration.*"
                                        r"Get-PSSessionConfiguration -Name hvbakup") as info:
        host.session(endpoint="hvbakup").run("Get-HvbInventory")
    assert info.value.permanent is False


def test_endpoint_names() -> None:
    assert _endpoint("hvbackup") == "hvbackup"
    assert _endpoint("http://schemas.microsoft.com/powershell/hvbackup") == "hvbackup"
    assert _endpoint(None) == "Microsoft.PowerShell"
    with pytest.raises(ValueError, match="not a PowerShell session configuration name"):
        _endpoint("https://hv01/wsman")


@pytest.mark.parametrize("endpoint", [None, "hvbackup"])
def test_every_pipeline_is_closed_on_the_host(host: Host, endpoint: str | None) -> None:
    """Defect 20: a pipeline left open stays on the host until its shell ends (the session
    is kept for a whole run); each one gets the WSMan Terminate signal, and close() deletes
    the shell."""
    session = host.session(endpoint=endpoint)
    session.run("Remove-HvbStaging", StagingPath="D:\\s", RunId="r1")
    host.replies["Get-HvbInventory"] = Reply(failed="Get-VM: access denied")
    with pytest.raises(ScriptOutputInvalid):
        session.run("Get-HvbInventory")
    assert host.standin.open_pipelines() == []
    assert [code for _, code in host.standin.signals] == [TERMINATE, TERMINATE]
    session.close()
    assert len(host.standin.deleted) == 1 and host.standin.shells == {}


def test_a_script_past_its_deadline_is_stopped_then_closed(host: Host) -> None:
    host.replies["Remove-HvbStaging"] = Reply(output=[json.dumps(STAGING_OK)],
                                              running_polls=10_000)
    with pytest.raises(HostTimeout, match="did not finish within 5 s; it was stopped"):
        host.session().run("Remove-HvbStaging", timeout_s=5, StagingPath="D:\\s", RunId="r1")
    (call,) = host.standin.calls
    assert host.standin.signals == [(call.command_id, PS_CTRL_C), (call.command_id, TERMINATE)]
    assert host.standin.open_pipelines() == []


def test_script_error_result_becomes_script_failed(host: Host) -> None:
    host.replies["Remove-HvbStaging"] = Reply(output=[json.dumps({"ok": False, "error": {
        "code": "STAGING_REMOVE_FAILED", "message": "file in use"}})])
    with pytest.raises(ScriptFailed, match=r"host acme/hv01 \(127.0.0.1\): "
                                           r"Remove-HvbStaging.ps1 failed \(STAGING_REMOVE_FAILED"):
        host.session(endpoint="hvbackup").run("Remove-HvbStaging", StagingPath="D:\\s",
                                              RunId="r1")


def test_terminating_error_is_reported_with_the_error_stream(host: Host) -> None:
    host.replies["Get-HvbInventory"] = Reply(failed="The term 'Get-VM' is not recognized")
    with pytest.raises(ScriptOutputInvalid, match=r"PowerShell error .*Get-VM' is not recognized"):
        host.session().run("Get-HvbInventory")


def test_non_terminating_errors_without_output_are_not_ignored(host: Host) -> None:
    host.replies["Get-HvbInventory"] = Reply(errors=["Access is denied"])
    with pytest.raises(ScriptOutputInvalid, match="Access is denied"):
        host.session().run("Get-HvbInventory")


def test_exactly_one_output_object_is_required(host: Host) -> None:
    host.replies["Remove-HvbStaging"] = Reply(output=["stray text", json.dumps(STAGING_OK)])
    with pytest.raises(ScriptOutputInvalid, match="exactly one JSON object, it wrote 2"):
        host.session().run("Remove-HvbStaging", StagingPath="D:\\s", RunId="r1")


def test_warnings_are_logged(host: Host, caplog: pytest.LogCaptureFixture) -> None:
    host.replies["Remove-HvbStaging"] = Reply(output=[json.dumps(STAGING_OK)],
                                              warnings=["disk nearly full"])
    host.session().run("Remove-HvbStaging", StagingPath="D:\\s", RunId="r1")
    assert "Remove-HvbStaging.ps1: disk nearly full" in caplog.text


def test_a_fault_mid_call_drops_the_pool_and_hides_the_password(host: Host) -> None:
    host.replies["Get-HvbInventory"] = Reply(fault=f"internal error for {PASSWORD}")
    session = host.session()
    with pytest.raises(HostError, match="WinRM fault while Get-HvbInventory") as info:
        session.run("Get-HvbInventory")
    assert PASSWORD not in str(info.value) and info.value.permanent is False
    assert session._pool is None
    assert session.run("Remove-HvbStaging", StagingPath="D:\\s", RunId="r1") == STAGING_OK
    assert len(host.standin.shells) == 2  # a new shell; the broken one ends by its idle timeout


def test_refused_credentials(host: Host) -> None:
    with pytest.raises(HostAuthError, match=f"credentials of {USER} were refused") as info:
        host.session(password="wrong").run("Get-HvbInventory")
    assert "127.0.0.1:" in str(info.value) and "wrong" not in str(info.value)


def test_an_untrusted_certificate_asks_for_the_ca_file(host: Host) -> None:
    with pytest.raises(HostAuthError, match=r"Set winrm\.ca_file"):
        host.session(ca=True).run("Get-HvbInventory")


def test_nothing_listening() -> None:
    session = WinrmHost("acme/hv01", "127.0.0.1", username=USER, password=PASSWORD,
                        port=free_port(), auth="basic", connect_retries=0)
    with pytest.raises(HostUnreachable, match="WinRM listens on port"):
        session.run("Get-HvbInventory")


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
    (WSManFaultError(500, "hv01", "fault for S3cr3t-pass", "", "", ""), HostError,
     "WinRM fault"),
])
def test_library_exceptions_are_translated(exc: BaseException, kind: type[HostError],
                                           fragment: str) -> None:
    session = WinrmHost("acme/hv01", "hv01.acme.local", username="ACME\\svc",
                        password=PASSWORD)
    error = translate(exc, session, "connect")
    assert type(error) is kind
    assert fragment in str(error) and PASSWORD not in str(error)
    assert "hv01.acme.local:5986" in str(error)


def test_repr_never_shows_the_password() -> None:
    assert "S3cr3t" not in repr(WinrmHost("h", "a", username="u", password=PASSWORD))


def test_the_adapter_uses_only_what_pypsrp_has() -> None:
    """Every PowerShell/RunspacePool attribute the adapter names exists in the installed
    pypsrp (the old double defined ``add_cmd``, which pypsrp does not)."""
    import inspect

    from pypsrp.powershell import PowerShell

    import orchestrator.hosts.winrm as adapter

    used = set(re.findall(r"\bps\.([a-z_]+)", inspect.getsource(adapter)))
    assert used and used <= set(dir(PowerShell(_pool_for_inspection()))), used


def _pool_for_inspection() -> Any:
    from unittest import mock

    from pypsrp.powershell import RunspacePool

    pool = mock.create_autospec(RunspacePool, instance=True)  # only to build the object
    pool.protocol_version = "2.3"
    return pool


LIVE = all(os.environ.get(f"HVB_TEST_WINRM_{k}") for k in ("HOST", "USER", "PASSWORD"))


@pytest.mark.skipif(not LIVE, reason="needs a Windows host: set HVB_TEST_WINRM_HOST/_USER/"
                                     "_PASSWORD (and HVB_TEST_WINRM_CA, HVB_TEST_WINRM_ENDPOINT)")
def test_live_inventory_on_a_real_host() -> None:
    host = WinrmHost(
        "live", os.environ["HVB_TEST_WINRM_HOST"], username=os.environ["HVB_TEST_WINRM_USER"],
        password=os.environ["HVB_TEST_WINRM_PASSWORD"],
        cert_validation=os.environ.get("HVB_TEST_WINRM_CA") or True,
        configuration_name=os.environ.get("HVB_TEST_WINRM_ENDPOINT") or None,
    )
    try:
        inventory = host.run("Get-HvbInventory", SkipSql=True)
        assert inventory["host"]["name"]
        dry = host.run("Clear-HvbLeftovers", DryRun=True)
        assert dry["dry_run"] is True
    finally:
        host.close()
