"""Which files of a baie's listing are ours, and which are strays.

A baie is a folder someone else looks after: Finder leaves ``.DS_Store``, Explorer
``desktop.ini`` and ``Thumbs.db``, an admin a ``README``. The repository's files have fixed
names (docs/repository-format.md): ``data/<xx>/<64 hex>`` where ``xx`` is the name's first two
digits, ``index/<64 hex>``, ``snapshots/<64 hex>``. Anything else under those folders is not
ours: it is left where it is, never read, and reported once (``Strays``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from orchestrator.baie.target import Entry

log = logging.getLogger(__name__)

_HEX64 = re.compile(r"[0-9a-f]{64}")


def content_id(prefix: str, name: str) -> bytes | None:
    """The 32-byte id that ``name`` (a listed file under ``prefix``: ``data``, ``index`` or
    ``snapshots``) stands for, or None when the name is not one the repository writes."""
    parts = name.split("/")
    if prefix == "data":
        if len(parts) != 3 or parts[0] != "data" or not _HEX64.fullmatch(parts[2]) \
                or parts[1] != parts[2][:2]:
            return None
    elif len(parts) != 2 or parts[0] != prefix or not _HEX64.fullmatch(parts[1]):
        return None
    return bytes.fromhex(parts[-1])


@dataclass
class Strays:
    """Files found under the repository's folders that are not the repository's."""

    names: list[str] = field(default_factory=list)
    _told: set[str] = field(default_factory=set)

    def add(self, name: str, label: str) -> None:
        if name not in self._told:  # once per repository opened, not once per listing
            self._told.add(name)
            self.names.append(name)
            log.warning("%s: %s is not a repository file: left as it is and ignored", label,
                        name)


def ours(prefix: str, entries: Iterable[Entry], strays: Strays, label: str
         ) -> list[tuple[bytes, Entry]]:
    """The repository's files among ``entries`` (a listing of ``prefix``), with their ids;
    the others go to ``strays``."""
    out = []
    for entry in entries:
        found = content_id(prefix, entry.name)
        if found is None:
            strays.add(entry.name, label)
        else:
            out.append((found, entry))
    return out
