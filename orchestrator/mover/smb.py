"""The one door to SMB shares (smbprotocol's ``smbclient``), for a Linux orchestrator reading
a Windows host's files: ``\\\\host\\share\\...`` paths, or drive paths (``D:\\x``) read through
the administrative share ``\\\\host\\D$\\x``.

Files are streamed in large reads; nothing is held whole in memory. smbprotocol exceptions
become :class:`~orchestrator.errors.SourceError` here, with what to check.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Iterator
from pathlib import PureWindowsPath
from typing import Any, BinaryIO

from orchestrator.errors import SourceError
from orchestrator.mover.source import FileInfo

log = logging.getLogger(__name__)

_DIRECTORY = 0x10  # FILE_ATTRIBUTE_DIRECTORY
_REPARSE_POINT = 0x400  # FILE_ATTRIBUTE_REPARSE_POINT


class SmbSource:
    """Read files from ``server`` over SMB 2/3 with the given account."""

    def __init__(
        self,
        label: str,
        server: str,
        *,
        username: str | None,
        password: str | None,
        port: int = 445,
        encrypt: bool = False,
        connection_timeout_s: int = 30,
    ) -> None:
        self.label = label
        self.server = server
        self.port = port
        self._username = username
        self._password = password
        self._encrypt = encrypt
        self._timeout = connection_timeout_s
        self._registered = False

    def __repr__(self) -> str:
        return f"SmbSource({self.label!r}, {self.server!r}, user={self._username!r})"

    def unc(self, path: str) -> str:
        """``\\\\server\\share\\...`` for a UNC path or a drive path (admin share)."""
        if path.startswith(("\\\\", "//")):
            return path.replace("/", "\\")
        win = PureWindowsPath(path)
        if not win.drive or not win.drive.endswith(":"):
            raise SourceError(f"{self.label}: {path} is neither a UNC path nor a drive path")
        rest = "\\".join(win.parts[1:])
        return f"\\\\{self.server}\\{win.drive[0]}$\\{rest}"

    def _conn(self) -> dict[str, Any]:
        # smbclient finds the session by server and port: every call names both.
        return {"port": self.port, "username": self._username, "password": self._password}

    def _session(self) -> Any:
        import smbclient

        if not self._registered:
            try:
                smbclient.register_session(
                    self.server, username=self._username, password=self._password,
                    port=self.port, encrypt=self._encrypt,
                    connection_timeout=self._timeout,
                )
            except Exception as exc:
                raise self._translate(exc, f"connecting to {self.server}:{self.port}") from None
            self._registered = True
        return smbclient

    def _translate(self, exc: BaseException, doing: str) -> SourceError:
        from smbprotocol.exceptions import SMBAuthenticationError, SMBException, SMBOSError

        where = f"{self.label}: SMB {self.server}:{self.port}"
        text = str(exc).replace(self._password, "***") if self._password else str(exc)
        text = text.strip().splitlines()[0][:300] if text.strip() else type(exc).__name__
        if isinstance(exc, SMBAuthenticationError) or "STATUS_LOGON_FAILURE" in text:
            return SourceError(f"{where}: the account {self._username} was refused while "
                               f"{doing}; check its password and its rights on the share")
        if isinstance(exc, SMBOSError):
            if exc.errno == errno.ENOENT:
                return SourceError(f"{where}: not found while {doing}")
            if exc.errno == errno.EACCES or "STATUS_ACCESS_DENIED" in text:
                return SourceError(f"{where}: access denied while {doing}; the account needs "
                                   "read rights (administrative shares need an administrator)")
            if "NOT_FOUND" in text or "BAD_NETWORK_NAME" in text:
                return SourceError(f"{where}: not found while {doing} ({text})")
            return SourceError(f"{where}: {doing}: {text}", permanent=False)
        if isinstance(exc, SMBException | ConnectionError | OSError | ValueError):
            return SourceError(f"{where}: cannot reach the file server while {doing} ({text}); "
                               "check that it is up and that port "
                               f"{self.port} is open to this orchestrator", permanent=False)
        return SourceError(f"{where}: {type(exc).__name__} while {doing}: {text}",
                           permanent=False)

    def open(self, path: str) -> BinaryIO:
        client = self._session()
        unc = self.unc(path)
        try:
            handle: BinaryIO = client.open_file(unc, mode="rb", share_access="rw",
                                                buffering=1024 * 1024, **self._conn())
            return handle
        except Exception as exc:
            raise self._translate(exc, f"opening {unc}") from None

    def stat(self, path: str) -> FileInfo:
        client = self._session()
        unc = self.unc(path)
        try:
            st = client.stat(unc, **self._conn())
        except Exception as exc:
            raise self._translate(exc, f"reading the attributes of {unc}") from None
        import stat as stat_module

        return FileInfo(path, st.st_size, st.st_mtime, stat_module.S_ISDIR(st.st_mode))

    def walk(self, root: str) -> Iterator[FileInfo]:
        client = self._session()

        def visit(host_folder: str) -> Iterator[FileInfo]:
            unc = self.unc(host_folder)
            try:
                entries = sorted(client.scandir(unc, **self._conn()), key=lambda e: e.name)
            except Exception as exc:
                raise self._translate(exc, f"listing {unc}") from None
            for entry in entries:
                host_path = str(PureWindowsPath(host_folder, entry.name))
                # The listing already carries size and attributes: no request per file.
                info = entry.smb_info
                if info.file_attributes & _REPARSE_POINT:
                    continue  # links and junctions: never followed (loops, other volumes)
                if info.file_attributes & _DIRECTORY:
                    yield from visit(host_path)
                else:
                    yield FileInfo(host_path, info.end_of_file, info.last_write_time.timestamp())

        yield from visit(root)

    def close(self) -> None:
        if self._registered:
            import smbclient

            try:
                smbclient.delete_session(self.server, port=self.port)
            except Exception as exc:  # a dead session is gone anyway
                log.debug("closing SMB session to %s: %s", self.server, exc)
            self._registered = False
