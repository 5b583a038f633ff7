"""Whether a process of this machine still runs, asked without disturbing it.

POSIX: ``kill(pid, 0)``. Windows: there ``os.kill(pid, 0)`` is not a question but Ctrl+C sent
to a console group, so the process is opened and its exit code read instead.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_STILL_ACTIVE = 259
_PROCESS_QUERY_LIMITED_INFORMATION = 0x1000
_ERROR_ACCESS_DENIED = 5


def pid_alive(pid: int) -> bool:
    if sys.platform == "win32":
        return _windows_pid_alive(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: it exists
    return True


def _windows_pid_alive(pid: int) -> bool:
    import ctypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
    handle = kernel32.OpenProcess(_PROCESS_QUERY_LIMITED_INFORMATION, False, pid)
    if not handle:
        return bool(ctypes.get_last_error() == _ERROR_ACCESS_DENIED)  # type: ignore[attr-defined]
    try:
        code = ctypes.c_ulong()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return True  # cannot tell: count it as running, nothing is removed
        return code.value == _STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)


def process_started(pid: int) -> str | None:
    """When process ``pid`` started, as an opaque token (equal for the same process, different
    for a later one given the same pid), or None when it is gone or the platform does not say.
    Linux: the start time in clock ticks since boot (field 22 of ``/proc/<pid>/stat``)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: count after it.
    fields = stat[stat.rfind(b")") + 2:].split()
    return fields[19].decode() if len(fields) > 19 else None


def boot_id() -> str | None:
    """This machine's current boot (Linux): a process recorded under another boot is gone."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip() or None
    except OSError:
        return None


def machine_id() -> str | None:
    """This installation's identity (Linux ``/etc/machine-id``, kept across reboots): two
    machines that happen to share a host name are told apart by it."""
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            with open(path) as f:
                found = f.read().strip()
        except OSError:
            continue
        if found:
            return found
    return None


_PATH_LOCKS: dict[str, threading.Lock] = {}
_PATH_LOCKS_GUARD = threading.Lock()


@contextmanager
def machine_lock(path: Path) -> Iterator[None]:
    """Held by one holder at a time on this machine, across threads and processes: a
    ``flock`` on ``path`` (created if needed) where the platform has it, a lock per path
    across the threads of this process always. Released when its holder dies."""
    key = os.path.abspath(path)
    with _PATH_LOCKS_GUARD:
        in_process = _PATH_LOCKS.setdefault(key, threading.Lock())
    path.parent.mkdir(parents=True, exist_ok=True)
    with in_process, path.open("a") as handle:
        try:
            import fcntl
        except ImportError:  # Windows: one orchestrator process per machine there
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
