"""The ``Target`` protocol: what the store needs from a place that keeps files.

Names are relative POSIX paths (``data/ab/abcdef...``). Every file is written once, whole,
under a temporary name then renamed, so a reader never sees half a file, and is never
modified afterwards. A target whose ``append_only`` is true (an SFTP account that may only add
files: docs/baie-setup.md) writes each file directly under its final name instead, created
exclusively, and cannot delete: the store then never deletes nor replaces anything through
it (leases expire instead of being removed), and a reader tells an upload cut short by its
content, which does not match its name. Implementations translate their library's exceptions into
:class:`~orchestrator.errors.BaieError` kinds: unreachable (retryable), authentication or
unknown host key (permanent), full (permanent).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

# What ``put`` stores: bytes, or a list of parts written one after the other (a pack is
# uploaded as its blobs, never joined into one more copy of 32 MiB).
Data = bytes | bytearray | list[bytes]


def size_of(data: Data) -> int:
    return len(data) if isinstance(data, bytes | bytearray) else sum(map(len, data))


def joined(data: Data) -> bytes | bytearray:
    return data if isinstance(data, bytes | bytearray) else b"".join(data)


@dataclass(frozen=True)
class Entry:
    name: str
    size: int


class Target(Protocol):
    label: str

    def put(self, name: str, data: Data) -> None:
        """Store ``data`` under ``name`` atomically (temporary name, then rename).
        Overwriting an existing name with the same content is allowed (idempotent)."""
        ...

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        """``length`` bytes from ``offset`` (to the end when None). A missing file raises
        BaieError itself, permanent: not one of its kinds (unreachable would be retried)."""
        ...

    def stat(self, name: str) -> int | None:
        """The size of ``name``, or None when it does not exist."""
        ...

    def list(self, prefix: str) -> Iterator[Entry]:
        """Every file under the folder ``prefix`` (recursive), in name order, temporary files
        excluded; nothing when the folder does not exist."""
        ...

    def delete(self, name: str) -> None:
        """Remove ``name``; removing a missing file is not an error (idempotent)."""
        ...

    def flush(self) -> None:
        """Make every file put so far durable (on disk, not only in a cache). The store calls
        it before writing what refers to those files (an index, a snapshot)."""
        ...

    def close(self) -> None: ...


def is_append_only(target: object) -> bool:
    """Whether ``target`` may only add files (no delete, no rename, no overwrite)."""
    return bool(getattr(target, "append_only", False))


TMP_MARK = ".hvbtmp-"


def is_temporary(name: str) -> bool:
    return TMP_MARK in name.rsplit("/", 1)[-1]


def check_name(name: str) -> str:
    """Refuse names that could escape the repository folder."""
    parts = name.split("/")
    if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"invalid repository file name {name!r}")
    return name
