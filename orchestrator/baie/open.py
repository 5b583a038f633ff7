"""Building the Target of a baie from the configuration, wrappers included."""

from __future__ import annotations

import time
from collections.abc import Callable

from orchestrator.baie.local import LocalTarget
from orchestrator.baie.target import Target
from orchestrator.baie.wrappers import DryRunTarget, LimitTarget, RetryTarget
from orchestrator.config.models import SftpBaie
from orchestrator.config.resolved import BaieSettings


def open_target(settings: BaieSettings, *, dry_run: bool = False, retry: bool = True,
                sleep: Callable[[float], None] = time.sleep,
                maintenance: bool = False) -> Target:
    """The Target of a client's repository on a baie (``LoadedConfig.baie(name, client)``),
    wrapped as configured: retry(limit(adapter)), and dry-run when asked. ``maintenance``
    (retention, prune): an append-only baie is opened with its maintenance access, when it
    has one (else it stays append-only, and nothing can be removed through it)."""
    baie = settings.baie
    target: Target
    if settings.mount is not None:
        target = LocalTarget(settings.name, settings.mount / settings.client,
                             mount=settings.mount)
    else:
        from orchestrator.baie.sftp import SftpTarget  # paramiko and asyncssh: only when used

        assert isinstance(baie, SftpBaie) and settings.key_file and settings.known_hosts
        user, key, append_only = baie.user, settings.key_file, baie.append_only
        if maintenance and append_only and baie.maintenance and settings.maintenance_key:
            user, key, append_only = baie.maintenance.user, settings.maintenance_key, False
        target = SftpTarget(
            settings.name, baie.host, user=user, key_file=key,
            known_hosts=settings.known_hosts, root=settings.root, port=baie.port,
            connections=baie.connections, append_only=append_only,
        )
    if baie.bandwidth is not None:
        target = LimitTarget(target, baie.bandwidth.sustained_mbps, baie.bandwidth.burst_mbps)
    if retry:
        target = RetryTarget(target, sleep=sleep)
    if dry_run:
        target = DryRunTarget(target)
    return target
