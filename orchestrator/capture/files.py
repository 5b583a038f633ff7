"""Folders: a shadow copy on Windows hosts (files open in applications are read as they were
at one instant, writers involved), read through the per-run share the host made of it for
the connected account, then removed; on a local host, read in place."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from orchestrator.capture import Exposed
from orchestrator.config.models import FilesJob
from orchestrator.findings import FilesUnreadable
from orchestrator.history.recorder import RunRecorder
from orchestrator.hosts.session import HostSession


def uses_vss(job: FilesJob, transport: str) -> bool:
    """A shadow copy unless the job says otherwise: on by default on Windows hosts, off on the
    orchestrator's own machine (``transport: local``), which has no VSS."""
    return job.vss if job.vss is not None else transport != "local"


def excluded(job: FilesJob) -> Callable[[str], bool] | None:
    """Whether a file is left out, by its name against the job's ``exclude`` patterns."""
    patterns = list(job.exclude)
    if not patterns:
        return None

    def skip(name: str) -> bool:
        base = name.replace("\\", "/").rsplit("/", 1)[-1]
        return any(fnmatch.fnmatch(base, p) for p in patterns)

    return skip


SHOWN_DENIED = 20  # names in the hotline's message; the run's read step keeps 100


def files_unreadable(obj: str, denied: list[str]) -> FilesUnreadable:
    """The warning for the files of ``obj`` that the account may not read (their NTFS ACL
    refuses it: inheritance disabled, or an explicit deny), naming them for the hotline."""
    shown = ", ".join(denied[:SHOWN_DENIED])
    more = f" and {len(denied) - SHOWN_DENIED} more" if len(denied) > SHOWN_DENIED else ""
    return FilesUnreadable(
        obj, "HVB-SOURCE-DENIED",
        f"{len(denied)} file(s) or folder(s) not backed up, their NTFS permissions refusing the "
        f"backup account: {shown}{more}. Give that account Read on them (or let them inherit "
        "from the folder the onboarding granted, Initialize-HvbHost.ps1 -ShareRoot), or "
        "exclude them")


@contextmanager
def shadow_copy(host: HostSession, recorder: RunRecorder, paths: list[str], run_uid: str,
                use_vss: bool, owner: str = "hvbackup") -> Iterator[list[Exposed]]:
    """``owner`` (the job) lets another job's sweep on the host leave this copy alone."""
    if not use_vss:
        yield [Exposed(p, p, p) for p in paths]
        return
    with recorder.step("shadow copy", ", ".join(paths)) as figures:
        made = host.run("New-HvbShadowCopy", Path=paths, RunId=run_uid, Owner=owner)
        figures.details = {"shadows": [s["id"] for s in made["shadows"]]}
    try:
        yield [Exposed(p["exposed"], p["path"], p["path"]) for p in made["paths"]]
    finally:
        with recorder.step("remove shadow copy", ", ".join(paths)):
            host.run("Remove-HvbShadowCopy", ShadowId=[s["id"] for s in made["shadows"]],
                     RunId=run_uid,
                     LinkPath=[s["link"] for s in made["shadows"]],
                     ShareName=[s["share"] for s in made["shadows"]])
