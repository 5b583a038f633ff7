"""The second copy: repository files are immutable and named by content, so copying is by
name — whatever the second baie lacks is copied, packs first and snapshots last (the same
commit order as a backup), and nothing is ever deleted there. A file is copied only when its
bytes match its name (damage on the first baie never spreads to the second); one the second
baie holds with another size is damaged there and copied again. Files that are not the
repository's (``.DS_Store``, ``Thumbs.db``) are left alone."""

from __future__ import annotations

import logging

from orchestrator.baie.target import Target
from orchestrator.store.format import sha256
from orchestrator.store.names import content_id

log = logging.getLogger(__name__)

ORDER = ("config", "data", "index", "snapshots")


def copy_repository(source: Target, destination: Target) -> int:
    """Copy what ``destination`` lacks; returns the bytes copied. Idempotent."""
    copied = 0
    for prefix in ORDER:
        destination.flush()  # each kind durable before what refers to it
        if prefix == "config":
            if destination.stat("config") is None and source.stat("config") is not None:
                data = source.get("config")
                destination.put("config", data)
                copied += len(data)
            continue
        present = {e.name: e.size for e in destination.list(prefix)}
        for entry in source.list(prefix):
            wanted = content_id(prefix, entry.name)
            if wanted is None or present.get(entry.name) == entry.size:
                continue
            data = source.get(entry.name)
            if sha256(data) != wanted:
                log.warning("%s: %s is damaged: not copied to %s", source.label, entry.name,
                            destination.label)
                continue
            destination.put(entry.name, data)
            copied += len(data)
    destination.flush()
    return copied


def parity(source: Target, destination: Target) -> list[str]:
    """Snapshots the source has and the destination lacks (empty when both hold the same
    restore points). Snapshot files are named by content: equal names, equal snapshots."""
    there = {e.name for e in destination.list("snapshots")}
    return sorted(e.name.rsplit("/", 1)[-1] for e in source.list("snapshots")
                  if e.name not in there and content_id("snapshots", e.name) is not None)
