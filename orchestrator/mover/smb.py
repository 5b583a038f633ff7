"""The one door to SMB shares (smbprotocol's ``smbclient``), for a Linux orchestrator reading
a Windows host's files.

What a capture exposes is read through a **per-run share** the host script made for this run
and granted to the connecting account only (``\\\\HOST\\hvb-<run>-<n>$\\...``): the account
onboarding creates is not an administrator, and remote UAC filters even a local administrator's
network token (KB 951016), so administrative shares (``\\\\host\\D$``) are refused to it. Drive
paths (``D:\\x``) are read through ``D$`` only when the source is told the account is an
administrator (``admin_shares=True``: the default endpoint, a domain administrator).

An SMB client resolves symbolic links itself (MS-SMB2 2.2.2.2.1); a link to a local device
(``\\\\?\\GLOBALROOT\\Device\\...``, what ``mklink /d`` to a shadow copy makes) cannot be
followed from another machine, and smbprotocol refuses it: that is a permanent error here.

A per-run share grants the account Read, but every file in it keeps its own NTFS ACL, and the
stricter of the two wins: a file whose ACL refuses the account (inheritance disabled, an
explicit deny) is answered STATUS_ACCESS_DENIED. That file, or that folder, is a
:class:`~orchestrator.errors.SourceDenied` naming it, which the run lists (AVERTISSEMENT) while
it reads on (docs/host-scripts.md, "Files the account may not read").

Files are streamed in large reads; nothing is held whole in memory. smbprotocol exceptions
become :class:`~orchestrator.errors.SourceError` here, with what to check.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Iterator
from pathlib import PureWindowsPath
from typing import Any, BinaryIO

from orchestrator.errors import SourceDenied, SourceError
from orchestrator.mover.source import FileInfo

log = logging.getLogger(__name__)

_DIRECTORY = 0x10  # FILE_ATTRIBUTE_DIRECTORY
_NAME_SURROGATE = 0x20000000  # bit "N" of a reparse tag: the entry names another one
_REPARSE_POINT = 0x400  # FILE_ATTRIBUTE_REPARSE_POINT
RUN_SHARE_PREFIX = "hvb-"  # per-run shares: hvb-<run id>-<n>$, hidden, made by the host scripts


def is_run_share(share: str) -> bool:
    """Whether ``share`` is a per-run share a host script made (``hvb-...$``)."""
    return share.lower().startswith(RUN_SHARE_PREFIX) and share.endswith("$")


def is_link(attributes: int, reparse_tag: int) -> bool:
    """Whether a directory entry is a link to elsewhere (never followed): a reparse point whose
    tag has the name-surrogate bit (symbolic links, junctions, mount points), per MS-FSCC
    2.1.2.1 (Reparse Tags). Other reparse points (Data Deduplication 0x80000013, HSM, cloud
    files, WOF) hold the file's data, which the SMB server serves: leaving them out would lose
    files on deduplicated volumes. In FileIdFullDirectoryInformation the EaSize field carries
    the reparse tag when FILE_ATTRIBUTE_REPARSE_POINT is set (MS-FSCC 2.4.18)."""
    return bool(attributes & _REPARSE_POINT) and bool(reparse_tag & _NAME_SURROGATE)


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
        admin_shares: bool = False,
    ) -> None:
        self.label = label
        self.server = server
        self.port = port
        self._username = username
        self._password = password
        self._encrypt = encrypt
        self._timeout = connection_timeout_s
        self._admin_shares = admin_shares
        self._registered = False

    def __repr__(self) -> str:
        return f"SmbSource({self.label!r}, {self.server!r}, user={self._username!r})"

    def unc(self, path: str) -> str:
        """``\\\\server\\share\\...`` for a UNC path or a drive path (admin share).

        A per-run share names the host as the host knows itself (``\\\\HV01\\hvb-...$``): it is
        read from the address this source connects to. A drive path needs the administrative
        share: refused (SourceError, permanent) unless ``admin_shares``."""
        if path.startswith(("\\\\", "//")):
            unc = path.replace("/", "\\")
            parts = unc[2:].split("\\", 2)
            if len(parts) >= 2 and is_run_share(parts[1]):
                return "\\\\" + "\\".join([self.server, *parts[1:]])
            return unc
        win = PureWindowsPath(path)
        if not win.drive or not win.drive.endswith(":"):
            raise SourceError(f"{self.label}: {path} is neither a UNC path nor a drive path")
        if not self._admin_shares:
            raise SourceError(
                f"{self.label}: {path} is a drive path: reading it needs the administrative "
                f"share {win.drive[0]}$, which the account {self._username} (not an "
                "administrator, and filtered by remote UAC) cannot open; the host script must "
                "expose it through a per-run share")
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

    @staticmethod
    def _is_denied(exc: BaseException) -> bool:
        from smbprotocol.exceptions import SMBOSError

        return isinstance(exc, SMBOSError) and (
            exc.errno == errno.EACCES or "STATUS_ACCESS_DENIED" in str(exc))

    def _denied(self, path: str, unc: str) -> SourceDenied:
        return SourceDenied(f"{self.label}: SMB {self.server}:{self.port}: access denied on "
                            f"{unc}: the share grants {self._username} Read, but the NTFS "
                            "permissions of this file or folder refuse it (inheritance "
                            "disabled or an explicit deny); Initialize-HvbHost.ps1 -ShareRoot "
                            "grants Read on the files roots, which such an entry does not "
                            "inherit", path=path)

    def _translate(self, exc: BaseException, doing: str) -> SourceError:
        from smbprotocol.exceptions import (
            SMBAuthenticationError,
            SMBException,
            SMBLinkRedirectionError,
            SMBOSError,
        )

        where = f"{self.label}: SMB {self.server}:{self.port}"
        text = str(exc).replace(self._password, "***") if self._password else str(exc)
        text = text.strip().splitlines()[0][:300] if text.strip() else type(exc).__name__
        if isinstance(exc, SMBLinkRedirectionError):
            # MS-SMB2 2.2.2.2.1: the client must resolve the link; one to a local device
            # (a shadow copy's \\?\GLOBALROOT\Device\...) cannot be reached from here.
            return SourceError(f"{where}: {doing}: the path goes through a link to "
                               f"{exc.target} on the host, which an SMB client cannot follow; "
                               "the host script must expose it through a share")
        if isinstance(exc, SMBAuthenticationError) or "STATUS_LOGON_FAILURE" in text:
            return SourceError(f"{where}: the account {self._username} was refused while "
                               f"{doing}; check its password and its rights on the share")
        if isinstance(exc, SMBOSError):
            if exc.errno == errno.ENOENT:
                return SourceError(f"{where}: not found while {doing}")
            if exc.errno == errno.EACCES or "STATUS_ACCESS_DENIED" in text:
                return SourceError(f"{where}: access denied while {doing}; the account needs "
                                   "read rights on the share (administrative shares such as "
                                   "D$ are refused to an account that is not an administrator, "
                                   "and to local administrators by remote UAC)")
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
            if self._is_denied(exc) and is_run_share(unc[2:].split("\\")[1]):
                raise self._denied(path, unc) from None
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
        """Every file under ``root``; symbolic links, junctions and mount points are left out,
        other reparse points (deduplicated, tiered or cloud files) are read as the files they
        are."""
        client = self._session()

        def visit(host_folder: str) -> Iterator[FileInfo]:
            unc = self.unc(host_folder)
            try:
                entries = sorted(client.scandir(unc, **self._conn()), key=lambda e: e.name)
            except Exception as exc:
                if host_folder != root and self._is_denied(exc):
                    # A folder below the root whose own ACL refuses the account: named, and
                    # the rest of the tree is read.
                    yield FileInfo(host_folder, 0, 0.0, is_dir=True, denied=True)
                    return
                raise self._translate(exc, f"listing {unc}") from None
            for entry in entries:
                host_path = str(PureWindowsPath(host_folder, entry.name))
                # The listing already carries size and attributes: no request per file.
                info = entry.smb_info
                if is_link(info.file_attributes, info.ea_size):
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
