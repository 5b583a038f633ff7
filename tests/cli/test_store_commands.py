"""keys, snapshots, restore and verify as a technician and a client use them."""

from __future__ import annotations

import os
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
    result = cli("snapshots", "-c", str(config), "acme/partages")
    assert result.code == 0, result.err
    assert "acme/partages on site-a: 1 restore point(s)" in result.out
    assert second.id[:12] in result.out
    assert f"skipped snapshots/{info.id}: snapshots/{info.id} is damaged" in result.err
    result = cli("verify", "-c", str(config), "acme", "--key-file", str(tmp_path / "acme.key"))
    assert result.code == 4
    assert f"snapshots/{info.id} is damaged" in result.out
    assert "1 file(s) that are not the repository's, ignored: snapshots/.DS_Store" in result.out
    out = tmp_path / "out"
    result = cli("restore", "-c", str(config), "acme/partages", "--to", str(out),
                 "--key-file", str(tmp_path / "acme.key"))
    assert result.code == 0, result.err
