"""On SFTP, a file is on the array's disk when ``put`` returns: each upload is fsynced
(fsync@openssh.com) before its rename, and a server that will not do it is said once."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.baie.sftp import SftpTarget
from tests.servers import SshServer, sshd


def target(server: SshServer) -> SftpTarget:
    return SftpTarget("paris-1", "127.0.0.1", user=server.user, key_file=server.key_file,
                      known_hosts=server.known_hosts, root=str(server.root), port=server.port)


def logged(server: SshServer) -> str:
    assert server.sftp_log is not None
    return server.sftp_log.read_text(errors="replace")


@pytest.fixture(scope="module")
def syncing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    with sshd(tmp_path_factory.mktemp("sshd"), sftp_flags="") as server:
        yield server


@pytest.fixture(scope="module")
def refusing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    # -P fsync: OpenSSH's sftp-server then neither offers nor performs fsync@openssh.com.
    with sshd(tmp_path_factory.mktemp("sshd"), sftp_flags="-P fsync") as server:
        yield server


def test_each_upload_is_fsynced_on_the_server_before_its_rename(syncing: SshServer) -> None:
    t = target(syncing)
    try:
        t.put("data/ab/abcdef", [b"pack " * 100_000, b"end"])
        t.put("snapshots/0123", b"snapshot")
        t.flush()
    finally:
        t.close()
    log = logged(syncing)
    # internal-sftp logs each request: the write to the temporary name is fsynced, then the
    # temporary name is renamed into place.
    synced = re.findall(r'fsync "([^"]+)"', log)
    assert [Path(p).name.split(".hvbtmp-")[0] for p in synced] == ["abcdef", "0123"]
    for path in synced:
        assert log.index(f'fsync "{path}"') < log.index(f'posix-rename old "{path}"')
    assert (syncing.root / "data" / "ab" / "abcdef").read_bytes() == b"pack " * 100_000 + b"end"


def test_a_server_without_fsync_still_gets_the_files_and_it_is_said_once(
        refusing: SshServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "orchestrator.baie.sftp")
    t = target(refusing)
    try:
        for n in range(3):
            t.put(f"index/{n:04d}", b"index file %d" % n)
    finally:
        t.close()
    assert [(refusing.root / "index" / f"{n:04d}").read_bytes() for n in range(3)] == \
        [b"index file %d" % n for n in range(3)]
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1, warnings  # said once, not at every upload
    assert warnings[0].startswith(
        f"baie paris-1 ({refusing.user}@127.0.0.1:{refusing.port}): the SFTP server does not offer "
        "fsync@openssh.com: files are uploaded and renamed into place, but their durability "
        "on the array is left to the server")
    assert re.findall(r'fsync "', logged(refusing)) == []  # and it was not asked


class _Refusing:
    """asyncssh's own SFTP server, which offers fsync@openssh.com, made to answer it with
    "operation unsupported" (an array whose file system cannot sync, say)."""

    def __init__(self, root: Path) -> None:
        import asyncio
        import threading

        import asyncssh

        self.root = root
        root.mkdir(parents=True)
        host_key = asyncssh.generate_private_key("ssh-ed25519")
        client_key = asyncssh.generate_private_key("ssh-ed25519")
        self.key_file = root.parent / "client_key"
        client_key.write_private_key(str(self.key_file))
        (root.parent / "authorized_keys").write_bytes(client_key.export_public_key())
        self.fsyncs = 0
        outer = self

        class Server(asyncssh.SFTPServer):  # type: ignore[misc]
            def fsync(self, file_obj: object) -> None:
                outer.fsyncs += 1
                raise asyncssh.SFTPOpUnsupported("fsync not supported by this file system")

        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def start() -> None:
            self.server = await asyncssh.listen(
                "127.0.0.1", 0, server_host_keys=[host_key],
                authorized_client_keys=str(root.parent / "authorized_keys"),
                sftp_factory=Server, allow_scp=False)
            self.port = self.server.sockets[0].getsockname()[1]
            ready.set()

        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(start(), self.loop).result(30)
        assert ready.wait(30)
        self.known_hosts = root.parent / "known_hosts"
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} "
                                    f"{host_key.export_public_key().decode()}")

    def close(self) -> None:
        import asyncio

        async def stop() -> None:
            self.server.close()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()


def test_a_server_that_offers_fsync_but_refuses_it_is_said_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import getpass

    caplog.set_level(logging.WARNING, "orchestrator.baie.sftp")
    server = _Refusing(tmp_path / "baie")
    try:
        t = SftpTarget("lyon-2", "127.0.0.1", user=getpass.getuser(), key_file=server.key_file,
                       known_hosts=server.known_hosts, root=str(server.root), port=server.port)
        try:
            for n in range(3):
                t.put(f"index/{n:04d}", b"index file %d" % n)
        finally:
            t.close()
        assert server.fsyncs == 1  # asked once, then no more
    finally:
        server.close()
    assert [(server.root / "index" / f"{n:04d}").read_bytes() for n in range(3)] == \
        [b"index file %d" % n for n in range(3)]
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1, warnings
    assert "the SFTP server refuses (fsync not supported by this file system) " \
        "fsync@openssh.com: files are uploaded and renamed into place" in warnings[0]
