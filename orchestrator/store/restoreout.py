"""Writing restored files under ``--to`` without ever leaving it.

Folders are created and opened one component at a time, relative to the folder above and
without following links (``O_NOFOLLOW``): a link already in ``--to`` that points elsewhere
(``--to/D -> /etc``) is refused by name, never written through. Each file is written to
``<name>.hvb-partial`` and renamed when complete; ``.hvb-restoring`` in ``--to`` marks a
restore under way, so that the partial files of one that was killed are removed by the next.

On a system without ``dir_fd`` support (Windows), each folder is resolved after it is created
and must still lie inside ``--to``; links in the file's own name are refused the same way.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from pathlib import Path
from typing import BinaryIO

from orchestrator.store.restorepath import UnsafeName

log = logging.getLogger(__name__)

PARTIAL = ".hvb-partial"
MARKER = ".hvb-restoring"
_DIR_FD = {os.open, os.mkdir, os.stat, os.rename, os.unlink, os.utime} <= os.supports_dir_fd
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)


class OutputDir:
    """``--to``: where restored files go. Close it (or use it as a context manager)."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self._fd = os.open(root, os.O_RDONLY | _DIRECTORY) if _DIR_FD else -1
        self._parent: tuple[tuple[str, ...], int] | None = None

    def __enter__(self) -> OutputDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._drop_parent()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    # -- a restore under way ------------------------------------------------------------------

    def begin(self) -> int:
        """Mark a restore under way; when a killed one left its mark, remove the partial files
        it left behind first. Returns how many were removed."""
        marker = self.root / MARKER
        removed = 0
        if marker.exists():
            for folder, dirs, files in os.walk(self.root, followlinks=False):
                for name in files:
                    if name.endswith(PARTIAL):
                        Path(folder, name).unlink(missing_ok=True)
                        removed += 1
                dirs[:] = [d for d in dirs if not Path(folder, d).is_symlink()]
            log.info("%s: removed %d partial file(s) left by an interrupted restore",
                     self.root, removed)
        marker.write_text(f"{os.getpid()}\n")
        return removed

    def end(self) -> None:
        (self.root / MARKER).unlink(missing_ok=True)

    # -- one file -----------------------------------------------------------------------------

    def exists(self, parts: tuple[str, ...]) -> bool:
        """Whether ``parts`` names something already there; raises :class:`UnsafeName` when a
        folder on the way is a link (or not a folder)."""
        if not _DIR_FD:
            path = self.root.joinpath(*parts)
            self._check_inside(path.parent, parts)
            return os.path.lexists(path)
        fd = self._fd
        opened: list[int] = []
        try:
            for depth, part in enumerate(parts[:-1]):
                try:
                    fd = os.open(part, os.O_RDONLY | _DIRECTORY | _NOFOLLOW, dir_fd=fd)
                except FileNotFoundError:
                    return False
                except OSError as exc:
                    raise self._not_a_folder(parts, depth, exc) from None
                opened.append(fd)
            try:
                os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                return False
            return True
        finally:
            for each in opened:
                os.close(each)

    def open_partial(self, parts: tuple[str, ...]) -> BinaryIO:
        """``<name>.hvb-partial`` in the file's folder (created), opened for writing."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _NOFOLLOW | getattr(os, "O_BINARY", 0)
        if not _DIR_FD:
            path = self.root.joinpath(*parts)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._check_inside(path.parent, parts)
            return os.fdopen(os.open(path.with_name(path.name + PARTIAL), flags, 0o666), "wb")
        fd = self._folder(parts)
        return os.fdopen(os.open(parts[-1] + PARTIAL, flags, 0o666, dir_fd=fd), "wb")

    def commit(self, parts: tuple[str, ...], mtime: float) -> None:
        """Rename the partial file to its name (replacing a file there, never following a link
        there) and give it its recorded modification time."""
        if not _DIR_FD:
            path = self.root.joinpath(*parts)
            os.replace(path.with_name(path.name + PARTIAL), path)
            os.utime(path, (mtime, mtime))
            return
        fd = self._folder(parts)
        os.replace(parts[-1] + PARTIAL, parts[-1], src_dir_fd=fd, dst_dir_fd=fd)
        os.utime(parts[-1], (mtime, mtime), dir_fd=fd, follow_symlinks=False)

    def discard(self, parts: tuple[str, ...]) -> None:
        try:
            if not _DIR_FD:
                path = self.root.joinpath(*parts)
                path.with_name(path.name + PARTIAL).unlink(missing_ok=True)
                return
            os.unlink(parts[-1] + PARTIAL, dir_fd=self._folder(parts))
        except (FileNotFoundError, UnsafeName):
            pass

    # -- folders ------------------------------------------------------------------------------

    def _folder(self, parts: tuple[str, ...]) -> int:
        """The open folder that holds ``parts[-1]``, created as needed (the last one is kept
        open: a snapshot's files come folder by folder)."""
        folders = parts[:-1]
        if self._parent is not None and self._parent[0] == folders:
            return self._parent[1]
        self._drop_parent()
        fd = self._fd
        for depth, part in enumerate(folders):
            try:
                os.mkdir(part, 0o777, dir_fd=fd)
            except FileExistsError:
                pass
            except OSError as exc:
                raise self._not_a_folder(parts, depth, exc) from None
            try:
                child = os.open(part, os.O_RDONLY | _DIRECTORY | _NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                raise self._not_a_folder(parts, depth, exc) from None
            finally:
                if fd != self._fd:
                    os.close(fd)
            fd = child
        if fd == self._fd:
            fd = os.dup(fd)
        self._parent = (folders, fd)
        return fd

    def _drop_parent(self) -> None:
        if self._parent is not None:
            os.close(self._parent[1])
            self._parent = None

    def _not_a_folder(self, parts: tuple[str, ...], depth: int, exc: OSError) -> UnsafeName:
        where = os.path.join(*parts[:depth + 1])
        if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
            try:
                is_link = stat.S_ISLNK(os.lstat(self.root / where).st_mode)
            except OSError:
                is_link = False
            what = "a link" if is_link else "not a folder"
            return UnsafeName(os.path.join(*parts), f"{where} in the restore folder is {what}: "
                                                    "nothing is written through it")
        raise exc

    def _check_inside(self, folder: Path, parts: tuple[str, ...]) -> None:
        if not folder.resolve().is_relative_to(self.root.resolve()):
            raise UnsafeName(os.path.join(*parts), "a folder on its way in the restore folder "
                                                    "is a link that leads outside it")
