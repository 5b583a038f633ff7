"""The test world most tests share, like healthchecks' one base test world: an MSP with
one client, ``acme``, whose simulated Hyper-V host ``hv01`` holds two VMs, a SQL Server
instance and a file share; three jobs on it (``erp``, ``compta``, ``partages``); two local
baies (``site-a``, ``site-b``) that every backup is copied to; a history database with the
configuration synced into it; a frozen clock, and sleeps recorded instead of slept.

``Setup(tmp_path)`` builds all of it under ``tmp_path``; the keyword arguments change one thing
(faults injected on the host, the VM job's consistency, the start time, the simulated host,
extra lines of the SQL job or of the VM job).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from orchestrator.clock import FrozenClock
from orchestrator.config import load_config
from orchestrator.history.db import open_engine, session_factory, upgrade
from orchestrator.history.models import RunRow, RunStepRow
from orchestrator.history.sync import sync_config
from orchestrator.hosts.open import open_host
from orchestrator.jobs.context import RunContext
from orchestrator.jobs.run import run_job
from orchestrator.store.keys import generate_private_key, write_key_file
from orchestrator.store.open import open_for_reading
from orchestrator.store.restore import Restorer
from tests.conftest import write_config

CONFIG = """\
version: 1
state_dir: {root}/state
msp:
  name: MSP
  hotline: [hotline@msp.example]
baies:
  site-a: {{type: local, path: {root}/baie-a}}
  site-b: {{type: local, path: {root}/baie-b}}
clients:
  acme:
    name: ACME
    contacts: [it@acme.example]
    encryption: {{public_key_file: {root}/acme.pub}}
    copies: [site-a, site-b]
    hosts:
      hv01:
        address: hv01
        transport: simulated
        simulated: {{{simulated}, faults: [{faults}]}}
    jobs:
      erp:
        type: hyperv-vm
        host: hv01
        vms: [ERP01, DC01]
        consistency: {consistency}
        schedule: "daily 22:00"
        retries: 1{vm}
      compta:
        type: sql-server
        host: hv01
        instance: 'SQL01\\COMPTA'
        databases: [all]
        schedule: "daily 23:00"{sql}
      partages:
        type: files
        host: hv01
        paths: ['D:\\Partages']
        exclude: ['*-00001.txt']
        schedule: "daily 21:00"
"""


SIMULATED = "seed: 4, vm_disk_mb: 4, share_files: 30"  # the simulated host of CONFIG


class Setup:
    def __init__(self, root: Path, faults: str = "", consistency: str = "application",
                 start: datetime = datetime(2026, 11, 23, 21, 0, tzinfo=UTC),
                 simulated: str = SIMULATED,
                 sql: str = "", vm: str = "") -> None:
        self.root = root
        for baie in ("baie-a", "baie-b"):  # the arrays are mounted
            (root / baie).mkdir(parents=True, exist_ok=True)
        self.key = generate_private_key()
        write_key_file(root / "acme.key", self.key, "passphrase of acme", "acme")
        (root / "acme.pub").write_text(self.key.public.text() + "\n")
        self.config = write_config(root, CONFIG.format(root=root, faults=faults,
                                                       consistency=consistency,
                                                       simulated=simulated, sql=sql,
                                                       vm=vm))
        self.loaded = load_config(self.config)
        self.clock = FrozenClock(start)
        engine = open_engine(self.loaded.database_url)
        upgrade(engine)
        self.sessions = session_factory(engine)
        with self.sessions() as session, session.begin():
            sync_config(session, self.loaded, self.clock.now(), "test")
        self.sleeps: list[float] = []
        self.ctx = RunContext(self.loaded, self.clock, self.sessions, sleep=self.sleeps.append)

    def reload(self) -> None:
        """Read the configuration file again (after a test edited it)."""
        self.loaded = load_config(self.config)
        self.ctx.loaded = self.loaded

    def run(self, job: str) -> Any:
        return run_job(self.ctx, self.loaded.job(f"acme/{job}"), trigger="schedule")

    def host(self) -> Any:
        return open_host(self.loaded.host("acme/hv01"), self.clock)

    def steps(self, uid: str) -> list[tuple[str, str | None, str]]:
        with self.sessions() as session:
            run = session.scalars(select(RunRow).where(RunRow.uid == uid)).one()
            return [(s.name, s.object, s.status) for s in session.scalars(
                select(RunStepRow).where(RunStepRow.run_id == run.id).order_by(RunStepRow.seq))]

    def restore(self, job: str, to: Path, baie: str = "site-a") -> None:
        repo = open_for_reading(self.loaded.repository("acme", baie), self.key,
                                self.root / f"rc-{baie}")
        repo.sync_index()
        Restorer(repo, self.key).restore(repo.find_snapshot("latest", job=job), to)
        repo.close()
