"""A client's two accounts on a real OpenSSH sshd (scripts/baie-setup.sh --client): the site
agent's, append-only, is refused every SFTP request that would remove, rename, overwrite,
truncate or change a file, yet backs up and restores through the store; the server's
maintenance account prunes what the agent wrote."""

from __future__ import annotations

import base64
import html
import os
import shutil
import stat
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paramiko
import pytest

from orchestrator.baie.canary import CANARY, CANARY_BYTES
from orchestrator.baie.sftp import SftpTarget
from orchestrator.errors import BaieError
from orchestrator.store import format as fmt
from orchestrator.store.prune import forget, prune
from orchestrator.store.restore import Restorer
from tests.conftest import REPO
from tests.servers import free_port, stop, wait_for_port
from tests.store.helpers import Store, make_tree, restored, sha_of

SCRIPT = REPO / "scripts" / "baie-setup.sh"


class Baie:
    def __init__(self, tmp: Path, client: str, root: Path, port: int) -> None:
        self.tmp, self.client, self.root, self.port = tmp, client, root, port
        self.data = root / f"hvb-{client}" / "data"

    def target(self, who: str = "agent", append_only: bool = True) -> SftpTarget:
        user = f"hvb-{self.client}" + ("-maint" if who == "maint" else "")
        return SftpTarget(f"baie-{who}", "127.0.0.1", user=user, key_file=self.tmp / who,
                          known_hosts=self.tmp / "known_hosts", root=f"/data/{self.client}",
                          port=self.port, connections=2, append_only=append_only)

    def sftp(self, who: str = "agent") -> tuple[paramiko.SSHClient, paramiko.SFTPClient]:
        client = paramiko.SSHClient()
        kind, b64 = (self.tmp / "host_key.pub").read_text().split()[:2]
        client.get_host_keys().add(f"[127.0.0.1]:{self.port}", kind,
                                   paramiko.Ed25519Key(data=base64.b64decode(b64)))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        user = f"hvb-{self.client}" + ("-maint" if who == "maint" else "")
        client.connect("127.0.0.1", port=self.port, username=user,
                       key_filename=str(self.tmp / who), look_for_keys=False,
                       allow_agent=False, timeout=10)
        sftp = client.open_sftp()
        return client, sftp


@pytest.fixture
def baie(tmp_path: Path) -> Iterator[Baie]:
    if os.geteuid() != 0:
        pytest.fail("these tests create system accounts: run them as root (CI does)")
    tag = uuid.uuid4().hex[:6]
    client = f"t{tag}"
    root = Path(f"/srv/hvb-test-{tag}")  # sshd refuses a chroot under /tmp (world-writable)
    keys = Path(f"/srv/hvb-test-{tag}-keys")
    for name in ("agent", "maint", "host_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                        str(tmp_path / name)], check=True)
    done = subprocess.run(
        ["bash", str(SCRIPT), "--client", client, "--root", str(root), "--keys-dir", str(keys),
         "--sshd-config-dir", str(tmp_path / "sshd.d"), "--no-reload",
         "--key", str(tmp_path / "agent.pub"), "--from", "127.0.0.1",
         "--maint-key", str(tmp_path / "maint.pub"), "--maint-from", "127.0.0.1"],
        capture_output=True, text=True, timeout=60)
    proc = None
    try:
        assert done.returncode == 0, done.stderr
        assert "append_only: true" in done.stdout
        port = free_port()
        config = tmp_path / "sshd_config"
        config.write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {tmp_path / 'host_key'}
PidFile {tmp_path / 'sshd.pid'}
UsePAM no
StrictModes yes
PasswordAuthentication no
Subsystem sftp internal-sftp
LogLevel VERBOSE
Include {tmp_path / 'sshd.d' / f'hvbackup-hvb-{client}.conf'}
""")
        host = (tmp_path / "host_key.pub").read_text().split()
        (tmp_path / "known_hosts").write_text(f"[127.0.0.1]:{port} {host[0]} {host[1]}\n")
        Path("/run/sshd").mkdir(exist_ok=True)
        log = tmp_path / "sshd.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(config)],
                                    stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        wait_for_port(port, proc, "sshd", log)
        yield Baie(tmp_path, client, root, port)
    finally:
        if proc is not None:
            stop(proc)
        for account in (f"hvb-{client}", f"hvb-{client}-maint"):
            subprocess.run(["userdel", account], capture_output=True)
        subprocess.run(["groupdel", f"hvbc-{client}"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(keys, ignore_errors=True)


def _refused(call: object, *args: object) -> None:
    with pytest.raises(OSError):
        call(*args)  # type: ignore[operator]


def test_the_agents_account_is_refused_every_request_that_destroys(baie: Baie) -> None:
    agent = baie.target()
    agent.put("data/ab/pack", b"encrypted pack bytes")
    agent.close()
    stored = baie.data / baie.client / "data" / "ab" / "pack"
    assert stored.read_bytes() == b"encrypted pack bytes"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o440  # read-only, readable by maintenance
    path, folder = f"/data/{baie.client}/data/ab/pack", f"/data/{baie.client}/data/ab"
    client, sftp = baie.sftp()
    try:
        _refused(sftp.remove, path)
        _refused(sftp.rename, path, path + ".gone")
        _refused(sftp.posix_rename, path, path + ".gone")
        _refused(sftp.rename, folder, folder + ".gone")
        _refused(sftp.open, path, "wb")  # SSH_FXF_TRUNC on an existing file
        _refused(sftp.open, path, "r+b")  # written in place
        _refused(sftp.open, path, "ab")
        _refused(sftp.chmod, path, 0o666)  # setstat: the mode
        _refused(sftp.truncate, path, 0)  # setstat: the size
        _refused(sftp.utime, path, (0, 0))
        with sftp.open(path, "rb") as f:
            _refused(f.chmod, 0o666)  # fsetstat
            _refused(f.truncate, 0)
            assert f.read() == b"encrypted pack bytes"  # reading is allowed
        _refused(sftp.rmdir, folder)
        _refused(sftp.mkdir, folder)  # there already: nothing replaces it
        _refused(sftp.symlink, path, folder + "/link")
        channel = sftp
        # Opened for reading with SSH_FXF_TRUNC: refused by the file's mode as well.
        _refused(channel._request, paramiko.sftp.CMD_OPEN, path,
                 paramiko.sftp.SFTP_FLAG_READ | paramiko.sftp.SFTP_FLAG_TRUNC,
                 paramiko.SFTPAttributes())
        _refused(channel._request, paramiko.sftp.CMD_EXTENDED, "hardlink@openssh.com", path,
                 folder + "/hard")
        _refused(channel._request, paramiko.sftp.CMD_EXTENDED, "lsetstat@openssh.com", path,
                 paramiko.SFTPAttributes.from_stat(os.stat_result((0o100666,) + (0,) * 9)))
        # What the account may do: add new files and folders, and read.
        with sftp.open(folder + "/another", "wxb") as f:
            f.write(b"new")
        sftp.mkdir(f"/data/{baie.client}/data/cd")
    finally:
        client.close()
    assert stored.read_bytes() == b"encrypted pack bytes"
    assert sorted(p.name for p in stored.parent.iterdir()) == ["another", "pack"]
    # The same store writing again the same bytes is fine (content-named files are put twice);
    # other bytes under a name taken are an upload cut short: refused, said, left untouched.
    agent = baie.target()
    try:
        agent.put("data/ab/pack", b"encrypted pack bytes")
        with pytest.raises(BaieError, match="maintenance access removes it"):
            agent.put("data/ab/pack", b"other bytes")
    finally:
        agent.close()
    assert stored.read_bytes() == b"encrypted pack bytes"
    # The maintenance account removes what the agent wrote, and the folders it made.
    client, sftp = baie.sftp("maint")
    try:
        sftp.remove(path)
        sftp.remove(folder + "/another")
        sftp.rmdir(folder)
    finally:
        client.close()
    assert not stored.parent.exists()


def test_a_backup_and_its_restore_go_through_the_append_only_account(
        baie: Baie, tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src, 60)
    store = Store(tmp_path / "store", target=baie.target())
    first, _ = store.backup([src])
    (src / "dir1" / "file00001.txt").write_bytes(b"changed the next night")
    second, _ = store.backup([src])
    owned = {p: p.stat().st_size for p in (baie.data / baie.client).rglob("*") if p.is_file()}
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o440 for p in owned)
    locks = [p for p in owned if p.parent.name == "locks"]
    assert len(locks) >= 4  # each lease: taken, then released, in files of their own
    assert not [p for p in owned if ".hvbtmp-" in p.name]  # no temporary name, no rename
    repo = store.reader_repo()
    try:
        out = tmp_path / "out"
        Restorer(repo, store.key).restore(repo.find_snapshot(second.id), out)
        for path in src.rglob("*"):
            if path.is_file():
                assert sha_of(restored(out, path)) == sha_of(path), path
    finally:
        repo.close()
    # An upload cut short (the agent's machine lost power): part of a pack under its final
    # name. The agent's next backup leaves it aside, without calling it damage...
    whole = os.urandom(3000)
    cut = fmt.pack_name(fmt.sha256(whole))
    store.target.put(cut, whole[:1000])
    store.backup([src])
    repo = store.writer_repo()
    try:
        repo.sync_index()
        assert repo.cache.damaged() == {} and repo.damaged_files == {}
    finally:
        repo.close()
    store.target.close()
    # The maintenance prunes: the first point forgotten, its packs and the leases gone, and
    # the upload cut short removed.
    maint = Store(tmp_path / "store", target=baie.target("maint", append_only=False))
    maint.key, maint.writer = store.key, store.writer
    repo = maint.writer_repo()
    try:
        repo.sync_index()
        forget(repo, [s for s in repo.snapshots() if s.id == first.id])
        report = prune(repo)
    finally:
        repo.close()
        maint.target.close()
    assert report.index_files_replaced >= 1
    assert report.incomplete_removed == [cut]
    left = [p for p in (baie.data / baie.client).rglob("*") if p.is_file()]
    assert not [p for p in left if p.parent.name == "locks"]  # released leases cleared
    assert not [p for p in left if p.name == first.name.split("/")[-1]]
    assert not (baie.data / baie.client / cut).exists()
    # And the agent goes on backing up into what the maintenance rewrote.
    store.target = baie.target()
    third, _ = store.backup([src])
    store.target.close()
    assert third.id != second.id


def test_the_canary_is_refused_to_the_agent_and_allowed_to_a_full_access(baie: Baie) -> None:
    agent = baie.target()
    try:
        first = agent.canary()
        assert first.protected and first.allowed == []
        assert agent.canary().protected  # the next night: the same file, refused again
    finally:
        agent.close()
    canary = baie.data / baie.client / CANARY
    assert canary.read_bytes() == CANARY_BYTES
    # An account that is not append-only (a mistake in sshd's configuration): said plainly.
    wrong = baie.target("maint", append_only=True)
    try:
        result = wrong.canary()
    finally:
        wrong.close()
    assert not result.protected and "remove" in result.allowed


def test_leases_through_the_append_only_account_expire_and_block_prune_while_live(
        baie: Baie) -> None:
    from orchestrator.store.locks import Lock, RepositoryLocked

    agent, maint = baie.target(), baie.target("maint", append_only=False)
    clock = [datetime(2026, 12, 1, 2, 0, tzinfo=UTC)]
    try:
        held = Lock(agent, "shared", "backup acme/erp", now=lambda: clock[0]).acquire()
        with pytest.raises(RepositoryLocked, match="backup acme/erp"):
            Lock(maint, "exclusive", "prune", now=lambda: clock[0]).acquire()
        held._stop.set()  # the agent dies: its lease is no longer renewed
        clock[0] += timedelta(minutes=20)
        with Lock(maint, "exclusive", "prune", now=lambda: clock[0]).acquire():
            pass
    finally:
        agent.close()
        maint.close()
    assert not list((baie.data / baie.client / "locks").iterdir())


def test_the_nightly_canary_is_told_in_the_digest_or_alerts_the_hotline(
        baie: Baie, tmp_path: Path) -> None:
    from sqlalchemy import select

    from orchestrator.history.models import AlertRow
    from orchestrator.jobs.maintenance import prune_client
    from orchestrator.jobs.morning import tell
    from tests.report.test_in_progress import html_of, outbox, text_of
    from tests.world import Setup

    s = Setup(tmp_path / "world")
    agent = f"user: hvb-{baie.client}, key_file: {baie.tmp / 'agent'}"
    sftp = (f"site-a: {{type: sftp, host: 127.0.0.1, port: {baie.port}, {agent}, "
            f"known_hosts: {baie.tmp / 'known_hosts'}, path: /data, append_only: true, "
            f"maintenance: {{user: hvb-{baie.client}-maint, key_file: {baie.tmp / 'maint'}}}}}")
    local = f"site-a: {{type: local, path: {s.root}/baie-a}}"
    assert local in s.config.read_text()
    s.config.write_text(s.config.read_text().replace(local, sftp))
    s.reload()
    night = s.run("erp")
    assert night.status == "REUSSIE", night.findings
    assert ("canary", "site-a", "ok") in s.steps(night.uid)
    assert (baie.data / "acme" / CANARY).read_bytes() == CANARY_BYTES
    tell(s.ctx, datetime(2026, 11, 24, 6, 0, tzinfo=UTC))
    [digest] = outbox(s.root, "2026-11-23-acme-digest.eml")
    said = "Copie protégée contre l'effacement\u00a0: vérifié le 23/11/2026"
    assert said in text_of(digest) and said in html.unescape(html_of(digest))
    # The server's maintenance goes through the maintenance access: it can prune.
    pruned = prune_client(s.ctx, "acme", s.clock.now(), dry_run=False)
    assert "site-a" in pruned.baies
    # The next night the agent's account is a full one (sshd's Match block lost): it is said.
    s.config.write_text(s.config.read_text().replace(
        agent, f"user: hvb-{baie.client}-maint, key_file: {baie.tmp / 'maint'}", 1))
    s.reload()
    s.clock.set(datetime(2026, 11, 24, 21, 0, tzinfo=UTC))
    night = s.run("erp")
    assert night.status == "AVERTISSEMENT"
    assert ("canary", "site-a", "failed") in s.steps(night.uid)
    with s.sessions() as session:
        [alert] = session.scalars(select(AlertRow).where(AlertRow.kind == "baie_unprotected"))
        assert "NOT protected against deletion" in alert.message and "remove" in alert.message
    tell(s.ctx, datetime(2026, 11, 25, 6, 0, tzinfo=UTC))
    [digest] = outbox(s.root, "2026-11-24-acme-digest.eml")
    text = text_of(digest)
    assert "Copie protégée" not in text
    assert ("la copie sur site-a n'est pas protégée contre l'effacement comme prévu\u202f; notre "
            "hotline est prévenue et corrige.") in text
    summaries = [text_of(m) for m in outbox(s.root, "*.eml") if "acme-digest" not in str(
        m["Subject"]) and "ACME —" not in str(m["Subject"])]
    assert any("copie non protégée contre l'effacement" in t for t in summaries), summaries
