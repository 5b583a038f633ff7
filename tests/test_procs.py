"""Asking whether a process runs must not disturb it."""

from __future__ import annotations

import os
import subprocess
import sys

from orchestrator.procs import pid_alive


def test_a_running_process_is_alive_and_a_finished_one_is_not() -> None:
    assert pid_alive(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert pid_alive(child.pid)
        assert child.poll() is None  # asked, not signalled
    finally:
        child.kill()
        child.wait()
    assert not pid_alive(child.pid)
