"""scripts/baie-setup.sh against a real OpenSSH sshd: the account it makes can only do SFTP,
only inside its chroot, only with the orchestrator's key, only from the pinned address; a
second run changes nothing; --remove undoes it and keeps the data unless --purge."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from tests.conftest import REPO
from tests.servers import free_port, wait_for_port

SCRIPT = REPO / "scripts" / "baie-setup.sh"


@pytest.fixture
def baie(tmp_path: Path) -> Iterator[dict[str, object]]:
    if os.geteuid() != 0:
        pytest.fail("these tests create a system account: run them as root (CI does)")
    tag = uuid.uuid4().hex[:6]
    root = Path(f"/srv/hvb-test-{tag}")  # sshd refuses a chroot under /tmp (world-writable)
    keys = Path(f"/srv/hvb-test-{tag}-keys")
    user = f"hvbt{tag}"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                    str(tmp_path / "orchestrator")], check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                    str(tmp_path / "host_key")], check=True)
    env = {"user": user, "root": root, "keys": keys, "tmp": tmp_path,
           "args": ["--user", user, "--root", str(root), "--keys-dir", str(keys),
                    "--sshd-config-dir", str(tmp_path / "sshd.d"), "--no-reload"]}
    yield env
    subprocess.run(["userdel", user], capture_output=True)
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(keys, ignore_errors=True)


def _setup(env: dict[str, object], *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), *env["args"], *extra],  # type: ignore[misc]
                          capture_output=True, text=True, timeout=60)


def _sshd(env: dict[str, object]) -> tuple[subprocess.Popen[bytes], int]:
    tmp = env["tmp"]
    assert isinstance(tmp, Path)
    port = free_port()
    snippet = tmp / "sshd.d" / f"hvbackup-{env['user']}.conf"
    config = tmp / "sshd_config"
    config.write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {tmp / 'host_key'}
PidFile {tmp / 'sshd.pid'}
UsePAM no
StrictModes yes
PasswordAuthentication no
Subsystem sftp internal-sftp
LogLevel VERBOSE
Include {snippet}
""")
    Path("/run/sshd").mkdir(exist_ok=True)
    log = tmp / "sshd.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(config)], stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    wait_for_port(port, proc, "sshd", log)
    return proc, port


def _connect(env: dict[str, object], port: int) -> paramiko.SSHClient:
    tmp = env["tmp"]
    assert isinstance(tmp, Path)
    client = paramiko.SSHClient()
    host_pub = (tmp / "host_key.pub").read_text().split()
    client.get_host_keys().add(f"[127.0.0.1]:{port}", host_pub[0],
                               paramiko.Ed25519Key(data=__import__("base64").b64decode(
                                   host_pub[1])))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect("127.0.0.1", port=port, username=str(env["user"]),
                   key_filename=str(tmp / "orchestrator"), look_for_keys=False,
                   allow_agent=False, timeout=10)
    return client


def test_sftp_only_chrooted_key_pinned(baie: dict[str, object]) -> None:
    tmp = baie["tmp"]
    assert isinstance(tmp, Path)
    key = str(tmp / "orchestrator.pub")
    first = _setup(baie, "--key", key, "--from", "127.0.0.1")
    assert first.returncode == 0, first.stderr
    assert f"created account {baie['user']}" in first.stdout
    again = _setup(baie, "--key", key, "--from", "127.0.0.1")
    assert again.returncode == 0 and "kept account" in again.stdout and "wrote" not in again.stdout
    assert "path: /data" in again.stdout and "Host key to pin" in again.stdout
    proc, port = _sshd(baie)
    try:
        client = _connect(baie, port)
        sftp = client.open_sftp()
        assert sftp.normalize(".") == "/data"  # where internal-sftp -d puts it
        with sftp.open("/data/pack-1", "wb") as f:
            f.write(b"encrypted bytes")
        assert sftp.listdir("/") == ["data"]  # the chroot: nothing of the server is visible
        with pytest.raises(PermissionError):
            sftp.mkdir("/elsewhere")  # only data/ is writable
        root = baie["root"]
        assert isinstance(root, Path)
        stored = root / str(baie["user"]) / "data" / "pack-1"
        assert stored.read_bytes() == b"encrypted bytes"
        _stdin, stdout, _stderr = client.exec_command("id")
        assert b"uid=" not in stdout.read()  # no shell: every command is internal-sftp
        client.close()
        # The key works from the pinned address only.
        moved = _setup(baie, "--key", key, "--from", "10.9.9.9")
        assert moved.returncode == 0 and "wrote" in moved.stdout
        with pytest.raises(paramiko.AuthenticationException):
            _connect(baie, port)
    finally:
        proc.terminate()
        proc.wait(10)


def test_remove_keeps_data_unless_purge(baie: dict[str, object]) -> None:
    tmp = baie["tmp"]
    assert isinstance(tmp, Path)
    assert _setup(baie, "--key", str(tmp / "orchestrator.pub"), "--from", "127.0.0.1"
                  ).returncode == 0
    root = baie["root"]
    assert isinstance(root, Path)
    data = root / str(baie["user"]) / "data"
    (data / "repository").mkdir()
    removed = _setup(baie, "--remove")
    assert removed.returncode == 0, removed.stderr
    assert subprocess.run(["id", str(baie["user"])], capture_output=True).returncode != 0
    assert not (tmp / "sshd.d" / f"hvbackup-{baie['user']}.conf").exists()
    assert (data / "repository").is_dir() and "--purge destroys it" in removed.stdout
    purged = _setup(baie, "--remove", "--purge")
    assert purged.returncode == 0 and not data.exists()


def test_bad_input_is_refused_before_anything_changes(baie: dict[str, object]) -> None:
    tmp = baie["tmp"]
    assert isinstance(tmp, Path)
    (tmp / "not-a-key.pub").write_text("hello\n")
    for extra, message in ((["--key", str(tmp / "not-a-key.pub"), "--from", "127.0.0.1"],
                            "holds no SSH public key"),
                           (["--key", str(tmp / "orchestrator.pub")], "--from"),
                           (["--key", str(tmp / "orchestrator.pub"), "--from", "1.2.3.4; rm"],
                            "--from")):
        done = _setup(baie, *extra)
        assert done.returncode == 1 and message in done.stderr
    assert subprocess.run(["id", str(baie["user"])], capture_output=True).returncode != 0
