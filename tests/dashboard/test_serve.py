"""`hvbackup serve` as a technician starts it: it answers, sends people to the login page,
and keeps its cookie-signing key in the state directory, readable by its account only."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.conftest import REPO
from tests.servers import free_port
from tests.world import Setup


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def test_serve_answers_and_keeps_its_key_private(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator.cli.main", "serve", "-c",
                             str(s.config), "--port", str(port)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=2) as answer:
                    assert answer.read() == b"ok\n"
                    break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        else:
            raise AssertionError("hvbackup serve did not answer")
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            opener.open(f"{base}/", timeout=5)
            raise AssertionError("the home page answered without a login")
        except urllib.error.HTTPError as exc:
            assert exc.code == 303 and exc.headers["location"] == "/login?next=%2F"
        secret = tmp_path / "state" / "dashboard-secret"
        assert secret.stat().st_mode & 0o777 == 0o600 and len(secret.read_text()) >= 40
    finally:
        proc.terminate()
        out, _err = proc.communicate(timeout=20)
    assert f"hvbackup dashboard on http://127.0.0.1:{port}/" in out
