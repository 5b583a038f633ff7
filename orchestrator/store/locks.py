"""Leases on a repository: shared for backups, exclusive for the deleting phase of prune.

A lock is a small file under ``locks/`` with an expiry time, renewed while its holder works. A
holder that crashed stops renewing, and its lock counts for nothing once expired: a dead run
never blocks backups for long. To take a lock: write ours, then look at the others; if one
conflicts, remove ours and wait (or give up with a clear error).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import TracebackType

from orchestrator.baie.target import Target
from orchestrator.errors import StoreError

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=15)


class RepositoryLocked(StoreError):
    code = "HVB-STORE-LOCKED"
    permanent = False


class Lock:
    def __init__(self, target: Target, kind: str, purpose: str,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC),
                 lease: timedelta = LEASE) -> None:
        if kind not in ("shared", "exclusive"):
            raise ValueError(kind)
        self.target = target
        self.kind = kind
        self.purpose = purpose
        self.name = f"locks/{secrets.token_hex(16)}"
        self._now = now
        self._lease = lease
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _write(self) -> None:
        doc = {"kind": self.kind, "purpose": self.purpose, "host": socket.gethostname(),
               "pid": os.getpid(), "expires": (self._now() + self._lease).isoformat()}
        self.target.put(self.name, json.dumps(doc).encode())

    def others(self) -> list[dict[str, str]]:
        """Live locks held by others (expired ones are ignored, and removed)."""
        live = []
        for entry in self.target.list("locks"):
            if entry.name == self.name:
                continue
            try:
                doc = json.loads(self.target.get(entry.name))
                expires = datetime.fromisoformat(doc["expires"])
            except (ValueError, KeyError, StoreError):
                continue  # half-written or vanished: not a lock we can honour
            if expires < self._now():
                log.info("removing expired lock %s (%s)", entry.name, doc.get("purpose"))
                self.target.delete(entry.name)
                continue
            live.append(doc)
        return live

    def acquire(self, wait: timedelta = timedelta(0), poll_s: float = 5.0) -> Lock:
        deadline = time.monotonic() + wait.total_seconds()
        while True:
            self._write()
            conflicts = [d for d in self.others()
                         if self.kind == "exclusive" or d["kind"] == "exclusive"]
            if not conflicts:
                break
            self.target.delete(self.name)
            if time.monotonic() >= deadline:
                held = ", ".join(f"{d['purpose']} on {d['host']} until {d['expires']}"
                                 for d in conflicts)
                raise RepositoryLocked(f"{self.target.label}: the repository is locked by {held}")
            time.sleep(poll_s)
        self._thread = threading.Thread(target=self._renew, daemon=True, name=f"lease {self.name}")
        self._thread.start()
        return self

    def _renew(self) -> None:
        while not self._stop.wait(self._lease.total_seconds() / 3):
            try:
                self._write()
            except StoreError as exc:
                log.warning("could not renew lock %s: %s", self.name, exc)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self.target.delete(self.name)
        except StoreError as exc:  # it expires by itself
            log.warning("could not remove lock %s: %s", self.name, exc)

    def __enter__(self) -> Lock:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
