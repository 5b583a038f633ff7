"""The heartbeat: an HTTP GET to ``msp.heartbeat_url`` after every scheduler cycle
(healthchecks.io, Uptime Kuma "push" monitors and the like), ``<url>/fail`` when the cycle
failed. Whatever happens to the ping is only logged: it never stops the scheduler."""

from __future__ import annotations

import logging
import urllib.error
import urllib.request

from orchestrator import __version__

log = logging.getLogger(__name__)


def ping(url: str, ok: bool, timeout_s: float = 10.0) -> bool:
    """Ping; True when the monitor answered 2xx."""
    target = url if ok else url.rstrip("/") + "/fail"
    request = urllib.request.Request(target, headers={"User-Agent": f"hvbackup/{__version__}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as answer:
            status: int = answer.status
    except (urllib.error.URLError, OSError, ValueError) as exc:
        log.warning("heartbeat to %s failed: %s", _shown(target), exc)
        return False
    if not 200 <= status < 300:
        log.warning("heartbeat to %s answered HTTP %d", _shown(target), status)
        return False
    return True


def _shown(url: str) -> str:
    """The URL without its path: heartbeat URLs carry their secret in the path."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}/…"
