"""Leases on a repository: shared for backups and copies, exclusive for the deleting phase of
prune.

A lock is a small file under ``locks/`` with an expiry time, renewed while its holder works. A
holder that crashed stops renewing, and its lock counts for nothing once expired: a dead run
never blocks backups for long. A lock taken on this very machine says more: its host, its pid,
when that process started and the machine's boot; when that process is gone (killed, or the
machine rebooted since) the lock is released at once, without waiting for its expiry. The start
time guards against pid reuse: a pid now held by a later process does not keep a dead lock. To
take a lock: write ours, then look at the others; if one conflicts, remove ours and wait (saying
who holds it), or give up with an error that names the holders.

Through an append-only access (a site agent's: it may add files, never remove or replace one) a
lease is a series of files, ``locks/<lease>.<n>``, each written once: a renewal is the next
one, and releasing writes a last one that says so. What counts is each lease's newest file.
Nothing is removed through that access: expired leases stay until a holder with the full
access (the server's maintenance) takes a lock and clears them.
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

from orchestrator.baie.target import Target, is_append_only
from orchestrator.errors import StoreError
from orchestrator.procs import boot_id, machine_id, pid_alive, process_started

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
        self.lease_id = secrets.token_hex(16)
        self.append_only = is_append_only(target)
        self._seq = 0
        self.name = self._next_name()
        self._now = now
        self._lease = lease
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._since = now()

    def _next_name(self) -> str:
        if not self.append_only:
            return f"locks/{self.lease_id}"
        self._seq += 1
        return f"locks/{self.lease_id}.{self._seq}"

    def _write(self, released: bool = False) -> None:
        pid = os.getpid()
        doc: dict[str, object] = {
            "kind": self.kind, "purpose": self.purpose, "host": socket.gethostname(),
            "pid": pid, "started": process_started(pid), "machine": machine_id(),
            "boot": boot_id(), "since": self._since.isoformat(),
            "expires": (self._now() + self._lease).isoformat(),
            "lease": self.lease_id, "seq": self._seq}
        if released:
            doc["released"] = True
        self.target.put(self.name, json.dumps(doc).encode())
        if self.append_only:
            self.name = self._next_name()  # the next renewal is a file of its own

    def _leases(self) -> dict[str, tuple[dict[str, object], list[str]]]:
        """Each lease's newest document, and every file it has, by lease."""
        newest: dict[str, tuple[dict[str, object], list[str]]] = {}
        for entry in self.target.list("locks"):
            try:
                doc = json.loads(self.target.get(entry.name))
                datetime.fromisoformat(doc["expires"])
            except (ValueError, KeyError, TypeError, StoreError):
                continue  # half-written or vanished: not a lock we can honour
            lease = str(doc.get("lease") or entry.name)
            seen, names = newest.get(lease, (None, []))
            names.append(entry.name)
            if seen is None or int(str(doc.get("seq", 0))) >= int(str(seen.get("seq", 0))):
                seen = doc
            newest[lease] = (seen, names)
        return newest

    def _clear(self, names: list[str]) -> None:
        if not self.append_only:
            for name in names:
                self.target.delete(name)

    def others(self) -> list[dict[str, str]]:
        """Live locks held by others (expired or released ones are ignored, and removed when
        this access may remove files)."""
        live = []
        for lease, (doc, names) in self._leases().items():
            if lease == self.lease_id or any(n == self.name for n in names):
                continue
            if doc.get("released"):
                self._clear(names)
                continue
            if datetime.fromisoformat(str(doc["expires"])) < self._now():
                log.info("removing expired lock %s (%s)", lease, doc.get("purpose"))
                self._clear(names)
                continue
            text = {k: str(v) for k, v in doc.items()}
            gone = holder_gone(text)
            if gone:
                log.info("%s: removing the lock of %s: %s", self.target.label, describe(text),
                         gone)
                self._clear(names)
                continue
            live.append(text)
        return live

    def _drop(self) -> None:
        """Give the lease up: its file removed, or, append-only, a last file that says so."""
        if self.append_only:
            self._write(released=True)
        else:
            self.target.delete(self.name)

    def acquire(self, wait: timedelta = timedelta(0), poll_s: float = 5.0) -> Lock:
        """Take the lock, waiting up to ``wait`` for conflicting holders (logged once, and again
        whenever the holders change). Raises RepositoryLocked naming them when the wait ends."""
        deadline = time.monotonic() + wait.total_seconds()
        said = ""
        while True:
            self._write()
            conflicts = [d for d in self.others()
                         if self.kind == "exclusive" or d.get("kind") == "exclusive"]
            if not conflicts:
                break
            self._drop()
            held = ", ".join(describe(d) for d in conflicts)
            if time.monotonic() >= deadline:
                raise RepositoryLocked(f"{self.target.label}: the repository is locked by {held}")
            if held != said:
                log.info("%s: %s waiting for %s (at most until %s)", self.target.label,
                         self.purpose, held,
                         (self._now() + timedelta(seconds=deadline - time.monotonic()))
                         .strftime("%H:%M:%S"))
                said = held
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
            self._drop()
        except StoreError as exc:  # it expires by itself
            log.warning("could not remove lock %s: %s", self.name, exc)

    def __enter__(self) -> Lock:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def describe(doc: dict[str, str]) -> str:
    """Who holds a lock, for a technician: ``prune on srv-backup (pid 4242) since 02:10:03
    until 02:40:03``."""
    def hour(key: str) -> str:
        try:
            return datetime.fromisoformat(doc[key]).strftime("%Y-%m-%d %H:%M:%S %Z").strip()
        except (KeyError, TypeError, ValueError):
            return "?"
    since = f" since {hour('since')}" if doc.get("since") else ""
    return (f"{doc.get('purpose', '?')} on {doc.get('host', '?')} (pid {doc.get('pid', '?')})"
            f"{since} until {hour('expires')}")


def holder_gone(doc: dict[str, str]) -> str | None:
    """Why the process holding this lock certainly no longer runs, or None when it may.

    Only a lock of this machine can be judged: same host name, and same machine id when both
    know one (two machines may share a name). Taken before the machine's last restart: gone.
    Else its pid is asked with :func:`pid_alive`, and a pid alive but started at another time
    than the holder is a later process given the same number. A lock of another machine, or
    one that does not say enough, is left to expire."""
    if doc.get("host") != socket.gethostname():
        return None
    here = machine_id()
    if doc.get("machine") and here and doc["machine"] != here:
        return None  # another machine of the same name
    try:
        pid = int(doc["pid"])
    except (KeyError, TypeError, ValueError):
        return None
    boot = boot_id()
    if doc.get("machine") and here and doc.get("boot") and boot and doc["boot"] != boot:
        return "this machine restarted since it was taken"
    if not pid_alive(pid):
        return f"process {pid} is gone"
    started = doc.get("started")
    if started and process_started(pid) not in (None, started):
        return f"process {pid} is gone (its pid now belongs to a later process)"
    return None
