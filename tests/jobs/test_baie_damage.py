"""A nightly run against a damaged first baie: it does not count on what the baie lost, says
what it found, and repairs the first copy from the second when the second holds it intact."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path
from typing import Any

from orchestrator.findings import RunStatus
from tests.world import Setup


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _next_night(s: Setup, job: str = "partages") -> Any:
    s.clock.advance(timedelta(days=1))
    return s.run(job)


def _share(s: Setup) -> dict[str, str]:
    """What the host's share holds now (the job's exclusion left out), as a restore lays it."""
    live = s.host().local_path("D:\\Partages")
    return {str(Path("D", "Partages", p.relative_to(live))): hashlib.sha256(
        p.read_bytes()).hexdigest() for p in sorted(live.rglob("*"))
        if p.is_file() and not p.name.endswith("-00001.txt")}


def _packs(baie: Path) -> list[Path]:
    return sorted(p for p in baie.rglob("data/*/*") if p.is_file())


def test_a_pack_lost_on_the_first_baie_is_copied_back_from_the_second(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    assert s.run("partages").status == RunStatus.REUSSIE
    pack = _packs(tmp_path / "baie-a")[0]
    original = pack.read_bytes()
    pack.unlink()
    result = _next_night(s)
    assert result.status == RunStatus.AVERTISSEMENT
    [finding] = result.findings
    assert (finding.kind, finding.object, finding.code) == ("baie_damaged", "site-a",
                                                            "HVB-STORE-CORRUPT")
    assert "1 damaged or missing pack(s) on site-a: 1 copied back from the other baie" \
        in finding.message
    assert pack.read_bytes() == original
    s.restore("partages", tmp_path / "after")
    assert _tree(tmp_path / "after") == _share(s)
    assert _next_night(s).status == RunStatus.REUSSIE  # healed: nothing found any more


def test_a_pack_damaged_on_both_baies_is_sent_again(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    s.run("partages")
    name = _packs(tmp_path / "baie-a")[0].relative_to(tmp_path / "baie-a")
    for baie in ("baie-a", "baie-b"):
        raw = bytearray((tmp_path / baie / name).read_bytes())
        raw[len(raw) // 3] ^= 0x10  # same size: only reading it back shows it
        (tmp_path / baie / name).write_bytes(bytes(raw))
    result = _next_night(s)
    assert result.status == RunStatus.AVERTISSEMENT
    assert "0 copied back from the other baie, 1 dropped from the index" in \
        result.findings[0].message
    for baie in ("site-a", "site-b"):  # the newest point is whole on both copies
        s.restore("partages", tmp_path / f"after-{baie}", baie=baie)
        assert _tree(tmp_path / f"after-{baie}") == _share(s)


def test_stray_files_on_the_baie_are_ignored_and_not_copied(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    s.run("partages")
    repo_a = next(p.parent for p in (tmp_path / "baie-a").rglob("config"))
    (repo_a / "snapshots" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (repo_a / "index" / "desktop.ini").write_text("[.ShellClassInfo]\r\n")
    (next((repo_a / "data").iterdir()) / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    result = _next_night(s)
    assert result.status == RunStatus.REUSSIE, result.findings
    assert not [p for p in (tmp_path / "baie-b").rglob("*")
                if p.name in (".DS_Store", "desktop.ini", "Thumbs.db")]
    s.restore("partages", tmp_path / "out")
    assert _tree(tmp_path / "out") == _share(s)


def test_a_damaged_config_is_copied_back_from_the_second_baie(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    s.run("partages")
    config = next((tmp_path / "baie-a").rglob("config"))
    good = config.read_bytes()
    config.write_bytes(good[: len(good) // 2])
    result = _next_night(s)
    assert result.status == RunStatus.AVERTISSEMENT
    assert "damaged file(s) copied back from the other baie (config)" in \
        result.findings[0].message
    assert config.read_bytes() == next((tmp_path / "baie-b").rglob("config")).read_bytes()
    s.restore("partages", tmp_path / "out")
    assert _tree(tmp_path / "out") == _share(s)


def test_a_flip_on_the_second_baie_that_keeps_the_size_is_found_and_put_back(
        tmp_path: Path) -> None:
    """Every pack of the second baie altered in place, sizes kept: no listing shows it and the
    copy would never send them again. The nightly read-back of the sample reads them on both
    baies, says so, and puts back the first baie's intact copies."""
    s = Setup(tmp_path)
    assert s.run("partages").status == RunStatus.REUSSIE
    originals = {}
    for pack in _packs(tmp_path / "baie-b"):
        originals[pack] = pack.read_bytes()
        raw = bytearray(originals[pack])
        raw[len(raw) // 2] ^= 0x01
        pack.write_bytes(bytes(raw))
    result = _next_night(s)
    assert result.status == RunStatus.AVERTISSEMENT
    [finding] = [f for f in result.findings if f.kind == "baie_damaged"]
    assert finding.code == "HVB-STORE-CORRUPT"
    assert (f"{len(originals)} damaged pack(s) on site-b, found by reading them back: "
            f"{len(originals)} put back from site-a") in finding.message
    assert {p: p.read_bytes() for p in originals} == originals
    s.restore("partages", tmp_path / "after-b", baie="site-b")
    assert _tree(tmp_path / "after-b") == _share(s)
    assert _next_night(s).status == RunStatus.REUSSIE
