"""The canary: each night, with the very account that writes the backups, try to destroy a file
on the baie. An append-only account (docs/baie-setup.md) must be refused every time; if it is
not, a site that falls into the wrong hands could erase its copies, and the hotline is told."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CANARY = "canary"  # at the top of the client's repository folder, beside ``config``
CANARY_BYTES = b"hvbackup canary: the writer's account must never be able to change this file\n"


@dataclass(frozen=True)
class CanaryResult:
    """What the baie let the writer's account do to the canary (empty: it refused it all).
    ``remove``, ``overwrite`` (opened truncating), ``rename``, ``posix-rename``; ``changed``
    when the file was found altered without any of them succeeding."""

    allowed: list[str] = field(default_factory=list)

    @property
    def protected(self) -> bool:
        return not self.allowed

    def to_dict(self) -> dict[str, Any]:
        return {"protected": self.protected, "allowed": list(self.allowed)}


def probe(target: Any) -> CanaryResult | None:
    """The canary tried through ``target`` (its wrappers looked through), or None when the
    target is not an append-only SFTP access (nothing is promised there)."""
    if not getattr(target, "append_only", False):
        return None
    inner = target
    while not hasattr(inner, "canary") and hasattr(inner, "inner"):
        inner = inner.inner
    if not getattr(inner, "append_only", False) or not hasattr(inner, "canary"):
        return None
    result: CanaryResult = inner.canary()
    return result
