"""Secrets are named in the configuration, never written there: read them here, at use."""

from __future__ import annotations

import os
from pathlib import Path

from orchestrator.errors import SecretMissing


def read_secret(what: str, env: str | None, file: str | Path | None,
                base: Path | None = None) -> str | None:
    """The secret named by an environment variable or a file (relative to ``base``).

    ``what`` says what it is for ("the WinRM password of acme/hv01"). Returns ``None`` when
    neither is configured; raises :class:`SecretMissing` naming the variable or file, never
    the value.
    """
    if env:
        value = os.environ.get(env)
        if value is None:
            raise SecretMissing(f"environment variable {env} is not set: {what} is read from it")
        return value
    if file:
        path = Path(file)
        path = path if path.is_absolute() or base is None else base / path
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SecretMissing(f"cannot read {path} ({exc.strerror}): {what} is read from it"
                                ) from None
    return None
