"""``hvbackup keys``: the client's key pair (and the MSP escrow pair), checks, writer key."""

from __future__ import annotations

import argparse
import base64
import tempfile
from pathlib import Path
from typing import Any

from orchestrator.cli.common import add_config_argument, load_from_args
from orchestrator.cli.interactive import ask_passphrase
from orchestrator.cli.timefmt import snapshot_time
from orchestrator.cli.ui import Ui
from orchestrator.clock import Clock
from orchestrator.errors import StoreError, UsageError
from orchestrator.store.keys import (
    PrivateKey,
    PublicKey,
    WriterKeys,
    generate_private_key,
    paper_key,
    read_key_file,
    record_signer,
    signer_fingerprint,
    unseal,
    write_key_file,
)
from orchestrator.store.open import default_baie, open_for_reading
from orchestrator.store.repository import Repository, load_or_create_writer_secret


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "keys", help="create and check encryption keys",
        description="A client's backups are sealed to its public key: only its private key "
                    "(kept by the client, passphrase-protected) or the MSP escrow key opens them.",
    )
    keys_sub = parser.add_subparsers(dest="keys_command", metavar="ACTION", required=True)

    init = keys_sub.add_parser(
        "init", help="create a client's key pair (or the MSP escrow pair with --escrow)",
        description="Create a key pair: the public key goes where the configuration says "
                    "(encryption.public_key_file, or msp.escrow_public_key_file with --escrow), "
                    "the private key into --key-file, protected by a passphrase (asked on the "
                    "terminal, or HVBACKUP_PASSPHRASE). Prints the paper key once.",
    )
    add_config_argument(init)
    init.add_argument("client", metavar="CLIENT", nargs="?")
    init.add_argument("--escrow", action="store_true", help="create the MSP escrow key pair")
    init.add_argument("--key-file", metavar="F", required=True,
                      help="where to write the private key file (never overwritten)")
    init.set_defaults(handler=run_init)

    check = keys_sub.add_parser(
        "check", help="prove a key file opens the client's latest snapshot",
        description="Open the key file with its passphrase and decrypt the file list of the "
                    "client's latest snapshot on a baie (the first copy by default).",
    )
    add_config_argument(check)
    check.add_argument("client", metavar="CLIENT")
    check.add_argument("--key-file", metavar="F", required=True)
    check.add_argument("--baie", metavar="NAME")
    check.set_defaults(handler=run_check)

    restore = keys_sub.add_parser(
        "writer-restore", help="recover the orchestrator's writer key with the client's key",
        description="After losing the orchestrator's state: read the writer key sealed in the "
                    "repository with the client's (or escrow) key and store it again.",
    )
    add_config_argument(restore)
    restore.add_argument("client", metavar="CLIENT")
    restore.add_argument("--key-file", metavar="F", required=True)
    restore.add_argument("--baie", metavar="NAME")
    restore.set_defaults(handler=run_writer_restore)


def open_key(path: str) -> PrivateKey:
    key_path = Path(path)
    if not key_path.exists():
        raise UsageError(f"key file {key_path} does not exist")
    return read_key_file(key_path, ask_passphrase(f"Passphrase of {key_path}"))


def run_init(args: argparse.Namespace, clock: Clock, ui: Ui) -> int:
    loaded = load_from_args(args)
    cfg = loaded.config
    if args.escrow:
        if not cfg.msp.escrow_public_key_file:
            raise UsageError("msp.escrow_public_key_file is not set in the configuration")
        public_path = loaded.resolve(cfg.msp.escrow_public_key_file)
        label = f"{cfg.msp.name} escrow"
    else:
        if not args.client:
            raise UsageError("name the CLIENT (or use --escrow for the MSP escrow key)")
        client = cfg.clients.get(args.client)
        if client is None:
            raise UsageError(f"no client {args.client!r} in {loaded.path}")
        if client.encryption is None:
            raise UsageError(f"client {args.client} has no 'encryption:' in the configuration")
        public_path = loaded.resolve(client.encryption.public_key_file)
        label = f"{client.name} ({args.client})"
    key_path = Path(args.key_file)
    for path in (public_path, key_path):
        if path.exists():
            raise UsageError(f"{path} already exists: keys are never overwritten (backups "
                             "sealed to the old key would become unreadable)")
    passphrase = ask_passphrase(f"New passphrase for {label}", confirm=True)
    if len(passphrase) < 12:
        raise UsageError("the passphrase must have at least 12 characters")
    signer = None
    if not args.escrow:  # the client's key file records who may write its backups
        settings = loaded.repository(args.client, default_baie(loaded, args.client, None))
        signer = WriterKeys(load_or_create_writer_secret(settings.writer_key, create=True)
                            ).signer
    key = generate_private_key()
    write_key_file(key_path, key, passphrase, label, signer=signer)
    public = key.public
    public_path.parent.mkdir(parents=True, exist_ok=True)
    public_path.write_text(PublicKey(public.raw, label.replace(" ", "_")).text() + "\n")
    ui.print(f"public key:  {public_path} (the orchestrator keeps this one)")
    ui.print(f"private key: {key_path} (give it to {label}; keep it away from the orchestrator)")
    if signer is not None:
        ui.print(f"orchestrator signing key recorded in the key file: {signer_fingerprint(signer)}"
                 " (a restore refuses backups signed by any other)")
    ui.print()
    ui.print("PAPER KEY — print it and keep it in a safe; with it the backups can be read even "
             "if the key file and its passphrase are lost:")
    ui.print()
    ui.print(paper_key(key))
    return 0


def _repository(loaded: Any, client: str, baie: str | None, key: PrivateKey,
                cache: Path) -> Repository:
    if client not in loaded.config.clients:
        raise UsageError(f"no client {client!r} in {loaded.path}")
    return open_for_reading(loaded.repository(client, default_baie(loaded, client, baie)), key,
                            cache)


def run_check(args: argparse.Namespace, clock: Clock, ui: Ui) -> int:
    loaded = load_from_args(args)
    key = open_key(args.key_file)
    with tempfile.TemporaryDirectory(prefix="hvb-keys-") as cache:
        repo = _repository(loaded, args.client, args.baie, key, Path(cache))
        try:
            latest = repo.find_snapshot("latest")
            tree = repo.snapshot_tree(latest, key)
            signer = repo.writer.signer
        finally:
            repo.close()
    baie = default_baie(loaded, args.client, args.baie)
    ui.print(f"OK: {args.key_file} opens the latest snapshot of {args.client} on {baie}: "
             f"{latest.id[:12]} ({latest.meta.get('job')}, "
             f"{snapshot_time(latest.meta, loaded.config.msp.timezone)}), "
             f"{len(tree['files'])} file(s)")
    if key.signer is None:
        # Trust on first use: key files made before snapshots were signed record no signer.
        record_signer(Path(args.key_file), key, signer)
        ui.print(f"FIRST USE: {args.key_file} recorded no orchestrator signing key; it now "
                 f"records this repository's, {signer_fingerprint(signer)}. Check this "
                 "fingerprint with your provider: from now on, a repository signed by any "
                 "other key is refused.")
    else:
        ui.print(f"signed by the orchestrator the key file records ({signer_fingerprint(signer)})")
    if not latest.authenticated:
        ui.print("note: this snapshot was written before snapshots were signed (not "
                 "authenticated); the next backup's will be")
    return 0


def run_writer_restore(args: argparse.Namespace, clock: Clock, ui: Ui) -> int:
    loaded = load_from_args(args)
    if args.client not in loaded.config.clients:
        raise UsageError(f"no client {args.client!r} in {loaded.path}")
    target_path = loaded.repository(args.client,
                                    default_baie(loaded, args.client, args.baie)).writer_key
    if target_path.exists():
        raise UsageError(f"{target_path} exists already; nothing to restore")
    key = open_key(args.key_file)
    with tempfile.TemporaryDirectory(prefix="hvb-keys-") as cache:
        repo = _repository(loaded, args.client, args.baie, key, Path(cache))
        try:
            secret = unseal(base64.b64decode(repo.config["writer_sealed"]), key)
        finally:
            repo.close()
    if len(secret) != 32:
        raise StoreError("the sealed writer key has a wrong size")
    target_path.parent.mkdir(parents=True, exist_ok=True)
    target_path.touch(mode=0o600)
    target_path.write_text(base64.b64encode(secret).decode() + "\n")
    ui.print(f"writer key of {args.client} restored to {target_path}")
    return 0
