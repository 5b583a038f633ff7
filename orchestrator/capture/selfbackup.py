"""The orchestrator's own files, gathered for its self-backup.

A files job with ``prepare: orchestrator`` (on a ``transport: local`` host, usually of an MSP
"client") has its first path refreshed before it is read: the configuration, a consistent copy
of the history database (SQLite's online backup, or ``pg_dump``), and the key material the
orchestrator holds: public keys (clients', escrow), the baies' SSH keys and known_hosts, CA
files, ``*_file`` secrets and the dashboard's cookie key. Never a client's private key: the
orchestrator has none. MANIFEST.json says where each file came from, for the restore
(docs/restore-orchestrator.md). The folder is removed again once the run has read it. The
job's repository is encrypted like any other, with the key of the client it belongs to (the
MSP's own, kept offline).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import make_url

from orchestrator.config.load import LoadedConfig
from orchestrator.config.models import FilesJob, LocalBaie, SftpBaie
from orchestrator.errors import HistoryError, HvbError
from orchestrator.history.db import shown_url
from orchestrator.history.recorder import RunRecorder


@dataclass
class Staged:
    files: int
    bytes: int
    database: str  # how the history was copied


def key_material(loaded: LoadedConfig) -> dict[str, Path]:
    """What the configuration points at that a new orchestrator needs: name -> file."""
    config = loaded.config
    found: dict[str, Path] = {}

    def add(kind: str, owner: str, value: str | None) -> None:
        if value:
            path = loaded.resolve(value)
            found[f"{kind}/{owner}-{path.name}"] = path

    add("keys", "msp-escrow", config.msp.escrow_public_key_file)
    for name, baie in config.baies.items():
        if isinstance(baie, SftpBaie):
            add("baies", name, baie.key_file)
            add("baies", name, baie.known_hosts)
        assert isinstance(baie, SftpBaie | LocalBaie)
    if config.smtp is not None:
        add("smtp", "relay", config.smtp.ca_file)
        add("secrets", "smtp", config.smtp.password_file)
    for key, client in config.clients.items():
        if client.encryption is not None:
            add("keys", key, client.encryption.public_key_file)
        for host_name, host in client.hosts.items():
            if host.winrm is not None:
                add("hosts", f"{key}-{host_name}", host.winrm.ca_file)
                add("secrets", f"{key}-{host_name}", host.winrm.password_file)
    dashboard = loaded.state_dir / "dashboard-secret"
    if dashboard.exists():
        found["secrets/dashboard-secret"] = dashboard
    return found


def stage(loaded: LoadedConfig, folder: Path, now: datetime) -> Staged:
    """Refresh ``folder`` with the orchestrator's files (made anew; written 0600)."""
    tmp = folder.with_name(folder.name + ".new")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True, mode=0o700)
    manifest: dict[str, object] = {"made_at": now.isoformat(), "config": str(loaded.path),
                                   "state_dir": str(loaded.state_dir), "files": {}}
    files: dict[str, str] = {}
    shutil.copy2(loaded.path, tmp / "config.yaml")
    files["config.yaml"] = str(loaded.path)
    database = _copy_history(loaded.database_url, tmp)
    files[database] = shown_url(loaded.database_url) if database.endswith(".pgdump") else str(
        make_url(loaded.database_url).database)  # never the database password
    for name, source in key_material(loaded).items():
        if not source.is_file():
            raise HvbError(f"self-backup: {source} (named by the configuration) is missing; "
                           "fix the configuration or restore the file, then run again")
        (tmp / name).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        shutil.copy2(source, tmp / name)
        files[name] = str(source)
    manifest["files"] = files
    (tmp / "MANIFEST.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    total = 0
    for path in tmp.rglob("*"):
        if path.is_file():
            path.chmod(0o600)
            total += path.stat().st_size
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return Staged(len(files) + 1, total, database)


def unstage(folder: Path) -> None:
    """Remove the gathered files once read: they hold copies of secrets and of the history."""
    shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(folder.with_name(folder.name + ".new"), ignore_errors=True)


def _copy_history(url: str, into: Path) -> str:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database:
            raise HistoryError("self-backup: the history database is in memory; nothing to save")
        source = sqlite3.connect(f"file:{parsed.database}?mode=ro", uri=True)
        target = sqlite3.connect(into / "history.sqlite")
        try:
            source.backup(target)  # a consistent copy while the scheduler writes
        finally:
            target.close()
            source.close()
        return "history.sqlite"
    if parsed.get_backend_name() == "postgresql":
        pg_dump = shutil.which("pg_dump")
        if pg_dump is None:
            raise HistoryError("self-backup: pg_dump is needed to save a PostgreSQL history; "
                               "install the PostgreSQL client (Debian: postgresql-client)")
        plain = parsed.set(drivername="postgresql")
        done = subprocess.run(
            [pg_dump, "--format=custom", "--no-owner", "--file", str(into / "history.pgdump"),
             "--dbname", plain.render_as_string(hide_password=False)],
            capture_output=True, text=True, timeout=6 * 3600, check=False)
        if done.returncode != 0:
            raise HistoryError(f"self-backup: pg_dump failed: {done.stderr.strip()[:500]}")
        return "history.pgdump"
    raise HistoryError(f"self-backup: no way to copy a {parsed.get_backend_name()} history")


@contextmanager
def gathered(loaded: LoadedConfig, job: FilesJob, recorder: RunRecorder,
             now: datetime) -> Iterator[None]:
    """For a ``prepare: orchestrator`` job, its first path holds the orchestrator's files while
    the run reads it, and never after (copies of secrets do not linger on disk); other jobs:
    nothing to do."""
    if job.prepare != "orchestrator":
        yield
        return
    folder = Path(job.paths[0])
    try:
        with recorder.step("gather orchestrator files", job.paths[0]) as figures:
            staged = stage(loaded, folder, now)
            figures.files, figures.bytes_read = staged.files, staged.bytes
            figures.details = {"database": staged.database}
        yield
    finally:
        unstage(folder)
