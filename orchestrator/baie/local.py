"""``LocalTarget``: a baie that is a folder on this machine (a mounted array, a USB disk)."""

from __future__ import annotations

import errno
import os
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

from orchestrator.baie.target import TMP_MARK, Data, Entry, check_name, is_temporary
from orchestrator.errors import BaieError, BaieFull, BaieUnreachable


class LocalTarget:
    """``mount``: the configured baie folder, which must exist (an unmounted array must never
    be replaced silently by a folder on the orchestrator's own disk); below it, the client's
    folders are created as needed."""

    def __init__(self, label: str, root: Path, mount: Path | None = None) -> None:
        self.label = label
        self.root = root
        self.mount = mount
        self._pending: list[Path] = []
        self._pending_lock = threading.Lock()

    def _check_mounted(self) -> None:
        if self.mount is not None and not self.mount.is_dir():
            raise BaieUnreachable(f"baie {self.label}: {self.mount} is not there (array "
                                  "unmounted or disconnected?); nothing was written")

    def _baie_gone(self) -> bool:
        """The baie itself is not there: its mount when one is configured, else the root. A
        client folder not created yet on a mounted baie is only empty: a file looked up in it is
        missing (BaieError, permanent), not an unreachable baie that retrying would wait for."""
        return not (self.mount or self.root).exists()

    def __repr__(self) -> str:
        return f"LocalTarget({self.label!r}, {str(self.root)!r})"

    def _path(self, name: str) -> Path:
        return self.root / check_name(name)

    def _error(self, exc: OSError, doing: str) -> BaieError:
        where = f"baie {self.label} ({self.root})"
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return BaieFull(f"{where} is full while {doing}: free space on it or extend it; "
                            "nothing stored was damaged")
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return BaieError(f"{where}: permission denied while {doing} ({exc.strerror})")
        if exc.errno in (errno.ENOENT, errno.ENOTDIR) and self._baie_gone():
            return BaieUnreachable(f"{where} is not there (unmounted?) while {doing}")
        return BaieError(f"{where}: {exc.strerror} while {doing}", permanent=False)

    def put(self, name: str, data: Data) -> None:
        self._check_mounted()
        final = self._path(name)
        tmp = final.with_name(f"{final.name}{TMP_MARK}{secrets.token_hex(4)}")
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            with tmp.open("wb") as f:
                if isinstance(data, bytes | bytearray):
                    f.write(data)
                else:
                    f.writelines(data)
            os.replace(tmp, final)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise self._error(exc, f"writing {name}") from None
        with self._pending_lock:
            self._pending.append(final)

    def flush(self) -> None:
        """fsync what was written since the last flush, then their folders. Deferred to here
        so that the disk writes back while chunks are compressed, instead of one wait per pack."""
        with self._pending_lock:
            pending, self._pending = self._pending, []
        folders = set()
        try:
            for path in pending:
                if path.exists():
                    fd = os.open(path, os.O_RDONLY)
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)
                    folders.add(path.parent)
            for folder in folders:
                fd = os.open(folder, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except OSError as exc:
            raise self._error(exc, "making the written files durable") from None

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        self._check_mounted()
        try:
            with self._path(name).open("rb") as f:
                f.seek(offset)
                return f.read() if length is None else f.read(length)
        except FileNotFoundError:
            if self._baie_gone():
                raise BaieUnreachable(f"baie {self.label} ({self.root}) is not there "
                                      "(unmounted?)") from None
            raise BaieError(f"baie {self.label}: {name} is missing") from None
        except OSError as exc:
            raise self._error(exc, f"reading {name}") from None

    def stat(self, name: str) -> int | None:
        self._check_mounted()
        try:
            return self._path(name).stat().st_size
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._error(exc, f"looking at {name}") from None

    def list(self, prefix: str) -> Iterator[Entry]:
        self._check_mounted()
        base = self._path(prefix) if prefix else self.root
        if self._baie_gone():
            raise BaieUnreachable(f"baie {self.label} ({self.root}) is not there (unmounted?)")
        if not base.exists():
            return
        try:
            for dirpath, dirs, files in os.walk(base):
                dirs.sort()  # names in order, as every Target lists them
                for filename in sorted(files):
                    full = Path(dirpath) / filename
                    name = full.relative_to(self.root).as_posix()
                    if not is_temporary(name):
                        yield Entry(name, full.stat().st_size)
        except OSError as exc:
            raise self._error(exc, f"listing {prefix}") from None

    def delete(self, name: str) -> None:
        try:
            self._path(name).unlink(missing_ok=True)
        except OSError as exc:
            raise self._error(exc, f"deleting {name}") from None

    def close(self) -> None:
        pass
