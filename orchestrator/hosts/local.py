"""``LocalHost``: files on the orchestrator's own machine (a Linux file server, a mounted
share). It has no Hyper-V, no SQL Server and no shadow copies: it answers the inventory and
the sweep, and refuses the rest with a clear error."""

from __future__ import annotations

import json
import platform
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orchestrator.hosts import scripts


class LocalHost:
    def __init__(self, label: str, paths: list[Path], now: Callable[[], datetime]) -> None:
        self.label = label
        self.paths = paths
        self._now = now

    def close(self) -> None:
        pass

    def run(self, script: str, /, *, timeout_s: float | None = None,
            **params: Any) -> dict[str, Any]:
        scripts.check_call(script, params)
        where = f"host {self.label} (this machine)"
        if script == "Get-HvbInventory":
            result: dict[str, Any] = self._inventory()
        elif script == "Clear-HvbLeftovers":
            result = {"ok": True, "dry_run": bool(params.get("DryRun")), "checkpoints": [],
                      "shadow_copies": []}
        else:
            result = {"ok": False, "error": {
                "code": "NOT_SUPPORTED",
                "message": f"{script} needs a Windows host; {self.label} is 'transport: local' "
                           "(files on this machine only, read without shadow copy)"}}
        return scripts.interpret_result(script, where, json.dumps(result))

    def _inventory(self) -> dict[str, Any]:
        volumes, seen = [], set()
        for path in self.paths:
            probe = path
            while not probe.exists() and probe != probe.parent:
                probe = probe.parent
            usage = shutil.disk_usage(probe)
            key = (usage.total, usage.free)
            if key in seen:
                continue
            seen.add(key)
            volumes.append({"drive": str(path), "label": "", "size_bytes": usage.total,
                            "free_bytes": usage.free})
        return {
            "ok": True,
            "host": {"name": platform.node(), "os_version": f"{platform.system()} "
                     f"{platform.release()}", "hyperv_version": "",
                     "time_utc": self._now().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")},
            "vms": [], "sql": [], "volumes": volumes,
            "leftovers": {"checkpoints": [], "shadow_copies": []},
        }
