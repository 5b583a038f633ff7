"""The one door from a site agent to the central server: HTTPS with httpx.

TLS is always verified: against the system's authorities, or against the private CA file
given at enrollment (``--ca-file``). httpx exceptions stop here: a server that cannot be
reached is :class:`ServerUnreachable` (retryable, the spool keeps what waits), a refused
token is :class:`ServerRefused` (permanent), anything else the protocol does not expect is
:class:`ServerError`. The agent token is sent in a header and never logged.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path
from typing import Any, Protocol

import httpx

from orchestrator.agent.protocol import (
    PREFIX,
    ConfigOut,
    EnrollIn,
    EnrollOut,
    HeartbeatIn,
    HeartbeatOut,
    RunIn,
    RunOut,
    RunRequestOut,
    WriterKeysOut,
)
from orchestrator.errors import ServerError, ServerRefused, ServerUnreachable

log = logging.getLogger(__name__)

TIMEOUT_S = 30.0


class RunRefused(Exception):
    """The server refused one run for good (not one of the site's jobs, a uid clash, a body
    it rejects); the other runs are not concerned. Kept with the run in the spool, never
    raised past the delivery."""


class Server(Protocol):
    """What an agent asks of the central server (docs/agents.md, "Protocol")."""

    def config(self) -> ConfigOut: ...
    def post_run(self, run: RunIn) -> RunOut: ...
    def run_requests(self) -> list[RunRequestOut]: ...
    def heartbeat(self, beat: HeartbeatIn) -> HeartbeatOut: ...
    def writer_keys(self) -> WriterKeysOut: ...


def _verify(ca_file: Path | None) -> ssl.SSLContext | bool:
    if ca_file is None:
        return True
    try:
        return ssl.create_default_context(cafile=str(ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise ServerUnreachable(f"the CA file {ca_file} cannot be used: {exc}",
                                permanent=True) from None


def _client(base_url: str, ca_file: Path | None, token: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=base_url.rstrip("/"), verify=_verify(ca_file),
                        timeout=TIMEOUT_S, headers=headers, follow_redirects=False)


def _send(client: httpx.Client, method: str, path: str, body: Any = None) -> httpx.Response:
    url = f"{PREFIX}{path}"
    try:
        return client.request(method, url, json=body)
    except httpx.ConnectError as exc:
        reason = str(exc) or type(exc).__name__
        if "CERTIFICATE_VERIFY_FAILED" in reason:
            raise ServerUnreachable(
                f"the certificate of {client.base_url} is not trusted ({reason}); give the CA "
                "that signed it with --ca-file") from None
        raise ServerUnreachable(f"{client.base_url} does not answer: {reason}") from None
    except httpx.TimeoutException:
        raise ServerUnreachable(f"{client.base_url} did not answer within {TIMEOUT_S:g} s"
                                ) from None
    except httpx.HTTPError as exc:
        raise ServerUnreachable(f"{client.base_url}: {type(exc).__name__}: {exc}") from None


def _detail(answer: httpx.Response) -> str:
    try:
        detail = answer.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    return str(detail) if detail else answer.text[:300]


def _check(answer: httpx.Response) -> httpx.Response:
    if answer.status_code == 401:
        raise ServerRefused(f"the server refused this agent: {_detail(answer)}")
    if answer.status_code >= 500:
        raise ServerUnreachable(f"the server failed ({answer.status_code}): {_detail(answer)}")
    if answer.status_code != 200:
        raise ServerError(f"the server answered {answer.status_code}: {_detail(answer)}")
    return answer


def enroll(base_url: str, ca_file: Path | None, request: EnrollIn) -> EnrollOut:
    """Spend an enrollment token; raises ServerRefused when it is unknown, used or expired."""
    with _client(base_url, ca_file, None) as client:
        answer = _check(_send(client, "POST", "/enroll", request.model_dump(mode="json")))
    return EnrollOut.model_validate(answer.json())


class HttpServer:
    """The central server at ``base_url``, as agent ``token``."""

    def __init__(self, base_url: str, ca_file: Path | None, token: str) -> None:
        self._client = _client(base_url, ca_file, token)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HttpServer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def config(self) -> ConfigOut:
        return ConfigOut.model_validate(_check(_send(self._client, "GET", "/config")).json())

    def post_run(self, run: RunIn) -> RunOut:
        answer = _send(self._client, "POST", "/runs", run.model_dump(mode="json"))
        if answer.status_code in (403, 409, 422):
            raise RunRefused(f"run {run.uid} refused ({answer.status_code}): {_detail(answer)}")
        return RunOut.model_validate(_check(answer).json())

    def run_requests(self) -> list[RunRequestOut]:
        answer = _check(_send(self._client, "GET", "/run-requests"))
        return [RunRequestOut.model_validate(r) for r in answer.json()]

    def heartbeat(self, beat: HeartbeatIn) -> HeartbeatOut:
        answer = _check(_send(self._client, "POST", "/heartbeat", beat.model_dump(mode="json")))
        return HeartbeatOut.model_validate(answer.json())

    def writer_keys(self) -> WriterKeysOut:
        return WriterKeysOut.model_validate(_check(_send(self._client, "GET",
                                                         "/writer-keys")).json())
