"""Sources: where the mover reads the files a capture exposes.

A capture reports paths as the host sees them (``D:\\Hyper-V\\ERP01.vhdx``, a shadow-copy
link, a staging folder). A :class:`Source` reads them from the orchestrator: on this machine
(:class:`LocalSource`, with a path mapping for the simulated host, or UNC paths when the
orchestrator runs on Windows) or over SMB (:class:`orchestrator.mover.smb.SmbSource`).
Reading is streaming: files are opened and read in blocks, never loaded whole.
"""

from __future__ import annotations

import logging
import os
import stat as stat_module
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath
from typing import BinaryIO, Protocol

from orchestrator.errors import SourceDenied, SourceError

log = logging.getLogger(__name__)

READ_BLOCK = 4 * 1024 * 1024


@dataclass(frozen=True)
class FileInfo:
    path: str  # as the host names it
    size: int
    mtime: float
    is_dir: bool = False
    # A folder listed, that the reading account may not open (its NTFS ACL refuses it): walk
    # yields it so that the run names it, and does not go in.
    denied: bool = False


class Source(Protocol):
    label: str

    def open(self, path: str) -> BinaryIO:
        """Open a file for reading (binary, seekable); raises SourceError."""
        ...

    def stat(self, path: str) -> FileInfo: ...

    def walk(self, root: str) -> Iterator[FileInfo]:
        """Every file under ``root`` (depth first, sorted), directories not listed, except a
        folder below ``root`` the account may not list: yielded with ``denied`` set."""
        ...

    def close(self) -> None: ...


def read_blocks(source: Source, path: str, block: int = READ_BLOCK) -> Iterator[bytes]:
    """The content of ``path`` in blocks of ``block`` bytes (the last may be shorter)."""
    with source.open(path) as f:
        while True:
            data = f.read(block)
            if not data:
                return
            yield data


def join(root: str, *parts: str) -> str:
    """Join host path parts with the separator the root uses (Windows or POSIX)."""
    if "\\" in root or (len(root) >= 2 and root[1] == ":"):
        return str(PureWindowsPath(root, *parts))
    return os.path.join(root, *parts)


class LocalSource:
    """Files on this machine. ``mapper`` turns a host path into a local one (the simulated
    host's drive folders); without it, paths are used as they are (POSIX paths, or UNC paths
    on a Windows orchestrator)."""

    def __init__(self, label: str, mapper: Callable[[str], Path] | None = None) -> None:
        self.label = label
        self._map = mapper or Path

    def _local(self, path: str) -> Path:
        return self._map(path)

    def _refused(self, host_path: str) -> bool:
        """Whether the account may not open ``host_path`` although the file system lets this
        process in (the simulated host's NTFS rule); nothing is refused here."""
        return False

    def open(self, path: str) -> BinaryIO:
        if self._refused(path):
            raise SourceDenied(f"{self.label}: {path} cannot be read: access denied", path=path)
        try:
            # Unbuffered: each read goes straight from the kernel into the chunk's bytes.
            return self._local(path).open("rb", buffering=0)
        except FileNotFoundError:
            raise SourceError(f"{self.label}: {path} does not exist") from None
        except PermissionError:
            raise SourceDenied(f"{self.label}: {path} cannot be read: permission denied",
                               path=path) from None
        except IsADirectoryError:
            raise SourceError(f"{self.label}: {path} is a folder, not a file") from None
        except OSError as exc:
            raise SourceError(f"{self.label}: {path} cannot be opened: {exc.strerror}",
                              permanent=False) from None

    def stat(self, path: str) -> FileInfo:
        try:
            st = self._local(path).stat()
        except FileNotFoundError:
            raise SourceError(f"{self.label}: {path} does not exist") from None
        except OSError as exc:
            raise SourceError(f"{self.label}: {path}: {exc.strerror}", permanent=False) from None
        return FileInfo(path, st.st_size, st.st_mtime, stat_module.S_ISDIR(st.st_mode))

    def walk(self, root: str) -> Iterator[FileInfo]:
        base = self._local(root)
        if not base.is_dir():
            raise SourceError(f"{self.label}: {root} is not a folder")

        def visit(folder: Path, host_folder: str) -> Iterator[FileInfo]:
            # A live folder (no shadow copy: a NAS, this machine's files) changes while it is
            # read: what is removed after it was listed is left out, not a failed night.
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except FileNotFoundError:
                if folder != base:
                    log.info("%s: %s was removed while it was read", self.label, host_folder)
                    return
                raise SourceError(f"{self.label}: {root} does not exist") from None
            except PermissionError:
                if folder == base:
                    raise SourceError(f"{self.label}: cannot list {root}: permission denied"
                                      ) from None
                yield FileInfo(host_folder, 0, 0.0, is_dir=True, denied=True)
                return
            except OSError as exc:
                raise SourceError(f"{self.label}: cannot list {host_folder}: {exc.strerror}",
                                  permanent=False) from None
            for entry in entries:
                host_path = join(host_folder, entry.name)
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if self._refused(host_path):
                            yield FileInfo(host_path, 0, 0.0, is_dir=True, denied=True)
                            continue
                        yield from visit(Path(entry.path), host_path)
                    elif entry.is_file(follow_symlinks=False):
                        st = entry.stat(follow_symlinks=False)
                        yield FileInfo(host_path, st.st_size, st.st_mtime)
                except FileNotFoundError:
                    log.info("%s: %s was removed while it was read", self.label, host_path)

        yield from visit(base, root)

    def close(self) -> None:
        pass
