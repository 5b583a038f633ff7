"""What a command asks a person for: passphrases, and progress on long work."""

from __future__ import annotations

import getpass
import os
import sys
import time
from typing import TextIO

from orchestrator.errors import UsageError
from orchestrator.humanize import size

PASSPHRASE_ENV = "HVBACKUP_PASSPHRASE"


def ask_passphrase(prompt: str, *, confirm: bool = False) -> str:
    """From ``HVBACKUP_PASSPHRASE`` when set (scripts, tests), else from the terminal."""
    value = os.environ.get(PASSPHRASE_ENV)
    if value is not None:
        return value
    if not sys.stdin.isatty():
        raise UsageError(f"a passphrase is needed: run this in a terminal, or set {PASSPHRASE_ENV}")
    first = getpass.getpass(f"{prompt}: ")
    if confirm and getpass.getpass("Again, to be sure: ") != first:
        raise UsageError("the two passphrases differ; nothing was written")
    return first


def human_bytes(n: float) -> str:
    """A size as the CLI prints it, in English with one decimal: ``12.3 GB``."""
    return size(n, "en", decimals=1)


class Progress:
    """One status line on a terminal, rewritten at most twice a second; silent otherwise."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.active = self.stream.isatty()
        self._last = 0.0
        self._started = time.monotonic()

    def show(self, done_bytes: int, text: str) -> None:
        if not self.active or time.monotonic() - self._last < 0.5:
            return
        self._last = time.monotonic()
        rate = done_bytes / max(0.001, self._last - self._started)
        self.stream.write(f"\r{text}, {human_bytes(rate)}/s\033[K")
        self.stream.flush()

    def done(self) -> None:
        if self.active:
            self.stream.write("\r\033[K")
            self.stream.flush()
