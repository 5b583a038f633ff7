"""Real servers started by the tests themselves, on free loopback ports."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
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


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@dataclass
class SambaServer:
    port: int
    share: str
    folder: Path
    user: str
    password: str
    run_share: str = "hvb-run1-1$"  # a per-run share, granted to ``user`` only
    run_folder: Path | None = None
    # The staging shares of one run (Invoke-HvbSqlBackup, New-HvbCheckpoint -Mode export),
    # granted to ``user`` only: share name -> the folder behind it.
    staging_shares: dict[str, Path] | None = None
    admin_share: str = "D$"  # an administrative share: administrators only
    # A per-run shadow-copy share read with the account's own rights (no "force user"): each
    # file's permissions apply on top of the share's Read, as NTFS ACLs do on Windows. Files
    # left to their owner (root, mode 0600/0700) stand for entries whose inheritance is
    # disabled; the others (0644/0755) for what inherits onboarding's Read ACE.
    ntfs_share: str = "hvb-run2-1$"
    ntfs_folder: Path | None = None


SMB_USER = "hvbsmbtest"


@contextmanager
def samba(root: Path) -> Iterator[SambaServer]:
    """An smbd serving ``root/share`` as share ``data`` on 127.0.0.1, user ``hvbsmbtest``.

    It keeps the rules a Windows host applies to the account onboarding creates: the
    administrative share ``D$`` is refused to it (not an administrator; remote UAC), a per-run
    share ``hvb-run1-1$`` is granted to it alone, and links are not followed by the server
    (a Windows server leaves symbolic links to the client, MS-SMB2 2.2.2.2.1, and a link to a
    local device cannot be followed from another machine)."""
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
    run_folder, admin_folder = root / "run-share", root / "admin-D"
    run_folder.mkdir()
    admin_folder.mkdir()
    staging = {"hvb-run1-sql$": root / "staging-run1-sql", "hvb-run1-vm$": root / "staging-run1-vm"}
    for where in staging.values():
        where.mkdir()
    # Outside pytest's folders (private to root): the account must reach it as itself.
    ntfs_folder = Path(tempfile.mkdtemp(prefix="hvb-samba-ntfs-"))
    ntfs_folder.chmod(0o755)
    staging_conf = "".join(f"""
[{name}]
    path = {where}
    read only = yes
    browseable = no
    valid users = {SMB_USER}
    force user = root
""" for name, where in staging.items())
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
    follow symlinks = no

[data]
    path = {folder}
    read only = no
    valid users = {SMB_USER}
    # pytest's temporary folders are private to root: read them as root.
    force user = root

[hvb-run1-1$]
    path = {run_folder}
    read only = yes
    browseable = no
    valid users = {SMB_USER}
    force user = root

{staging_conf}
[hvb-run2-1$]
    path = {ntfs_folder}
    read only = yes
    browseable = no
    valid users = {SMB_USER}

[D$]
    path = {admin_folder}
    read only = yes
    browseable = no
    # Administrators only: the test account is not one.
    valid users = root
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
        yield SambaServer(port, "data", folder, SMB_USER, password, run_folder=run_folder,
                          staging_shares=staging, ntfs_folder=ntfs_folder)
    finally:
        stop(proc)
        shutil.rmtree(ntfs_folder, ignore_errors=True)


@dataclass
class SshServer:
    port: int
    user: str
    key_file: Path
    known_hosts: Path
    root: Path  # a folder the tests may use as the baie
    sftp_log: Path | None = None  # each SFTP request, when sshd(sftp_flags=...) asked for it


@contextmanager
def sshd(workdir: Path, *, sftp_flags: str | None = None) -> Iterator[SshServer]:
    """OpenSSH's sshd on 127.0.0.1, key authentication for the current user, internal-sftp.
    With ``sftp_flags`` (``""``, or ``-P fsync`` to refuse a request) the subsystem is the
    sftp-server program instead, logging each request to ``SshServer.sftp_log``."""
    sshd_bin = "/usr/sbin/sshd"
    if not os.path.exists(sshd_bin):
        pytest.fail("OpenSSH server is not installed: run `make services` (make test does it)")
    workdir.mkdir(parents=True, exist_ok=True)
    for name in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                        str(workdir / name)], check=True)
    (workdir / "authorized_keys").write_text((workdir / "client_key.pub").read_text())
    port = free_port()
    host_pub = (workdir / "host_key.pub").read_text().split()
    known = workdir / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    user = pwd.getpwuid(os.getuid()).pw_name
    sftp_log = workdir / "sftp-server.log"
    subsystem = "internal-sftp" if sftp_flags is None else (
        f"/usr/lib/openssh/sftp-server {sftp_flags} -e -l VERBOSE 2>>{sftp_log}")
    config = workdir / "sshd_config"
    config.write_text(f"""
Port {port}
ListenAddress 127.0.0.1
HostKey {workdir / 'host_key'}
PidFile {workdir / 'sshd.pid'}
AuthorizedKeysFile {workdir / 'authorized_keys'}
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
Subsystem sftp {subsystem}
LogLevel ERROR
""")
    Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory
    log = workdir / "sshd.log"
    log.touch()
    with log.open("wb") as out:
        proc = subprocess.Popen([sshd_bin, "-D", "-e", "-f", str(config)], stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    root = workdir / "baie"
    root.mkdir()
    try:
        wait_for_port(port, proc, "sshd", log)
        yield SshServer(port, user, workdir / "client_key", known, root, sftp_log)
    finally:
        stop(proc)
