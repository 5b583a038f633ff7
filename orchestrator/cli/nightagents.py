"""Site agents in simulated nights (``hvbackup nights --agent DIR``, the demo's second site).

Each agent is a process of its own, as on a site's machine: ``hvbackup agent run --once --at
WHEN --state-dir DIR`` at each scheduled time of its site's jobs, and when the server comes
back after a stop. The server's agent API is served on the simulated clock at the loopback
address the agent enrolled with; it is down while the scheduler is ``--stopped`` (the central
server stopped that night): the agent runs its jobs all the same and its runs wait in its
spool until the server answers again.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from orchestrator.agent import state as agent_state
from orchestrator.clock import SimulatedClock
from orchestrator.config.load import LoadedConfig
from orchestrator.errors import UsageError
from orchestrator.jobs.night import due_runs

AGENT_TIMEOUT_S = 900


@dataclass(frozen=True)
class NightAgent:
    folder: Path
    name: str
    site: str
    host: str
    port: int


def night_agents(loaded: LoadedConfig, folders: list[str]) -> list[NightAgent]:
    """The enrolled agents of ``folders``, each served on one loopback port; raises
    UsageError naming what is wrong."""
    found: list[NightAgent] = []
    for value in folders:
        folder = Path(value).resolve()
        enrolled, _token = agent_state.load(folder)
        url = urlsplit(enrolled.server)
        if url.scheme != "http" or url.hostname not in ("127.0.0.1", "localhost", "::1") \
                or url.port is None:
            raise UsageError(f"--agent {value}: enrolled with {enrolled.server}; simulated "
                             "nights serve the agents' server themselves, on the loopback "
                             "address the agent enrolled with (http://127.0.0.1:PORT)")
        if loaded.site_jobs(enrolled.site) is None:
            raise UsageError(f"--agent {value}: its site {enrolled.site!r} is not in "
                             f"{loaded.path}")
        found.append(NightAgent(folder, enrolled.name, enrolled.site, url.hostname, url.port))
    if len({(a.host, a.port) for a in found}) > 1:
        raise UsageError("--agent: the agents must be enrolled with the same server address")
    return found


def agent_instants(loaded: LoadedConfig, agent: NightAgent, start: datetime, end: datetime,
                   comebacks: list[datetime]) -> list[datetime]:
    """When the agent runs: its site's scheduled times, and when the server is back."""
    jobs = loaded.site_jobs(agent.site) or frozenset()
    ours = [ref for ref in loaded.jobs() if (ref.client_name, ref.job_name) in jobs]
    found = {due.scheduled_for for due in due_runs(ours, loaded.config.msp.timezone, start,
                                                   end)}
    found |= set(comebacks)
    return sorted(t for t in found if start < t <= end)


def run_agent(agent: NightAgent, when: datetime) -> tuple[int, list[str]]:
    """One cycle of the agent's own process at ``when``; its exit code and what it said."""
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli.main", "agent", "run", "--once", "--at",
         when.isoformat(), "--state-dir", str(agent.folder)], capture_output=True, text=True,
        timeout=AGENT_TIMEOUT_S, check=False, env=dict(os.environ))
    lines = [line.strip() for line in (done.stdout + done.stderr).splitlines()
             if line.strip()]
    return done.returncode, lines


class ServedApi:
    """The central server's app on a loopback port, started and stopped at will (the
    server up or down in the simulated nights), on the nights' clock."""

    def __init__(self, loaded: LoadedConfig, sessions: Any, clock: SimulatedClock,
                 host: str, port: int) -> None:
        from orchestrator.dashboard.app import DashboardSettings, create_app
        from orchestrator.dashboard.auth import session_secret

        settings = DashboardSettings(
            sessions=sessions, timezone=loaded.config.msp.timezone,
            language=loaded.config.msp.language, now=clock.now,
            secret=session_secret(loaded.state_dir, dict(os.environ)), secure_cookies=False,
            config=loaded)
        self.app = create_app(settings)
        self.host, self.port = host, port
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def up(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        import uvicorn

        if self._server is not None:
            return
        server = uvicorn.Server(uvicorn.Config(self.app, host=self.host, port=self.port,
                                               log_level="warning", access_log=False,
                                               lifespan="off"))
        self._thread = threading.Thread(target=server.run, name="agents-api", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise UsageError(f"the agents' server could not listen on "
                                 f"{self.host}:{self.port} (is the port taken?)")
            time.sleep(0.02)
        self._server = server

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(30)
        self._server, self._thread = None, None
