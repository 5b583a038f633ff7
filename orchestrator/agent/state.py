"""What an enrolled agent keeps in its state folder: which server, which site, its token.

``agent.json`` holds the server's address, the CA file, the site and the agent's name;
``agent-token`` holds the token alone, readable by the agent's account only (0600). The spool
(``spool.db``) sits beside them.
"""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

from orchestrator.config.load import default_state_dir
from orchestrator.errors import UsageError
from orchestrator.private import private_dir

STATE_FILE = "agent.json"
TOKEN_FILE = "agent-token"
SPOOL_FILE = "spool.db"


@dataclass(frozen=True)
class AgentState:
    server: str
    site: str
    name: str
    ca_file: str | None

    @property
    def ca_path(self) -> Path | None:
        return Path(self.ca_file) if self.ca_file else None


def agent_dir(value: str | None) -> Path:
    """The agent's state folder: ``--state-dir``, else ``agent`` in the platform's state
    folder (so that an agent on the central server keeps apart from it). Made absolute: the
    folder is the base of the part's relative paths, its own included."""
    return Path(value).absolute() if value else default_state_dir() / "agent"


def server_url(value: str) -> str:
    """The server's address, https (plain http only to this machine: a token would cross
    the network in clear)."""
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise UsageError(f"--server {value!r} is not an address such as "
                         "https://sauvegardes.msp.example")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise UsageError(f"--server {value!r}: plain http would send the agent's token in "
                         "clear; use https")
    return value.rstrip("/")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def save(folder: Path, state: AgentState, token: str) -> None:
    private_dir(folder)
    token_path = folder / TOKEN_FILE
    tmp = token_path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token + "\n")
    tmp.replace(token_path)
    (folder / STATE_FILE).write_text(json.dumps(asdict(state), indent=2) + "\n",
                                     encoding="utf-8")


def load(folder: Path) -> tuple[AgentState, str]:
    """The agent's state and token; raises ServerRefused when the agent is not enrolled."""
    try:
        raw = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
        token = (folder / TOKEN_FILE).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise UsageError(f"no agent is enrolled in {folder}: run 'hvbackup agent enroll "
                         "--server URL --token TOKEN' first (or give the --state-dir it was "
                         "enrolled with)") from None
    return AgentState(**raw), token
