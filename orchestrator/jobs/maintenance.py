"""Maintenance, once a day after the night: retention on every copy then prune, and the
destruction of the data of contracts that ended 30 days ago."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from orchestrator.baie.target import is_append_only
from orchestrator.config.models import CENTRAL_SITE
from orchestrator.errors import HvbError
from orchestrator.jobs.context import RunContext
from orchestrator.jobs.offboard import Destruction, destroy_due, offboarded
from orchestrator.jobs.quota import measure_and_judge
from orchestrator.jobs.retention import apply_retention
from orchestrator.store.open import NoRepository, open_for_writing
from orchestrator.store.prune import PruneReport, prune

log = logging.getLogger(__name__)

MAINTENANCE_HOUR = 11  # MSP time: after the night's runs and the morning's reports


@dataclass
class Pruned:
    client: str
    forgotten: int  # restore points let go by retention
    baies: dict[str, PruneReport] = field(default_factory=dict)


def prune_client(ctx: RunContext, client: str, now: datetime, *, dry_run: bool) -> Pruned:
    """Retention of each of the client's jobs on every copy, then prune of each of its baies.
    Raises HvbError (a baie away, a lock held too long)."""
    loaded = ctx.loaded
    done = Pruned(client, 0)
    baies: list[str] = []
    # A dry run forgets nothing: the prune that follows counts as gone what retention would
    # forget, so that it says what the real one will delete.
    forgetting: dict[str, set[str]] = {}
    for ref in loaded.jobs():
        if ref.client_name != client:
            continue
        decisions = apply_retention(loaded, ref, ctx.sessions, now, dry_run=dry_run,
                                    sleep=ctx.sleep, maintenance=True,
                                    forgetting=forgetting)
        done.forgotten += sum(not d.keep for d in decisions)
        baies += [b for b in loaded.copies_of(ref.client, ref.job) if b not in baies]
    for baie in baies:
        try:
            repo = open_for_writing(loaded.repository(client, baie), create=False,
                                    sleep=ctx.sleep, maintenance=True)
        except NoRepository:
            continue
        if is_append_only(repo.target):
            log.warning("%s: not pruned: the baie's access is append-only and it names no "
                        "maintenance access (docs/baie-setup.md)", baie)
            repo.close()
            continue
        try:
            done.baies[baie] = prune(repo, dry_run=dry_run,
                                     forgotten=forgetting.get(baie, set()) if dry_run else None)
        finally:
            repo.close()
    return done


@dataclass
class Maintained:
    pruned: list[Pruned] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # client -> why its prune failed
    destroyed: list[Destruction] = field(default_factory=list)


def _measure_agent_client(ctx: RunContext, client: str, now: datetime) -> None:
    """A client backed up by a site's agent: its volume measured here, once a day after the
    prune (the agent measures on its own machine, for its own history): the reports, the
    dashboard and the quota contract read the server's history."""
    settings = ctx.loaded.config.clients[client]
    if all(host.site == CENTRAL_SITE for host in settings.hosts.values()):
        return  # measured after each of its runs, here
    baies = sorted({b for job in settings.jobs.values() for b in job.copies or settings.copies
                    or []})
    try:
        measure_and_judge(ctx.sessions, ctx.loaded, client, baies, now)
    except HvbError as exc:
        log.warning("volume of %s not measured: %s", client, exc)


def maintain(ctx: RunContext, now: datetime, actor: str = "scheduler") -> Maintained:
    """Prune every client whose contract runs, then destroy what is due. Never raises: what
    failed is logged and returned, and tried again the next day."""
    loaded = ctx.loaded
    today = now.astimezone(loaded.config.msp.timezone).date()
    done = Maintained()
    for client in loaded.config.clients:
        if offboarded(ctx.sessions, client, today):
            continue  # nothing more is written for an ended contract
        try:
            done.pruned.append(prune_client(ctx, client, now, dry_run=False))
        except HvbError as exc:
            done.failed[client] = exc.message
            log.warning("prune of %s failed: %s", client, exc)
        _measure_agent_client(ctx, client, now)
    try:
        done.destroyed = destroy_due(loaded, ctx.sessions, now, actor)
    except HvbError as exc:
        log.warning("destroying ended contracts failed: %s", exc)
    for item in done.destroyed:
        log.warning("contract ended 30 days ago: destroyed %s on %s (%d files)",
                    item.client, item.baie, item.files)
    return done
