"""The one door to Windows hosts over WinRM (pypsrp 0.9).

A ``RunspacePool`` is opened once per session and each script runs as
``PowerShell(pool).add_script(text).add_parameters(params)``; its single JSON output is parsed
and checked against the script's schema. Through a JEA endpoint (``configuration_name``, made
by powershell/onboarding/Initialize-HvbHost.ps1) no script text may run: the scripts are
installed there as the functions of the Hvbackup module and called by name
(``add_cmd(name)``), with the same parameters and the same result. Long scripts are polled
(``begin_invoke`` then ``poll_invoke`` with a short WSMan timeout), never held in one request
for hours, and stopped when their deadline passes.

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
POLL_TIMEOUT_S = 10


class WinrmHost:
    """A WinRM session to one Hyper-V host.

    ``pool_factory`` builds and opens the pypsrp ``RunspacePool``; tests replace it to exercise
    the translation of pypsrp's behaviour without a Windows machine. ``powershell_factory``
    likewise builds the ``PowerShell`` object.
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
        pool_factory: Callable[[WinrmHost], Any] | None = None,
        powershell_factory: Callable[[Any], Any] | None = None,
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
        self.configuration_name = configuration_name
        self.operation_timeout_s = operation_timeout_s
        self.read_timeout_s = read_timeout_s
        self.connect_retries = connect_retries
        self._pool_factory = pool_factory or _open_pool
        self._powershell_factory = powershell_factory or _new_powershell
        self._clock = clock
        self._pool: Any = None

    @property
    def jea(self) -> bool:
        """Connected to a JEA endpoint rather than the administrators' default one."""
        name = (self.configuration_name or "").rsplit("/", 1)[-1]
        return bool(name) and name.lower() != "microsoft.powershell"

    def __repr__(self) -> str:  # never shows the password
        return f"WinrmHost({self.label!r}, {self.address!r}, user={self.username!r})"

    # -- connection ---------------------------------------------------------------------

    def _connect(self) -> Any:
        if self._pool is None:
            try:
                self._pool = self._pool_factory(self)
            except Exception as exc:  # translated right here, never past this module
                raise translate(exc, self, "connect") from None
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
        deadline = self._clock() + (timeout_s or DEFAULT_TIMEOUT_S)
        where = f"host {self.label} ({self.address})"
        pool = self._connect()
        ps = self._powershell_factory(pool)
        if self.jea:
            ps.add_cmd(script)  # the endpoint's function of that name: same script, installed
        else:
            ps.add_script(text)
        if sent:
            ps.add_parameters(sent)
        log.info("%s: running %s.ps1", self.label, script)
        try:
            ps.begin_invoke()
            while _is_running(ps):
                if self._clock() > deadline:
                    _stop_quietly(ps)
                    limit = timeout_s or DEFAULT_TIMEOUT_S
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
        errors = [str(e) for e in getattr(ps.streams, "error", [])]
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
        for warning in getattr(ps.streams, "warning", []):
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


def _open_pool(host: WinrmHost) -> Any:
    from pypsrp.powershell import DEFAULT_CONFIGURATION_NAME, RunspacePool
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
        configuration_name=_endpoint(host.configuration_name) or DEFAULT_CONFIGURATION_NAME,
        no_profile=True,
    )
    pool.open()
    return pool


def _endpoint(name: str | None) -> str | None:
    """A JEA endpoint name as WSMan expects it (``http://schemas.microsoft.com/powershell/NAME``)."""
    if not name:
        return None
    return name if "/" in name else f"http://schemas.microsoft.com/powershell/{name}"


def _new_powershell(pool: Any) -> Any:
    from pypsrp.powershell import PowerShell

    return PowerShell(pool)


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
        return HostError(f"{where}: WinRM fault while {doing}: {text}", permanent=False)
    return HostError(f"{where}: {name} while {doing}: {text}", permanent=False)
