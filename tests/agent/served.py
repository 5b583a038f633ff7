"""The central server's app under a real uvicorn, over TLS, on a free loopback port, in a
thread of the test (as httpx's own tests serve theirs); stopped when the block ends."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from tests.certs import self_signed
from tests.servers import free_port


@contextmanager
def serve_tls(app: FastAPI, folder: Path, port: int | None = None) -> Iterator[tuple[str, Path]]:
    """``(https://127.0.0.1:PORT, the CA file that verifies it)`` while inside."""
    cert = folder / "server.pem"
    if not cert.exists():
        cert, _key = self_signed(folder, "hvbackup central", "server")
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                            access_log=False, ssl_certfile=str(cert),
                            ssl_keyfile=str(folder / "server.key"))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"https://127.0.0.1:{port}", cert
    finally:
        server.should_exit = True
        thread.join(timeout=20)
