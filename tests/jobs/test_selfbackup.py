"""The orchestrator backs itself up like a client: configuration, a consistent copy of the
history and the key material it holds, encrypted with the MSP's own key, on both baies; a lost
orchestrator is rebuilt from it."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

from orchestrator.config import load_config
from orchestrator.store.keys import generate_private_key
from orchestrator.store.open import open_for_reading
from orchestrator.store.restore import Restorer
from tests.world import Setup

MSP_CLIENT = """
  msp:
    name: MSP (orchestrator)
    contacts: [hotline@msp.example]
    encryption: {{public_key_file: {root}/msp.pub}}
    copies: [site-a, site-b]
    hosts:
      orchestrator: {{address: localhost, transport: local}}
    jobs:
      orchestrator:
        type: files
        host: orchestrator
        paths: [{root}/state/self-backup]
        prepare: orchestrator
        schedule: "daily 06:30"
"""


def _with_msp(s: Setup, database: str | None = None) -> object:
    key = generate_private_key()
    (s.root / "msp.pub").write_text(key.public.text() + "\n")
    text = s.config.read_text() + MSP_CLIENT.format(root=s.root)
    if database:
        text = text.replace("state_dir:", f"database: {database}\nstate_dir:")
    s.config.write_text(text)
    s.reload()
    return key


def _restore(s: Setup, key: object, to: Path, baie: str) -> Path:
    loaded = load_config(s.config)
    repo = open_for_reading(loaded.repository("msp", baie), key, s.root / f"cache-{baie}")
    repo.sync_index()
    Restorer(repo, key).restore(repo.find_snapshot("latest", job="orchestrator"), to)  # type: ignore[arg-type]
    repo.close()
    found = list(to.rglob("MANIFEST.json"))
    assert len(found) == 1
    return found[0].parent


def test_self_backup_restores_config_history_and_keys(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    s = Setup(tmp_path)
    assert s.run("partages").status == "REUSSIE"
    key = _with_msp(s)
    done = cli("self-backup", "-c", str(s.config))
    assert done.code == 0, done.err + done.out
    assert done.out.splitlines()[1].startswith("REUSSIE")
    for baie in ("site-a", "site-b"):  # two copies, like a client's
        got = _restore(s, key, tmp_path / f"restored-{baie}", baie)
        assert (got / "config.yaml").read_bytes() == s.config.read_bytes()
        manifest = json.loads((got / "MANIFEST.json").read_text())
        assert manifest["files"]["keys/acme-acme.pub"] == str(tmp_path / "acme.pub")
        assert (got / "keys" / "acme-acme.pub").read_text() == (tmp_path / "acme.pub").read_text()
        history = sqlite3.connect(got / "history.sqlite")
        statuses = [r[0] for r in history.execute(
            "SELECT status FROM runs JOIN jobs ON jobs.id = runs.job_id WHERE jobs.key = "
            "'partages'")]
        assert statuses == ["REUSSIE"]
        history.close()
        restored = b"".join(p.read_bytes() for p in got.rglob("*") if p.is_file())
        assert (tmp_path / "acme.key").read_bytes() not in restored  # no client private key
    # Once read, the gathered copies (secrets, history) do not linger on the disk.
    assert not (tmp_path / "state" / "self-backup").exists()


def test_without_a_self_backup_job_the_command_says_what_to_add(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    s = Setup(tmp_path)
    done = cli("self-backup", "-c", str(s.config))
    assert done.code == 2
    assert "prepare: orchestrator" in done.err and "transport: local" in done.err


def test_a_missing_key_file_fails_the_run_clearly(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    s = Setup(tmp_path)
    _with_msp(s)
    (tmp_path / "acme.pub").unlink()
    done = cli("self-backup", "-c", str(s.config))
    assert done.code == 1
    assert f"{tmp_path / 'acme.pub'} (named by the configuration) is missing" in done.out
    # What was gathered before the failure (history copy, secrets) is not left on the disk.
    assert not (tmp_path / "state" / "self-backup").exists()
    assert not (tmp_path / "state" / "self-backup.new").exists()


@pytest.mark.postgres
def test_self_backup_of_a_postgresql_history(tmp_path: Path, cli, postgres_url: str) -> None:  # type: ignore[no-untyped-def]
    s = Setup(tmp_path)
    key = _with_msp(s, database=postgres_url)
    assert cli("db", "upgrade", "-c", str(s.config)).code == 0
    done = cli("self-backup", "-c", str(s.config))
    assert done.code == 0, done.out + done.err
    got = _restore(s, key, tmp_path / "restored", "site-a")
    manifest = json.loads((got / "MANIFEST.json").read_text())
    assert manifest["files"]["history.pgdump"].startswith("postgresql+psycopg://")
    listing = subprocess.run(["pg_restore", "--list", str(got / "history.pgdump")],
                             capture_output=True, text=True, check=True).stdout
    assert "TABLE public runs" in listing and "TABLE public snapshots" in listing


def test_gathered_files_are_readable_by_the_service_only(tmp_path: Path) -> None:
    from orchestrator.capture.selfbackup import stage, unstage

    s = Setup(tmp_path)
    _with_msp(s)
    folder = tmp_path / "state" / "self-backup"
    staged = stage(s.loaded, folder, s.clock.now())
    assert staged.database == "history.sqlite" and staged.files >= 4
    modes = {p.relative_to(folder).as_posix(): p.stat().st_mode & 0o777
             for p in folder.rglob("*") if p.is_file()}
    assert modes and set(modes.values()) == {0o600}
    assert {"config.yaml", "history.sqlite", "MANIFEST.json", "keys/acme-acme.pub"} <= set(modes)
    unstage(folder)
    assert not folder.exists()
