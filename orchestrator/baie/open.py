"""Building the Target of a baie from the configuration, wrappers included."""

from __future__ import annotations

import time
from collections.abc import Callable

from orchestrator.baie.local import LocalTarget
from orchestrator.baie.target import Target
from orchestrator.baie.wrappers import DryRunTarget, LimitTarget, RetryTarget
from orchestrator.config.load import LoadedConfig
from orchestrator.errors import UsageError


def open_target(loaded: LoadedConfig, baie: str, client: str, *, dry_run: bool = False,
                retry: bool = True, sleep: Callable[[float], None] = time.sleep) -> Target:
    """The Target for ``client``'s repository on ``baie``, wrapped as configured:
    retry(limit(adapter)), and dry-run when asked."""
    settings = loaded.config.baies.get(baie)
    if settings is None:
        raise UsageError(f"no baie {baie!r} in {loaded.path} "
                         f"(baies: {', '.join(loaded.config.baies)})")
    target: Target
    if settings.type == "local":
        mount = loaded.resolve(settings.path)
        target = LocalTarget(baie, mount / client, mount=mount)
    else:
        from orchestrator.baie.sftp import SftpTarget  # paramiko and asyncssh: only when used

        target = SftpTarget(
            baie, settings.host, user=settings.user, key_file=loaded.resolve(settings.key_file),
            known_hosts=loaded.resolve(settings.known_hosts),
            root=f"{settings.path.rstrip('/')}/{client}", port=settings.port,
            connections=settings.connections,
        )
    if settings.bandwidth is not None:
        target = LimitTarget(target, settings.bandwidth.sustained_mbps,
                             settings.bandwidth.burst_mbps)
    if retry:
        target = RetryTarget(target, sleep=sleep)
    if dry_run:
        target = DryRunTarget(target)
    return target
