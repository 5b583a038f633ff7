"""One conformance suite for every Target: a local folder and a real OpenSSH sshd over SFTP,
each bare and inside each wrapper (retry, bandwidth limit, dry run). Whatever the store does
with a baie must behave the same on every combination, errors included: a missing file is
``BaieError`` itself, never a kind that a retry wrapper would wait for."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.baie.local import LocalTarget
from orchestrator.baie.sftp import SftpTarget
from orchestrator.baie.target import Target
from orchestrator.baie.wrappers import DryRunTarget, LimitTarget, RetryTarget
from orchestrator.errors import BaieAuthError, BaieError, BaieUnreachable
from tests.servers import SshServer, free_port, sshd


@pytest.fixture(scope="module")
def ssh_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    with sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


def sftp_target(server: SshServer, root: Path, **kwargs: object) -> SftpTarget:
    options: dict[str, object] = {"user": server.user, "key_file": server.key_file,
                                  "known_hosts": server.known_hosts, "root": str(root),
                                  "port": server.port, **kwargs}
    return SftpTarget("paris-1", "127.0.0.1", **options)  # type: ignore[arg-type]


def never_retried(seconds: float) -> None:
    """On loopback nothing fails for a retry to mend: a retry here is an error of the wrong
    kind (a missing file taken for an unreachable baie), and would hide it."""
    pytest.fail(f"RetryTarget retried (would sleep {seconds} s)")


IMPLEMENTATIONS = ("local", "sftp")
WRAPPERS: dict[str, Callable[[Target], Target]] = {
    "bare": lambda t: t,
    "retry": lambda t: RetryTarget(t, sleep=never_retried),
    # 250 MB/s with 1 MB bursts: the bucket really makes writers wait, the suite stays quick.
    "limit": lambda t: LimitTarget(t, sustained_mbps=2000, burst_mbps=8),
    "dry-run": DryRunTarget,
}


def reads_packs_back(test: Callable[..., None]) -> Callable[..., None]:
    """Marks a contract item that reads back or sizes packs (``data/...``) written through the
    target. A dry run keeps no pack bytes, by design (a night of packs would fill the
    orchestrator's memory): they stat and list as size 0 and are not readable. So these items
    do not apply to ``dry-run``; every other one does (metadata files read back, missing
    files, deletes, names), and test_a_dry_run_reads_the_baie_and_changes_nothing covers what
    only a dry run promises."""
    test.reads_packs_back = True  # type: ignore[attr-defined]
    return test


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "target" in metafunc.fixturenames:
        skip_dry_run = getattr(metafunc.function, "reads_packs_back", False)
        metafunc.parametrize("target", [
            f"{implementation}-{wrapper}" for implementation in IMPLEMENTATIONS
            for wrapper in WRAPPERS if not (skip_dry_run and wrapper == "dry-run")],
            indirect=True)
    if "real_target" in metafunc.fixturenames:
        metafunc.parametrize("real_target", IMPLEMENTATIONS, indirect=True)


def implementation(request: pytest.FixtureRequest, name: str, tmp_path: Path) -> Target:
    """A fresh repository folder on a baie, built the way ``open_target`` builds it: the
    baie is there, the client's folder not yet."""
    if name == "local":
        mount = tmp_path / "baie"
        mount.mkdir()
        return LocalTarget("paris-2", mount / "acme", mount=mount)
    server: SshServer = request.getfixturevalue("ssh_server")
    return sftp_target(server, server.root / tmp_path.name / "acme")


@pytest.fixture
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    name, wrapper = request.param.split("-", 1)
    made = WRAPPERS[wrapper](implementation(request, name, tmp_path))
    yield made
    made.close()


@pytest.fixture
def real_target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    made = implementation(request, request.param, tmp_path)
    yield made
    made.close()


def assert_missing(target: Target, name: str) -> None:
    """What the Target protocol says of a name that is not there: stat is None, get raises
    BaieError itself (permanent; not BaieUnreachable, BaieAuthError or BaieFull, which would
    send the technician to check the link, the keys or the disk), delete does nothing."""
    assert target.stat(name) is None
    for offset, length in ((0, None), (5, 10)):
        with pytest.raises(BaieError) as info:
            target.get(name, offset, length)
        assert type(info.value) is BaieError, repr(info.value)
        assert info.value.permanent and name in str(info.value)
    target.delete(name)
    target.delete(name)


@reads_packs_back
def test_put_get_stat_round_trip(target: Target) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    target.put("data/ab/abcdef", data)
    assert target.stat("data/ab/abcdef") == len(data)
    assert target.get("data/ab/abcdef") == data
    assert target.get("data/ab/abcdef", 1000, 5000) == data[1000:6000]
    assert target.get("data/ab/abcdef", len(data) - 10) == data[-10:]


@reads_packs_back
def test_a_file_put_in_parts_is_their_concatenation(target: Target) -> None:
    parts = [os.urandom(n) for n in (12, 700_000, 0, 1, 2 * 1024 * 1024 + 3, 16)]
    target.put("data/cd/cdef01", parts)
    whole = b"".join(parts)
    assert target.stat("data/cd/cdef01") == len(whole)
    assert target.get("data/cd/cdef01") == whole
    assert target.get("data/cd/cdef01", 700_005, 20) == whole[700_005:700_025]


def test_missing_files(target: Target) -> None:
    assert [e.name for e in target.list("snapshots")] == []  # the client's folder is not there
    assert_missing(target, "snapshots/none")
    target.put("snapshots/one", b"1")
    assert_missing(target, "snapshots/none")  # now in a folder that exists
    target.put("index/gone", b"x")
    target.delete("index/gone")
    assert_missing(target, "index/gone")


@reads_packs_back
def test_list_is_recursive_sorted_and_hides_temporary_files(target: Target) -> None:
    for name in ("data/01/b", "data/00/a", "index/x", "data/ff/c"):
        target.put(name, name.encode())
    assert [(e.name, e.size) for e in target.list("data")] == [
        ("data/00/a", 9), ("data/01/b", 9), ("data/ff/c", 9)]
    assert [e.name for e in target.list("nothing-here")] == []


def test_overwrite_is_atomic_and_delete_removes(target: Target) -> None:
    target.put("config", b"one")
    target.put("config", b"two")
    assert target.get("config") == b"two"
    target.delete("config")
    assert target.stat("config") is None


@reads_packs_back
def test_parallel_puts(target: Target) -> None:
    blobs = {f"data/{i:02x}/{i}": os.urandom(200_000) for i in range(12)}
    threads = [threading.Thread(target=target.put, args=item) for item in blobs.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name, data in blobs.items():
        assert target.get(name) == data


def test_names_cannot_escape_the_repository(target: Target) -> None:
    operations: dict[str, Callable[[str], Any]] = {
        "put": lambda name: target.put(name, b"x"), "get": target.get, "stat": target.stat,
        "delete": target.delete, "list": lambda name: list(target.list(name))}
    for operation, call in operations.items():
        for bad in ("../x", "/etc/passwd", "data/../../x", ""):
            if bad == "" and operation == "list":
                continue  # list("") is the whole repository
            with pytest.raises(ValueError, match="invalid repository file name"):
                call(bad)


def test_a_dry_run_reads_the_baie_and_changes_nothing(real_target: Target) -> None:
    for name, data in (("index/b", b"real b"), ("index/d", b"real d"), ("data/00/p", b"pack")):
        real_target.put(name, data)
    dry = DryRunTarget(real_target)
    dry.put("index/a", b"new a")
    dry.put("index/c", [b"new ", b"c"])
    dry.put("data/01/q", b"a new pack")
    dry.delete("index/d")
    assert [e.name for e in dry.list("index")] == ["index/a", "index/b", "index/c"]
    assert [e.name for e in dry.list("")] == [
        "data/00/p", "data/01/q", "index/a", "index/b", "index/c"]
    assert (dry.get("index/a"), dry.get("index/b"), dry.get("index/c", 1, 3)) == (
        b"new a", b"real b", b"ew ")
    assert dry.get("data/00/p") == b"pack"  # packs already there are read from the baie
    assert_missing(dry, "index/d")  # deleted in the dry run, still on the baie
    dry.flush()
    dry.close()
    assert [(e.name, e.size) for e in real_target.list("")] == [
        ("data/00/p", 4), ("index/b", 6), ("index/d", 6)]
    assert real_target.get("index/d") == b"real d"


# -- SFTP specifics: trust and failures -----------------------------------------------------

def test_unknown_host_key_is_refused(ssh_server: SshServer, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    target = sftp_target(ssh_server, tmp_path, known_hosts=empty)
    with pytest.raises(BaieAuthError, match=r"not in .*known_hosts.*ssh-keyscan") as info:
        target.put("config", b"secret data")
    assert info.value.permanent
    assert not (tmp_path / "config").exists()


def test_changed_host_key_is_refused(ssh_server: SshServer, tmp_path: Path) -> None:
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    pub = (tmp_path / "other.pub").read_text().split()
    forged = tmp_path / "known_hosts"
    forged.write_text(f"[127.0.0.1]:{ssh_server.port} {pub[0]} {pub[1]}\n")
    with pytest.raises(BaieAuthError, match="host key CHANGED"):
        sftp_target(ssh_server, tmp_path, known_hosts=forged).stat("config")


def test_wrong_key_is_refused(ssh_server: SshServer, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    with pytest.raises(BaieAuthError, match="was refused for user"):
        sftp_target(ssh_server, tmp_path, key_file=stranger).stat("config")


def test_unreachable_baie_is_retryable(tmp_path: Path, ssh_server: SshServer) -> None:
    target = sftp_target(ssh_server, tmp_path, port=free_port(), timeout_s=3)
    with pytest.raises(BaieUnreachable, match="cannot connect") as info:
        target.stat("config")
    assert info.value.permanent is False


def test_writes_are_pipelined_with_large_requests(ssh_server: SshServer, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import paramiko

    sizes: list[int] = []
    original = paramiko.SFTPFile._write

    def spy(self: paramiko.SFTPFile, data: bytes) -> int:
        assert self.pipelined, "unpipelined writes wait one round trip per request"
        sent = int(original(self, data))  # bytes sent in this one SFTP request
        sizes.append(sent)
        return sent

    monkeypatch.setattr(paramiko.SFTPFile, "_write", spy)
    target = sftp_target(ssh_server, ssh_server.root / "pipelined")
    target.put("data/00/big", os.urandom(2 * 1024 * 1024))
    assert max(sizes) == 255 * 1024


def test_reads_check_the_host_key_and_the_client_key_too(ssh_server: SshServer,
                                                          tmp_path: Path) -> None:
    good = sftp_target(ssh_server, ssh_server.root / "reads")
    good.put("config", b"x")
    good.close()
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(BaieAuthError, match="host key not accepted"):
        sftp_target(ssh_server, ssh_server.root / "reads", known_hosts=empty).get("config")
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)],
                   check=True)
    with pytest.raises(BaieAuthError, match="was refused for user"):
        sftp_target(ssh_server, ssh_server.root / "reads", key_file=stranger).get("config")


@reads_packs_back
def test_parallel_ranged_reads(target: Target) -> None:
    data = os.urandom(8 * 1024 * 1024)
    target.put("data/aa/big", data)
    ranges = [(i * 1_000_003, 700_001) for i in range(8)]
    with __import__("concurrent.futures").futures.ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda r: target.get("data/aa/big", *r), ranges))
    assert got == [data[o:o + n] for o, n in ranges]


@reads_packs_back
def test_flush_makes_puts_durable_and_is_idempotent(target: Target) -> None:
    target.flush()  # nothing pending
    target.put("data/01/x", b"pack bytes")
    target.put("index/y", b"index bytes")
    target.flush()
    target.flush()
    assert target.get("data/01/x") == b"pack bytes" and target.stat("index/y") == 11
