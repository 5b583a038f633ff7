"""Real servers started by the tests themselves, on free loopback ports."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(port: int, proc: subprocess.Popen[bytes], what: str, log: Path,
                  timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited ({proc.returncode}): {log.read_text()[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    proc.kill()
    pytest.fail(f"{what} did not listen on {port} within {timeout} s: {log.read_text()[-2000:]}")


@dataclass
class SambaServer:
    port: int
    share: str
    folder: Path
    user: str
    password: str


SMB_USER = "hvbsmbtest"


@contextmanager
def samba(root: Path) -> Iterator[SambaServer]:
    """An smbd serving ``root/share`` as share ``data`` on 127.0.0.1, user ``hvbsmbtest``."""
    smbd = shutil.which("smbd") or "/usr/sbin/smbd"
    smbpasswd = shutil.which("smbpasswd") or "/usr/bin/smbpasswd"
    if not (os.path.exists(smbd) and os.path.exists(smbpasswd)):
        pytest.fail("Samba is not installed: run `make services` (make test does it)")
    try:
        pwd.getpwnam(SMB_USER)
    except KeyError:
        subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        SMB_USER], check=True)
    port = free_port()
    folder = root / "share"
    folder.mkdir(parents=True)
    shutil.chown(folder, SMB_USER)
    for sub in ("private", "lock", "state", "cache", "pid", "ncalrpc"):
        (root / sub).mkdir()
    conf = root / "smb.conf"
    conf.write_text(f"""
[global]
    server role = standalone server
    interfaces = 127.0.0.1
    bind interfaces only = yes
    smb ports = {port}
    disable netbios = yes
    server min protocol = SMB2
    private dir = {root}/private
    lock directory = {root}/lock
    state directory = {root}/state
    cache directory = {root}/cache
    pid directory = {root}/pid
    ncalrpc dir = {root}/ncalrpc
    passdb backend = tdbsam:{root}/private/passdb.tdb
    log file = {root}/smbd.log
    log level = 1
    map to guest = never
    load printers = no
    printing = bsd
    printcap name = /dev/null
    disable spoolss = yes

[data]
    path = {folder}
    read only = no
    valid users = {SMB_USER}
    # pytest's temporary folders are private to root: read them as root.
    force user = root
""")
    password = "Smb-test-9f3a"
    subprocess.run([smbpasswd, "-c", str(conf), "-a", "-s", SMB_USER],
                   input=f"{password}\n{password}\n".encode(), check=True, capture_output=True)
    log = root / "smbd.log"
    log.touch()
    # Its own session: smbd signals its whole process group when it stops.
    proc = subprocess.Popen([smbd, "--foreground", "--no-process-group", "-s", str(conf)],
                            start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, proc, "smbd", log)
        yield SambaServer(port, "data", folder, SMB_USER, password)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
