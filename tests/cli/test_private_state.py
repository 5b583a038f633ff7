"""What the orchestrator keeps (history, state, outbox, caches) is its account's alone, like the
keys: folders 0700, files 0600, for a new install and for one an older version left open."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from tests.world import Setup


def _open_to_others(root: Path) -> list[str]:
    return [f"{p} {stat.filemode(p.lstat().st_mode)}" for p in [root, *root.rglob("*")]
            if not p.is_symlink() and p.lstat().st_mode & 0o077]


def test_a_new_install_keeps_its_state_private(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    s = Setup(tmp_path)
    state = tmp_path / "state"
    shutil.rmtree(state)  # nothing yet: the commands create it all
    assert cli("db", "upgrade", "-c", str(s.config)).code == 0
    result = cli("nights", "-c", str(s.config), "--start", "2026-11-16", "--nights", "1")
    assert result.code == 0, result.err
    assert (state / "hvbackup.db").stat().st_size > 0
    assert (state / "cache").is_dir()
    assert _open_to_others(state) == []
    assert "permissions tightened" not in result.err
    assert stat.S_IMODE(os.lstat(state).st_mode) == 0o700
    assert stat.S_IMODE(os.lstat(state / "hvbackup.db").st_mode) == 0o600


def test_an_install_left_readable_is_tightened_on_start(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    s = Setup(tmp_path)
    state = tmp_path / "state"
    s.run("partages")
    for path in [state, *state.rglob("*")]:  # as an older version left it (umask 022)
        path.chmod(0o755 if path.is_dir() else 0o644)
    assert _open_to_others(state)
    result = cli("backup", "-c", str(s.config), "acme/partages")
    assert result.code == 0, result.err
    assert _open_to_others(state) == []
    assert f"{state} was readable by other local users: permissions tightened" in result.err


def test_the_history_file_is_private_wherever_it_lives(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    s = Setup(tmp_path)
    elsewhere = tmp_path / "var"
    text = s.config.read_text().replace(f"state_dir: {tmp_path / 'state'}",
                                        f"state_dir: {tmp_path / 'state'}\n"
                                        f"database: sqlite:///{elsewhere / 'h.db'}")
    assert text != s.config.read_text()
    s.config.write_text(text)
    assert cli("db", "upgrade", "-c", str(s.config)).code == 0
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in elsewhere.iterdir()}
    assert modes and set(modes.values()) == {0o600}, modes
