"""One hvbackup operation in its own process, so that the benchmark can measure its memory.

    python bench/hvb_worker.py backup  --state DIR --baie SPEC --src PATH [--level N]
    python bench/hvb_worker.py restore --state DIR --baie SPEC --to DIR
    python bench/hvb_worker.py put     --baie SPEC --file F   (raw upload, 32 MiB objects)

SPEC is ``local:DIR`` or ``sftp:PORT:KEY:KNOWN_HOSTS:ROOT`` (127.0.0.1). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.baie.local import LocalTarget
from orchestrator.baie.target import Target
from orchestrator.mover.source import LocalSource
from orchestrator.store.backup import backup_paths
from orchestrator.store.keys import PrivateKey, generate_private_key
from orchestrator.store.repository import Repository
from orchestrator.store.restore import Restorer


def target(spec: str) -> Target:
    kind, _, rest = spec.partition(":")
    if kind == "local":
        return LocalTarget("bench", Path(rest))
    from orchestrator.baie.sftp import SftpTarget  # as the product does: only when used

    port, key, known, root = rest.split(":", 3)
    return SftpTarget("bench", "127.0.0.1", user=os.environ.get("USER", "root"),
                      key_file=Path(key), known_hosts=Path(known), root=root, port=int(port))


def keys(state: Path) -> tuple[PrivateKey, bytes]:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    state.mkdir(parents=True, exist_ok=True)
    key_file, writer_file = state / "client.key", state / "writer"
    if not key_file.exists():
        key_file.write_text(base64.b64encode(generate_private_key().raw()).decode())
        writer_file.write_text(base64.b64encode(os.urandom(32)).decode())
    key = PrivateKey(X25519PrivateKey.from_private_bytes(base64.b64decode(key_file.read_text())))
    return key, base64.b64decode(writer_file.read_text())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("action", choices=["backup", "restore", "put"])
    parser.add_argument("--state", type=Path)
    parser.add_argument("--baie", required=True)
    parser.add_argument("--src")
    parser.add_argument("--to", type=Path)
    parser.add_argument("--file", type=Path)
    parser.add_argument("--level", type=int, default=3)
    parser.add_argument("--image-chunk-kib", type=int, default=512)
    args = parser.parse_args()
    started = time.perf_counter()
    t = target(args.baie)
    out: dict[str, object] = {}
    if args.action == "put":
        data = args.file.read_bytes()
        step = 32 * 1024 * 1024
        from concurrent.futures import ThreadPoolExecutor

        started = time.perf_counter()
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda i: t.put(f"data/raw/{i}", data[i:i + step]),
                          range(0, len(data), step)))
        out = {"bytes": len(data)}
    else:
        key, writer = keys(args.state)
        if args.action == "backup":
            repo = Repository.open_for_writing(t, writer, [key.public], args.state / "cache")
            _info, stats = backup_paths(repo, LocalSource("bench"), [args.src],
                                        {"client": "bench", "job": "bench"},
                                        compression_level=args.level,
                                        image_chunk=args.image_chunk_kib * 1024)
            out = {"bytes_read": stats.bytes_read, "bytes_new": stats.bytes_new,
                   "bytes_stored": stats.bytes_stored, "chunks": stats.chunks}
        else:
            repo = Repository.open_with_key(t, key, args.state / "restore-cache")
            repo.sync_index()
            stats_r = Restorer(repo, key).restore(repo.find_snapshot("latest"), args.to)
            out = {"bytes": stats_r.bytes, "files": stats_r.files}
        repo.close()
    t.close()
    out["seconds"] = time.perf_counter() - started
    print(json.dumps(out))


if __name__ == "__main__":
    main()
