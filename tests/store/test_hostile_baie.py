"""A baie that changes files on purpose: parts of snapshots swapped or padded, a repository
forged with another writer key sealed to the client's public key. Each attempt is refused
(left out of the listing, reported by verify, never restored), and counted."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestrator.baie.local import LocalTarget
from orchestrator.baie.sftp import SftpTarget
from orchestrator.baie.target import Target
from orchestrator.errors import ForgedRepository, StoreError
from orchestrator.store import format as fmt
from orchestrator.store.keys import PrivateKey, WriterKeys, unseal
from orchestrator.store.repository import Repository
from orchestrator.store.restore import Restorer
from orchestrator.store.verify import verify
from tests.servers import SshServer, sshd
from tests.store.helpers import Store, restored


@pytest.fixture(scope="module")
def ssh_server(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    with sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


def _baie(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Target:
    if kind == "local":
        return LocalTarget("site-a", tmp_path / "baie")
    server: SshServer = request.getfixturevalue("ssh_server")
    (tmp_path / "sftp-baie").mkdir()
    return SftpTarget("paris-1", "127.0.0.1", user=server.user, key_file=server.key_file,
                      known_hosts=server.known_hosts, root=str(tmp_path / "sftp-baie"),
                      port=server.port)


def _u32(n: int) -> bytes:
    return n.to_bytes(4, "big")


def _assemble(magic: bytes, meta: bytes, segments: list[bytes], sealed: bytes, tree: bytes,
              signature: bytes | None) -> bytes:
    out = [magic, _u32(len(meta)), meta, _u32(len(segments))]
    for segment in segments:
        out += [_u32(len(segment)), segment]
    out += [_u32(len(sealed)), sealed]
    if signature is None:
        return b"".join([*out, tree])
    return b"".join([*out, _u32(len(tree)), tree, signature])


def _plant(target: Target, data: bytes) -> str:
    snap_id = fmt.sha256(data).hex()
    target.put(f"snapshots/{snap_id}", data)  # named by its content, as a careful forger does
    return snap_id


def _two_nights(tmp_path: Path, target: Target | None = None
                ) -> tuple[Store, Path, bytes, bytes, str, str]:
    """Two nights of one 4 MiB disk image (same size, same chunk count, other bytes)."""
    store = Store(tmp_path, target)
    src = tmp_path / "ERP01.vhdx"
    monday, tuesday = os.urandom(4 << 20), os.urandom(4 << 20)
    src.write_bytes(monday)
    first, _ = store.backup([src])
    src.write_bytes(tuesday)
    second, _ = store.backup([src])
    return store, src, monday, tuesday, first.id, second.id


def _recorded(store: Store) -> PrivateKey:
    """The client's key as its key file holds it after ``keys init``: with the signer."""
    return PrivateKey(store.key.key, WriterKeys(store.writer).signer)


def _attempt(store: Store, snap_id: str, src: Path, out: Path, key: PrivateKey) -> str:
    """'refused' or 'restored' (the bytes restored, whichever they are)."""
    repo = Repository.open_with_key(store.target, key, store.root / "reader-cache")
    try:
        repo.sync_index()
        try:
            info = repo.find_snapshot(snap_id)
            Restorer(repo, key).restore(info, out)
        except StoreError:
            return "refused"
    finally:
        repo.close()
    assert restored(out, src).exists()
    return "restored"


@pytest.mark.parametrize("kind", ["local", "sftp"])
def test_swapped_padded_or_recombined_snapshot_parts_are_refused(
        tmp_path: Path, kind: str, request: pytest.FixtureRequest) -> None:
    store, src, monday, tuesday, first, second = _two_nights(tmp_path,
                                                             _baie(kind, tmp_path, request))
    target = store.target
    a = fmt._split_snapshot(target.get(f"snapshots/{first}"), "a")
    b = fmt._split_snapshot(target.get(f"snapshots/{second}"), "b")
    assert a.version == b.version == 2 and len(a.segments) == len(b.segments) == 1
    padded = a.sealed + bytes(100)
    forgeries = {
        "Monday's list with Tuesday's chunk ids, Monday's signature":
            _assemble(fmt.SNAP2_MAGIC, a.meta_ct, b.segments, a.sealed, a.tree_ct, a.signature),
        "Monday's list with Tuesday's chunk ids, Tuesday's signature":
            _assemble(fmt.SNAP2_MAGIC, a.meta_ct, b.segments, a.sealed, a.tree_ct, b.signature),
        "sealed key padded (a duplicate of Monday)":
            _assemble(fmt.SNAP2_MAGIC, a.meta_ct, a.segments, padded, a.tree_ct, a.signature),
        "sealed key count changed":
            _assemble(fmt.SNAP2_MAGIC, a.meta_ct, a.segments, bytes([2]) + a.sealed[1:],
                      a.tree_ct, a.signature),
        "Tuesday's time and job over Monday's ids and list":
            _assemble(fmt.SNAP2_MAGIC, b.meta_ct, a.segments, a.sealed, a.tree_ct, a.signature),
        "bytes after the signature":
            target.get(f"snapshots/{first}") + b"\0" * 16,
        "signature cut short":
            target.get(f"snapshots/{first}")[:-1],
        "no segment at all":
            _assemble(fmt.SNAP2_MAGIC, a.meta_ct, [], a.sealed, a.tree_ct, a.signature),
        "parts of a signed snapshot in an unsigned (version 1) file":
            _assemble(fmt.SNAP_MAGIC, a.meta_ct, b.segments, a.sealed, a.tree_ct, None),
    }
    key = _recorded(store)
    outcomes = {}
    for n, (what, data) in enumerate(forgeries.items()):
        snap_id = _plant(target, data)
        outcomes[what] = _attempt(store, snap_id, src, tmp_path / f"out{n}", key)
    trials, refused = len(outcomes), sum(o == "refused" for o in outcomes.values())
    wrongly_restored = [w for w, o in outcomes.items() if o == "restored"]
    print(f"hostile snapshot parts ({kind}): {trials} trials, {refused} refused, "
          f"{len(wrongly_restored)} wrongly restored")
    assert wrongly_restored == []

    repo = Repository.open_with_key(target, key, tmp_path / "verify-cache")
    report = verify(repo, subset=1.0, key=key)
    repo.close()
    assert report.snapshots == 2  # the two real nights, and only them
    refused_lines = [p.what for p in report.problems if "is refused" in p.what]
    assert len(refused_lines) == trials
    assert any("not signed by this client's orchestrator" in w for w in refused_lines)
    assert any("sealed key has" in w for w in refused_lines)
    # The real nights are untouched and restore as they were.
    assert _attempt(store, first, src, tmp_path / "real1", key) == "restored"
    assert restored(tmp_path / "real1", src).read_bytes() == monday
    assert _attempt(store, second, src, tmp_path / "real2", key) == "restored"
    assert restored(tmp_path / "real2", src).read_bytes() == tuesday
    target.close()


def test_the_orchestrator_leaves_refused_snapshots_out_of_its_listing(tmp_path: Path) -> None:
    store, _src, _m, _t, first, second = _two_nights(tmp_path)
    a = fmt._split_snapshot(store.target.get(f"snapshots/{first}"), "a")
    dup = _plant(store.target, _assemble(fmt.SNAP2_MAGIC, a.meta_ct, a.segments,
                                         a.sealed + bytes(7), a.tree_ct, a.signature))
    repo = store.writer_repo()
    try:
        assert [s.id for s in repo.snapshots()] == [first, second]
        assert list(repo.refused) == [f"snapshots/{dup}"]
    finally:
        repo.close()


def test_a_repository_forged_with_another_writer_key_is_refused(tmp_path: Path) -> None:
    """Whoever holds the client's public key (the MSP) builds a repository of its own
    choosing, sealed to the client: a key file that records the orchestrator's signing key
    refuses it, naming both keys; one that records none yet opens it but says the writer
    is not proven."""
    real = Store(tmp_path / "real")
    src = tmp_path / "compta.txt"
    src.write_bytes(b"le vrai grand livre\n" * 1000)
    real.backup([src])
    forger = Store(tmp_path / "forged", target=LocalTarget("site-a", tmp_path / "forged-baie"))
    forger.key = real.key  # sealed to the client's public key, which the MSP holds
    src.write_bytes(b"un faux grand livre\n" * 1000)
    forger.backup([src])

    with pytest.raises(ForgedRepository, match="not written by the orchestrator your key file "
                                               "records"):
        Repository.open_with_key(forger.target, _recorded(real), tmp_path / "c1")
    unproven = Repository.open_with_key(forger.target, real.key, tmp_path / "c2")
    try:
        assert verify(unproven).writer_proven is False
    finally:
        unproven.close()
    genuine = Repository.open_with_key(real.target, _recorded(real), tmp_path / "c3")
    try:
        report = verify(genuine)
        assert report.ok and report.writer_proven and report.unauthenticated == []
    finally:
        genuine.close()


def test_snapshots_written_before_signing_still_restore_and_are_reported(tmp_path: Path
                                                                          ) -> None:
    """A version 1 snapshot (unsigned, as written before December 2026) restores as before;
    verify names it as not authenticated."""
    store = Store(tmp_path)
    src = tmp_path / "notes.txt"
    src.write_bytes(b"compte rendu " * 5000)
    info, _ = store.backup([src])
    data = store.target.get(info.name)
    repo = store.reader_repo()
    header = repo.snapshot_header(info)
    tree_key = unseal(fmt.snapshot_sealed_key(data, info.name), store.key)
    tree = fmt.decode_snapshot_tree(data, tree_key, info.name)
    legacy = fmt.encode_snapshot(header, tree, fmt.snapshot_sealed_key(data, info.name),
                                 tree_key, repo.writer.index_key)
    repo.close()
    store.target.delete(info.name)
    legacy_id = _plant(store.target, legacy)
    assert _attempt(store, legacy_id, src, tmp_path / "out", _recorded(store)) == "restored"
    assert restored(tmp_path / "out", src).read_bytes() == src.read_bytes()
    repo = store.reader_repo()
    try:
        report = verify(repo, subset=1.0, key=store.key)
        assert report.ok
        assert report.unauthenticated == [f"{legacy_id[:12]} (erp, {header.meta['time'][:16]})"]
    finally:
        repo.close()


def test_prune_deletes_nothing_while_snapshot_files_are_refused(tmp_path: Path) -> None:
    """A config whose repository id was changed makes every signed snapshot fail its
    signature: nothing may then look unreferenced to prune."""
    import json

    from orchestrator.errors import RepositoryCorrupt
    from orchestrator.store.prune import prune

    store, _src, _m, _t, first, second = _two_nights(tmp_path)
    packs = sorted(p.name for p in (tmp_path / "baie" / "data").rglob("*") if p.is_file())
    config = json.loads(store.target.get("config"))
    config["id"] = "0" * 32
    store.target.put("config", json.dumps(config).encode())
    repo = store.writer_repo()
    try:
        assert repo.snapshots() == [] and len(repo.refused) == 2
        with pytest.raises(RepositoryCorrupt, match="prune stopped, nothing deleted"):
            prune(repo)
    finally:
        repo.close()
    assert sorted(p.name for p in (tmp_path / "baie" / "data").rglob("*")
                  if p.is_file()) == packs
    assert store.target.stat(f"snapshots/{first}") and store.target.stat(f"snapshots/{second}")
