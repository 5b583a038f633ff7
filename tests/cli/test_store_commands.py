"""keys, snapshots, restore and verify as a technician and a client use them."""

from __future__ import annotations

import base64
import hashlib
import os
import re
from pathlib import Path

import pytest

from orchestrator.config import load_config
from orchestrator.mover.source import LocalSource
from orchestrator.store.backup import backup_paths
from orchestrator.store.open import open_for_writing
from tests.config.base import BASE
from tests.conftest import write_config
from tests.store.helpers import make_tree, restored, sha_of

PASS = "une phrase de passe assez longue"


@pytest.fixture
def setup(tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    text = BASE.replace("database: sqlite:///var/h.db", f"state_dir: {tmp_path / 'state'}")
    text = text.replace("""  site-b:
    type: sftp
    host: baie.msp.example
    user: hvbackup
    key_file: keys/id_ed25519
    known_hosts: keys/known_hosts
    path: /srv/baie""", f"""  site-b:
    type: local
    path: {tmp_path / 'baie-b'}""").replace("path: /srv/baie-a", f"path: {tmp_path / 'baie-a'}")
    config = write_config(tmp_path, text)
    (tmp_path / "baie-a").mkdir()
    (tmp_path / "baie-b").mkdir()
    monkeypatch.setenv("HVBACKUP_PASSPHRASE", PASS)
    assert cli("keys", "init", "-c", str(config), "--escrow", "--key-file",
               str(tmp_path / "escrow.key")).code == 0
    result = cli("keys", "init", "-c", str(config), "acme", "--key-file",
                 str(tmp_path / "acme.key"))
    assert result.code == 0, result.err
    src = tmp_path / "Partages"
    make_tree(src, 30)
    loaded = load_config(config)
    repo = open_for_writing(loaded.repository("acme", "site-a"))
    info, _ = backup_paths(repo, LocalSource("l"), [str(src)],
                           {"client": "acme", "job": "partages", "run": "run-1"})
    repo.close()
    return config, src, info, result.out


def test_keys_init_writes_both_keys_and_prints_the_paper_key(setup, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _config, _src, _info, out = setup
    assert (tmp_path / "keys" / "acme.pub").read_text().startswith("hvbackup-public-key-v1 ")
    assert oct((tmp_path / "acme.key").stat().st_mode & 0o777) == "0o600"
    assert "PAPER KEY" in out
    paper = out.split("file and its passphrase are lost:")[1]
    from orchestrator.store.keys import from_paper_key, read_key_file

    assert from_paper_key(paper).raw() == read_key_file(tmp_path / "acme.key", PASS).raw()
    assert PASS not in out


def test_keys_are_never_overwritten(setup, cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = setup[0]
    result = cli("keys", "init", "-c", str(config), "acme", "--key-file",
                 str(tmp_path / "other.key"))
    assert result.code == 2
    assert "already exists: keys are never overwritten" in result.err


def test_snapshots_are_listed_without_the_client_key(setup, cli) -> None:  # type: ignore[no-untyped-def]
    config, _src, info, _ = setup
    result = cli("snapshots", "-c", str(config), "acme/partages")
    assert result.code == 0, result.err
    assert "acme/partages on site-a: 1 restore point(s)" in result.out
    assert info.id[:12] in result.out and "run-1" in result.out


def test_restore_with_the_client_key_then_the_escrow_key(setup, cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config, src, info, _ = setup
    for key in ("acme.key", "escrow.key"):
        out = tmp_path / f"out-{key}"
        result = cli("restore", "-c", str(config), "acme/partages", "--to", str(out),
                     "--key-file", str(tmp_path / key))
        assert result.code == 0, result.err
        assert "restored 30 file(s)" in result.out and info.id[:12] in result.out
        for path in src.rglob("*.txt"):
            assert sha_of(restored(out, path)) == sha_of(path)


def test_restore_with_a_wrong_passphrase(setup, cli, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    config = setup[0]
    monkeypatch.setenv("HVBACKUP_PASSPHRASE", "not the passphrase")
    result = cli("restore", "-c", str(config), "acme/partages", "--to", str(tmp_path / "o"),
                 "--key-file", str(tmp_path / "acme.key"))
    assert result.code == 4
    assert "wrong passphrase for key file" in result.err
    assert not (tmp_path / "o").exists()


def test_keys_check_proves_the_key_opens_the_latest_snapshot(setup, cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config, _src, info, _ = setup
    result = cli("keys", "check", "-c", str(config), "acme", "--key-file",
                 str(tmp_path / "acme.key"))
    assert result.code == 0, result.err
    assert f"opens the latest snapshot of acme on site-a: {info.id[:12]}" in result.out
    assert "30 file(s)" in result.out


def test_verify_clean_then_damaged(setup, cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config, src, info, _ = setup
    result = cli("verify", "-c", str(config), "acme", "--read-data-subset", "100%",
                 "--key-file", str(tmp_path / "acme.key"))
    assert result.code == 0, result.err
    assert "no problem found" in result.out
    pack = next(p for p in (tmp_path / "baie-a" / "acme" / "data").rglob("*") if p.is_file())
    raw = bytearray(pack.read_bytes())
    raw[50] ^= 1
    pack.write_bytes(bytes(raw))
    result = cli("verify", "-c", str(config), "acme", "--read-data-subset", "100%",
                 "--key-file", str(tmp_path / "acme.key"))
    assert result.code == 4
    assert "1 PROBLEM(S):" in result.out
    assert f"damages snapshot {info.id[:12]} (partages," in result.out
    assert str(src) in result.out  # names the damaged file(s)
    no_key = cli("verify", "-c", str(config), "acme", "--read-data-subset", "100%")
    assert no_key.code == 4 and "give --key-file to name the files" in no_key.out


def test_lost_writer_key_is_explained_then_restored(setup, cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = setup[0]
    writer = load_config(config).repository("acme", "site-a").writer_key
    saved = writer.read_bytes()
    writer.unlink()
    result = cli("snapshots", "-c", str(config), "acme/partages")
    assert result.code == 4
    assert "writer key" in result.err and "writer-restore" in result.err
    restored_key = cli("keys", "writer-restore", "-c", str(config), "acme", "--key-file",
                       str(tmp_path / "acme.key"))
    assert restored_key.code == 0, restored_key.err
    assert writer.read_bytes() == saved
    assert cli("snapshots", "-c", str(config), "acme/partages").code == 0


def test_passphrase_needed_without_a_terminal(cli, tmp_path: Path) -> None:
    os.environ.pop("HVBACKUP_PASSPHRASE", None)
    result = cli("keys", "init", "-c", str(write_config(tmp_path, BASE)), "acme",
                 "--key-file", str(tmp_path / "k"))
    assert result.code == 2
    assert "set HVBACKUP_PASSPHRASE" in result.err


def test_damaged_and_stray_snapshot_files_leave_the_others(setup, cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config, src, info, _ = setup
    loaded = load_config(config)
    repo = open_for_writing(loaded.repository("acme", "site-a"))
    second, _ = backup_paths(repo, LocalSource("l"), [str(src)],
                             {"client": "acme", "job": "partages", "run": "run-2"})
    repo.close()
    snapshots = tmp_path / "baie-a" / "acme" / "snapshots"
    (snapshots / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    damaged = snapshots / info.id
    damaged.write_bytes(damaged.read_bytes()[:-7])
    padded = (snapshots / second.id).read_bytes() + bytes(8)  # named by its bytes, unsigned
    planted = hashlib.sha256(padded).hexdigest()
    (snapshots / planted).write_bytes(padded)
    result = cli("snapshots", "-c", str(config), "acme/partages")
    assert result.code == 0, result.err
    assert "acme/partages on site-a: 1 restore point(s)" in result.out
    assert second.id[:12] in result.out
    assert f"skipped snapshots/{info.id}: snapshots/{info.id} is damaged" in result.err
    assert f"skipped snapshots/{planted}, refused (not signed by this client's orchestrator)" \
        in result.err
    result = cli("verify", "-c", str(config), "acme", "--key-file", str(tmp_path / "acme.key"))
    assert result.code == 4
    assert f"snapshots/{info.id} is damaged" in result.out
    assert "1 file(s) that are not the repository's, ignored: snapshots/.DS_Store" in result.out
    out = tmp_path / "out"
    result = cli("restore", "-c", str(config), "acme/partages", "--to", str(out),
                 "--key-file", str(tmp_path / "acme.key"))
    assert result.code == 0, result.err


def test_keys_init_records_the_orchestrator_signing_key(setup, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config, _src, _info, out = setup
    from orchestrator.store.keys import WriterKeys, read_key_file, signer_fingerprint

    writer = load_config(config).repository("acme", "site-a").writer_key
    signer = WriterKeys(base64.b64decode(writer.read_text())).signer
    assert read_key_file(tmp_path / "acme.key", PASS).signer == signer
    assert f"orchestrator signing key recorded in the key file: {signer_fingerprint(signer)}" \
        in out
    assert read_key_file(tmp_path / "escrow.key", PASS).signer is None


def test_keys_check_records_the_signing_key_on_first_use(setup, cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A key file made before snapshots were signed records no signing key: the first
    check says so plainly and records it; the next check and restores use it."""
    config = setup[0]
    from orchestrator.store.keys import read_key_file, write_key_file

    key = read_key_file(tmp_path / "acme.key", PASS)
    old = tmp_path / "old.key"
    write_key_file(old, key, PASS, "acme")  # as keys init wrote them before
    before = cli("restore", "-c", str(config), "acme/partages", "--to", str(tmp_path / "o1"),
                 "--key-file", str(old))
    assert before.code == 0, before.err
    assert "nothing proves who wrote this repository" in before.out
    first = cli("keys", "check", "-c", str(config), "acme", "--key-file", str(old))
    assert first.code == 0, first.err
    assert "FIRST USE" in first.out and "Check this fingerprint with your provider" in first.out
    assert read_key_file(old, PASS).signer == key.signer
    assert oct(old.stat().st_mode & 0o777) == "0o600"
    again = cli("keys", "check", "-c", str(config), "acme", "--key-file", str(old))
    assert "FIRST USE" not in again.out and "signed by the orchestrator the key file" in again.out


def test_a_forged_repository_is_refused_by_restore_verify_check(setup, cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The baie's owner holds the client's public key: it replaces the repository with one
    of its own (another writer key, sealed to the client). Nothing of it is restored."""
    config = setup[0]
    from orchestrator.baie.local import LocalTarget
    from orchestrator.store.keys import read_public_key
    from orchestrator.store.repository import Repository

    baie = tmp_path / "baie-a" / "acme"
    for child in ("config", "snapshots", "index", "data"):
        path = baie / child
        if path.is_dir():
            import shutil

            shutil.rmtree(path)
        else:
            path.unlink()
    public = read_public_key(tmp_path / "keys" / "acme.pub")
    forged = Repository.open_for_writing(LocalTarget("site-a", baie), os.urandom(32), [public],
                                         tmp_path / "forger-cache")
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "virement.txt").write_text("IBAN du fraudeur\n")
    backup_paths(forged, LocalSource("l"), [str(fake)], {"client": "acme", "job": "partages",
                                                         "run": "x"})
    forged.close()
    key_file = str(tmp_path / "acme.key")
    for args in (("restore", "-c", str(config), "acme/partages", "--to", str(tmp_path / "out"),
                  "--key-file", key_file),
                 ("verify", "-c", str(config), "acme", "--key-file", key_file),
                 ("keys", "check", "-c", str(config), "acme", "--key-file", key_file)):
        result = cli(*args)
        assert result.code == 4, (args, result.out, result.err)
        assert "not written by the orchestrator your key file records" in result.err
    assert not (tmp_path / "out").exists()


def test_restore_refuses_names_leading_outside_and_says_which(cli, tmp_path: Path,
                                                              setup) -> None:  # type: ignore[no-untyped-def]
    config, src, _info, _ = setup
    hostile = "\\".join([".."] * (len(src.parts) + 1) + ["x"])
    (src / hostile).write_bytes(b"forged")
    loaded = load_config(config)
    repo = open_for_writing(loaded.repository("acme", "site-a"))
    backup_paths(repo, LocalSource("l"), [str(src)],
                 {"client": "acme", "job": "partages", "run": "run-2"})
    repo.close()
    box = tmp_path / "box"
    result = cli("restore", "-c", str(config), "acme/partages", "--to", str(box / "to"),
                 "--key-file", str(tmp_path / "acme.key"))
    assert result.code == 4
    assert "restored 30 file(s)" in result.out
    assert "1 file(s) NOT restored: their recorded name would lead outside" in result.err
    assert f"{src / hostile}: goes up a folder (..)" in result.err
    assert [p.name for p in box.iterdir()] == ["to"]


def test_restore_never_overwrites_without_being_told(setup, cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config, src, _info, _ = setup
    out = tmp_path / "out"
    args = ("restore", "-c", str(config), "acme/partages", "--to", str(out), "--key-file",
            str(tmp_path / "acme.key"))
    assert cli(*args).code == 0
    first = min(src.rglob("*.txt"))
    restored(out, first).write_bytes(b"modified by the user since")
    refused = cli(*args)  # not a terminal: nothing asked, nothing written
    assert refused.code == 2
    assert f"30 file(s) to restore already exist in {out} (" in refused.err
    assert str(restored(out, first).relative_to(out)) in refused.err
    assert "give --overwrite to replace them" in refused.err
    assert restored(out, first).read_bytes() == b"modified by the user since"
    forced = cli(*args, "--overwrite")
    assert forced.code == 0, forced.err
    assert f"30 existing file(s) in {out} were overwritten" in forced.out
    assert sha_of(restored(out, first)) == sha_of(first)


KILLED_RESTORE = """
import os, sys, time
from orchestrator.cli.main import main
from orchestrator.store.restore import Restorer

write = Restorer._write

def write_then_hang(*args):
    write(*args)
    args[0].flush()
    print("writing", flush=True)
    time.sleep(600)

Restorer._write = staticmethod(write_then_hang)
sys.exit(main(sys.argv[1:]))
"""


def test_a_killed_restore_leaves_nothing_behind_the_next_one(setup, cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import glob
    import signal
    import subprocess
    import sys
    import tempfile

    from tests.conftest import REPO

    config, src, _info, _ = setup
    out = tmp_path / "out"
    args = ["restore", "-c", str(config), "acme/partages", "--to", str(out), "--key-file",
            str(tmp_path / "acme.key")]
    in_tmp = set(glob.glob(os.path.join(tempfile.gettempdir(), "hvb-restore-*")))
    proc = subprocess.Popen([sys.executable, "-c", KILLED_RESTORE, *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line == "writing\n", proc.stderr.read() if proc.stderr else ""
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partials = list(out.rglob("*.hvb-partial"))
    assert len(partials) == 1  # what a killed restore leaves...
    assert set(glob.glob(os.path.join(tempfile.gettempdir(), "hvb-restore-*"))) == in_tmp
    caches = tmp_path / "state" / "restore-cache"
    assert [p.name for p in caches.iterdir()] == [str(proc.pid)]
    again = cli(*args)  # ...the next restore into the same folder removes
    assert again.code == 0, again.err
    assert f"removed 1 partial file(s) left in {out} by an interrupted restore" in again.out
    assert list(out.rglob("*.hvb-partial")) == [] and not (out / ".hvb-restoring").exists()
    assert list(caches.iterdir()) == []
    for path in src.rglob("*.txt"):
        assert sha_of(restored(out, path)) == sha_of(path)


def _restore_at_a_terminal(args: list[str], answer: bytes) -> tuple[int, str]:
    """``hvbackup ARGS`` with its stdin and stderr on a terminal (a pty), answering the first
    question with ``answer``; returns the exit code and what the terminal showed."""
    import pty
    import subprocess
    import sys

    from tests.conftest import REPO

    controller, terminal = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator.cli.main", *args], cwd=REPO,
                            stdin=terminal, stderr=terminal, stdout=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    os.close(terminal)
    shown = b""
    while b"[y/N] " not in shown:
        try:
            data = os.read(controller, 4096)
        except OSError:  # the terminal closed: the command ended without asking
            break
        if not data:
            break
        shown += data
    if b"[y/N] " in shown:
        os.write(controller, answer)
    proc.wait(timeout=120)
    try:
        while data := os.read(controller, 4096):
            shown += data
    except OSError:
        pass
    os.close(controller)
    return proc.returncode, shown.decode(errors="replace")


def test_restore_at_a_terminal_asks_before_overwriting(setup, cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config, src, _info, _ = setup
    out = tmp_path / "out"
    args = ["restore", "-c", str(config), "acme/partages", "--to", str(out), "--key-file",
            str(tmp_path / "acme.key")]
    assert cli(*args).code == 0
    first = min(src.rglob("*.txt"))
    restored(out, first).write_bytes(b"modified by the user since")
    code, shown = _restore_at_a_terminal(args, b"n\n")
    assert f"30 file(s) already exist in {out} (" in shown and "Overwrite them? [y/N]" in shown
    assert code == 2
    assert restored(out, first).read_bytes() == b"modified by the user since"
    code, shown = _restore_at_a_terminal(args, b"oui\n")
    assert code == 0, shown
    assert sha_of(restored(out, first)) == sha_of(first)


def test_restore_latest_refuses_an_older_point_when_the_newest_is_gone_from_the_baie(
        cli, clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """The newest restore point's file deleted (or rolled back) on the first baie: 'latest'
    does not quietly restore the day before; the message says which point is missing and how
    to get it (the other baie) or to take the older one knowingly."""
    from datetime import timedelta

    from tests.world import Setup

    monkeypatch.setenv("HVBACKUP_PASSPHRASE", "passphrase of acme")
    s = Setup(tmp_path / "w")
    s.run("partages")
    s.clock.advance(timedelta(days=1))
    s.run("partages")
    clock.set(s.clock.now() + timedelta(hours=2))
    from orchestrator.store.open import open_for_reading

    repo = open_for_reading(s.loaded.repository("acme", "site-a"), s.key, tmp_path / "rc")
    newest = repo.find_snapshot("latest", job="partages")
    repo.target.delete(newest.name)
    repo.close()
    repo.target.close()
    newest = newest.id
    key = str(tmp_path / "w" / "acme.key")
    refused = cli("restore", "-c", str(s.config), "acme/partages", "--to",
                  str(tmp_path / "o1"), "--key-file", key)
    assert refused.code != 0
    assert f"the newest restore point of acme/partages, {newest[:12]} of 24/11/2026" \
        in refused.err
    assert "is not readable on this baie" in refused.err and "--baie" in refused.err
    assert not (tmp_path / "o1").exists() or not any((tmp_path / "o1").iterdir())
    older = re.search(r"--snapshot ([0-9a-f]{12})", refused.err)
    assert older, refused.err
    other = cli("restore", "-c", str(s.config), "acme/partages", "--to", str(tmp_path / "o2"),
                "--key-file", key, "--baie", "site-b")
    assert other.code == 0, other.err
    assert f"from snapshot {newest[:12]}" in other.out
    chosen = cli("restore", "-c", str(s.config), "acme/partages", "--to",
                 str(tmp_path / "o3"), "--key-file", key, "--snapshot", older.group(1))
    assert chosen.code == 0, chosen.err
    assert f"from snapshot {older.group(1)}" in chosen.out


def test_a_restore_that_meets_a_damaged_pack_names_the_other_baie(
        cli, clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from tests.world import Setup

    monkeypatch.setenv("HVBACKUP_PASSPHRASE", "passphrase of acme")
    s = Setup(tmp_path / "w")
    s.run("partages")
    clock.set(s.clock.now())
    for pack in sorted((tmp_path / "w" / "baie-a").rglob("data/*/*")):
        raw = bytearray(pack.read_bytes())
        raw[len(raw) // 2] ^= 0x01
        pack.write_bytes(bytes(raw))
    key = str(tmp_path / "w" / "acme.key")
    failed = cli("restore", "-c", str(s.config), "acme/partages", "--to", str(tmp_path / "o"),
                 "--key-file", key)
    assert failed.code != 0
    assert "The other copy may hold it intact: the same command with --baie site-b" \
        in failed.err
    again = cli("restore", "-c", str(s.config), "acme/partages", "--to", str(tmp_path / "o"),
                "--key-file", key, "--baie", "site-b", "--overwrite")
    assert again.code == 0, again.err
