"""The one door to Windows hosts over WinRM (pypsrp 0.9).

A ``RunspacePool`` is opened once per session on the host's session configuration
(``configuration_name``: ``Microsoft.PowerShell`` by default, ``hvbackup`` for the JEA endpoint
made by powershell/onboarding/Initialize-HvbHost.ps1). pypsrp builds the resource URI itself
(``http://schemas.microsoft.com/powershell/<name>``), so it is given the bare name.

Two modes, never mixed:

* default endpoint: ``PowerShell(pool).add_script(text).add_parameters(params)``, the text of
  powershell/<Script>.ps1;
* JEA endpoint: no script text at all (the session is NoLanguage). The scripts are installed
  there as the functions of the Hvbackup module, and each is called by name with parameters
  only: ``add_cmdlet(<Script>).add_parameters(params)``, same parameters, same JSON result.

Long scripts are polled (``begin_invoke`` then ``poll_invoke`` with a short WSMan timeout), never
held in one request for hours, and stopped when their deadline passes. Every pipeline that was
started is closed (``PowerShell.close()``: the WSMan Terminate signal), so the host does not keep
it until the shell ends; ``close()`` deletes the shell.

pypsrp, requests and spnego exceptions are translated into the error tree here, each with a
sentence naming the host, the script and what to check.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from orchestrator.errors import (
    HostAuthError,
    HostError,
    HostTimeout,
    HostUnreachable,
    ScriptOutputInvalid,
)
from orchestrator.hosts import scripts

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 3600.0
DEFAULT_CONFIGURATION_NAME = "Microsoft.PowerShell"  # the same as pypsrp.powershell's
RESOURCE_URI_PREFIX = "http://schemas.microsoft.com/powershell/"
POLL_TIMEOUT_S = 10


class WinrmHost:
    """A WinRM session to one Hyper-V host (not thread-safe: one run at a time).

    Tests reach it through the real pypsrp classes, against a local WSMan server
    (tests/hosts/wsman_standin.py): there is no hook to replace pypsrp.
    """

    def __init__(
        self,
        label: str,
        address: str,
        *,
        username: str | None,
        password: str | None,
        port: int = 5986,
        ssl: bool = True,
        auth: str = "negotiate",
        cert_validation: bool | str = True,
        configuration_name: str | None = None,
        operation_timeout_s: int = 20,
        read_timeout_s: int = 30,
        connect_retries: int = 3,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if operation_timeout_s >= read_timeout_s:
            raise ValueError("operation_timeout_s must be below read_timeout_s")
        self.label = label
        self.address = address
        self.username = username
        self._password = password
        self.port = port
        self.ssl = ssl
        self.auth = auth
        self.cert_validation = cert_validation
        self.configuration_name = _endpoint(configuration_name)
        self.operation_timeout_s = operation_timeout_s
        self.read_timeout_s = read_timeout_s
        self.connect_retries = connect_retries
        self._clock = clock
        self._pool: Any = None

    @property
    def jea(self) -> bool:
        """Connected to a JEA endpoint rather than the administrators' default one."""
        return self.configuration_name.lower() != DEFAULT_CONFIGURATION_NAME.lower()

    def __repr__(self) -> str:  # never shows the password
        return f"WinrmHost({self.label!r}, {self.address!r}, user={self.username!r})"

    # -- connection ---------------------------------------------------------------------

    def _connect(self) -> Any:
        if self._pool is None:
            try:
                self._pool = _open_pool(self)
            except Exception as exc:  # translated right here, never past this module
                raise translate(exc, self, f"opening a session on endpoint "
                                           f"{self.configuration_name}") from None
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            try:
                self._pool.close()
            except Exception as exc:  # closing a dead pool is not worth failing a run
                log.debug("closing the WinRM pool of %s: %s", self.label, exc)
            self._pool = None

    # -- scripts ------------------------------------------------------------------------

    def run(self, script: str, /, *, timeout_s: float | None = None,
            **params: Any) -> dict[str, Any]:
        sent = scripts.check_call(script, params)
        text = scripts.load_script(script).text
        limit = timeout_s or DEFAULT_TIMEOUT_S
        deadline = self._clock() + limit
        where = f"host {self.label} ({self.address})"
        pool = self._connect()
        from pypsrp.powershell import PowerShell

        ps = PowerShell(pool)
        if self.jea:
            # NoLanguage session: the Hvbackup module's function of that name, parameters only.
            ps.add_cmdlet(script)
        else:
            ps.add_script(text)
        if sent:
            ps.add_parameters(sent)
        log.info("%s: running %s.ps1%s", self.label, script,
                 f" (endpoint {self.configuration_name})" if self.jea else "")
        try:
            ps.begin_invoke()
            while _is_running(ps):
                if self._clock() > deadline:
                    _stop_quietly(ps)
                    raise HostTimeout(
                        f"{where}: {script}.ps1 did not finish within {limit:g} s; it was "
                        "stopped. Check the host's load and the operation it was doing."
                    )
                ps.poll_invoke(timeout=POLL_TIMEOUT_S)
        except HostError:
            raise
        except Exception as exc:
            self._pool = None  # a pool that failed mid-call is not reused (pypsrp issue #21)
            raise translate(exc, self, script) from None
        finally:
            _close_quietly(ps, self.label)
        errors = [str(e) for e in ps.streams.error]
        if ps.had_errors or (errors and not ps.output):
            detail = "; ".join(errors) or "terminating error without a message"
            raise ScriptOutputInvalid(
                f"{where}: {script}.ps1 stopped with a PowerShell error instead of its JSON "
                f"result: {detail[:500]}"
            )
        outputs = [o for o in ps.output if o is not None and str(o).strip()]
        if len(outputs) != 1:
            raise ScriptOutputInvalid(
                f"{where}: {script}.ps1 must write exactly one JSON object, it wrote "
                f"{len(outputs)} output item(s): {str(outputs)[:300]}"
            )
        for warning in ps.streams.warning:
            log.warning("%s: %s.ps1: %s", self.label, script, warning)
        return scripts.interpret_result(script, where, str(outputs[0]))


def _is_running(ps: Any) -> bool:
    from pypsrp.complex_objects import PSInvocationState

    return bool(ps.state == PSInvocationState.RUNNING)


def _stop_quietly(ps: Any) -> None:
    try:
        ps.stop()
    except Exception as exc:
        log.warning("could not stop a remote script: %s", exc)


def _close_quietly(ps: Any, label: str) -> None:
    """Release the pipeline on the host (WSMan Terminate signal); a pipeline pypsrp still sees
    running (a failure mid-call) cannot be closed, and its shell is dropped instead."""
    from pypsrp.complex_objects import PSInvocationState

    if ps.state not in (PSInvocationState.COMPLETED, PSInvocationState.STOPPED,
                        PSInvocationState.FAILED):
        return
    try:
        ps.close()
    except Exception as exc:  # the result is already in hand; the shell's end releases it
        log.debug("closing a pipeline on %s: %s", label, exc)


def _open_pool(host: WinrmHost) -> Any:
    from pypsrp.powershell import RunspacePool
    from pypsrp.wsman import WSMan

    wsman = WSMan(
        host.address,
        port=host.port,
        ssl=host.ssl,
        auth=host.auth,
        username=host.username,
        password=host._password,
        # True, False or a CA file: pypsrp hands it to requests as `verify`.
        cert_validation=host.cert_validation,  # type: ignore[arg-type]
        operation_timeout=host.operation_timeout_s,
        read_timeout=host.read_timeout_s,
        connection_timeout=host.read_timeout_s,
        reconnection_retries=host.connect_retries,
        reconnection_backoff=2.0,
    )
    pool = RunspacePool(
        wsman,
        configuration_name=host.configuration_name,
        no_profile=True,
    )
    pool.open()
    return pool


def _endpoint(name: str | None) -> str:
    """The session configuration name pypsrp expects: the bare name (``hvbackup``).

    pypsrp's ``RunspacePool`` builds the resource URI ``http://schemas.microsoft.com/powershell/``
    + name itself; a full URI given here (as ``Enter-PSSession -ConfigurationName`` accepts) is
    brought back to its name so that the prefix is never doubled.
    """
    if not name:
        return DEFAULT_CONFIGURATION_NAME
    name = name.strip()
    if name.lower().startswith(RESOURCE_URI_PREFIX):
        name = name[len(RESOURCE_URI_PREFIX):]
    if not name or "/" in name:
        raise ValueError(f"'{name}' is not a PowerShell session configuration name "
                         "(for example hvbackup, or Microsoft.PowerShell)")
    return name


def translate(exc: BaseException, host: WinrmHost, doing: str) -> HostError:
    """Map a pypsrp / requests / spnego exception to the error tree, with what to check."""
    where = f"host {host.label} ({host.address}:{host.port})"
    name = type(exc).__name__
    text = str(exc).replace(host._password or "\0", "***") if host._password else str(exc)
    text = text.strip().splitlines()[0][:300] if text.strip() else name
    try:
        import requests
        from pypsrp.exceptions import AuthenticationError, WinRMTransportError, WSManFaultError
    except ImportError:  # pragma: no cover - pypsrp is a dependency
        return HostError(f"{where}: {doing}: {text}")
    if isinstance(exc, AuthenticationError) or (
        isinstance(exc, WinRMTransportError) and getattr(exc, "code", None) == 401
    ):
        return HostAuthError(
            f"{where}: the credentials of {host.username or 'the service account'} were refused "
            f"({host.auth}). Check the password variable and that the account may use WinRM "
            "(member of Remote Management Users, or the JEA endpoint's role)."
        )
    if isinstance(exc, requests.exceptions.SSLError):
        return HostAuthError(
            f"{where}: the host's certificate is not trusted ({text}). Set winrm.ca_file to the "
            "CA that signed the WinRM listener's certificate."
        )
    if isinstance(exc, requests.exceptions.Timeout):
        return HostTimeout(f"{where}: no answer within {host.read_timeout_s} s while {doing} "
                           "(host overloaded, or a firewall dropping packets).")
    if isinstance(exc, requests.exceptions.ConnectionError | ConnectionError | OSError):
        return HostUnreachable(
            f"{where}: cannot connect ({text}). Check that the host is up, that WinRM listens "
            f"on port {host.port} (winrm enumerate winrm/config/listener) and that the firewall "
            "lets this orchestrator in."
        )
    if isinstance(exc, WinRMTransportError):
        return HostError(f"{where}: WinRM answered HTTP {getattr(exc, 'code', '?')} while "
                         f"{doing}: {text}", permanent=False)
    if isinstance(exc, WSManFaultError):
        hint = ""
        if doing.startswith("opening a session"):
            hint = (f" Check that the endpoint exists on the host (Get-PSSessionConfiguration "
                    f"-Name {host.configuration_name}; the onboarding creates 'hvbackup') and "
                    "that this account may use it.")
        return HostError(f"{where}: WinRM fault while {doing}: {text}.{hint}", permanent=False)
    return HostError(f"{where}: {name} while {doing}: {text}", permanent=False)
