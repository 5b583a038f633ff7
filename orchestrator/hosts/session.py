"""What the rest of the orchestrator sees of a host: one call per script, a dict back."""

from __future__ import annotations

from typing import Any, Protocol


class HostSession(Protocol):
    """A connection to one host (WinRM, simulated, or this machine).

    ``run`` executes a script of powershell/ with its named parameters and returns the
    script's result dict when ``ok``. It raises :class:`~orchestrator.errors.ScriptFailed`
    when the script reports an error, and the other :class:`~orchestrator.errors.HostError`
    kinds when the host cannot be reached, refuses the credentials, times out or breaks the
    script contract. ``timeout_s`` bounds the whole call.
    """

    label: str

    def run(self, script: str, /, *, timeout_s: float | None = None,
            **params: Any) -> dict[str, Any]: ...

    def close(self) -> None: ...
