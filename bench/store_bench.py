"""hvbackup's repository against restic and borg, on the same data, in the same run.

    make bench                       (installs restic and borgbackup from Debian when missing)
    .venv/bin/python bench/store_bench.py [--image-gib 2] [--files 20000] [--dir /tmp/hvb-bench]

Data: a disk image (empty, text-like and random 64 KiB blocks), then the same image with 2 %
of its blocks changed; a tree of small files, then 1 % of them changed; a tree of large files
cut by content (a 1 GiB SQL Server dump, a mailbox, an archive, an export: bench/bigfiles.py),
then the next day's versions of them. Each tool backs them
up into a local repository and into one reached over SSH on loopback (restic: SFTP; borg: its
own protocol over SSH; hvbackup: SFTP), then restores the image. Each tool runs in its own
process: peak memory is that process's maximum resident size; before each timed step the data
it reads is read once, for every tool alike (see warm()). The local first backup, the figure
with a goal that wanders most from run to run here, is the median of several rounds in which
the tools take turns (--rounds), for the image and for the large files; the restores, the
median of three. Prints figures and ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


from tests.servers import sshd  # noqa: E402  (the same real sshd the tests start)

MB = 1_000_000
TOOLS = ("hvbackup", "restic", "borg")
PASSWORD = "bench-passphrase"


@dataclass
class Run:
    seconds: float
    peak_mb: float
    output: str = ""


def run(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> Run:
    os.sync()  # every tool starts with nothing left to write back from the previous step
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, **(env or {})}, cwd=cwd)
    _pid, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    out = proc.stdout.read().decode() if proc.stdout else ""
    err = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} failed: {err[-2000:]}")
    return Run(seconds, usage.ru_maxrss / 1024, out)


def warm(path: Path) -> None:
    """Read a file, or every file under a folder, into the page cache. Done for every tool
    before each timed step, so that all start alike: this machine drops its page cache at
    unforeseeable moments, and a cold read (about 350 MB/s here) would time the disk, not the
    tools."""
    for file in [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()):
        with file.open("rb", buffering=0) as f:
            while f.read(8 * 1024 * 1024):
                pass


def tree_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def make_image(path: Path, gib: float, seed: int = 1) -> None:
    rng = random.Random(seed)
    text = (b"facture client commande livraison stock article remise total TVA echeance "
            * 4000)
    blocks = int(gib * 1024**3) // 65536
    empty = bytes(65536)
    with path.open("wb") as f:
        for _index in range(blocks):
            kind = rng.random()
            if kind < 0.30:
                # Empty areas are written, not left as holes: an image file on the host is
                # not sparse, and the first read of a hole costs every tool about a second.
                f.write(empty)
            elif kind < 0.65:
                start = rng.randrange(2000)
                f.write(rng.randbytes(16) + text[start:start + 65520])
            else:
                f.write(rng.randbytes(65536))  # seeded: every tool gets the same bytes


def change_image(path: Path, fraction: float, seed: int = 2) -> None:
    """Rewrite ``fraction`` of the image's 64 KiB blocks, at random places."""
    rng = random.Random(seed)
    blocks = path.stat().st_size // 65536
    with path.open("r+b") as f:
        for index in rng.sample(range(blocks), int(blocks * fraction)):
            f.seek(index * 65536)
            f.write(rng.randbytes(65536))


def change_image_few(path: Path, writes: int, seed: int = 5) -> None:
    """A quiet day: a few 64 KiB writes (the case measured in the repository issue)."""
    rng = random.Random(seed)
    with path.open("r+b") as f:
        for _ in range(writes):
            f.seek(rng.randrange(path.stat().st_size - 65536))
            f.write(rng.randbytes(65536))


def make_tree(root: Path, files: int, seed: int = 3) -> None:
    rng = random.Random(seed)
    text = b"compte rendu de reunion, dossier client, facture " * 2000
    for i in range(files):
        path = root / f"dossier{i % 50:02d}" / f"document-{i:05d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        size = rng.randrange(500, 40_000)
        path.write_bytes(text[:size // 2] + rng.randbytes(size - size // 2))


def change_tree(root: Path, fraction: float, seed: int = 4) -> None:
    rng = random.Random(seed)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    for path in rng.sample(files, int(len(files) * fraction)):
        with path.open("ab") as f:
            f.write(rng.randbytes(2000))


@dataclass
class Tool:
    name: str
    results: dict[str, float] = field(default_factory=dict)


class Hvbackup:
    name = "hvbackup"

    def __init__(self, work: Path, baie: str, image_chunk_kib: int = 512) -> None:
        self.state = work / "state"
        self.baie = baie
        self.image_chunk_kib = image_chunk_kib
        self.repo_dir = Path(baie.split(":", 1)[1]) if baie.startswith("local:") \
            else Path(baie.rsplit(":", 1)[1])

    def _worker(self, *args: str) -> Run:
        return run([sys.executable, str(REPO / "bench" / "hvb_worker.py"), *args,
                    "--state", str(self.state), "--baie", self.baie])

    def init(self) -> None:
        pass

    def backup(self, src: Path, tag: str) -> Run:
        return self._worker("backup", "--src", str(src), "--image-chunk-kib",
                            str(self.image_chunk_kib))

    def restore(self, to: Path) -> Run:
        return self._worker("restore", "--to", str(to))


class Restic:
    name = "restic"

    def __init__(self, work: Path, repo: str, sftp_command: str | None, repo_dir: Path) -> None:
        self.repo = repo
        self.repo_dir = repo_dir
        self.env = {"RESTIC_PASSWORD": PASSWORD, "RESTIC_CACHE_DIR": str(work / "cache")}
        self.extra = ["-o", f"sftp.command={sftp_command}"] if sftp_command else []

    def init(self) -> None:
        run(["restic", "-r", self.repo, *self.extra, "init"], self.env)

    def backup(self, src: Path, tag: str) -> Run:
        return run(["restic", "-r", self.repo, *self.extra, "backup", "--quiet", str(src)],
                   self.env)

    def restore(self, to: Path) -> Run:
        return run(["restic", "-r", self.repo, *self.extra, "restore", "latest", "--target",
                    str(to)], self.env)


class Borg:
    name = "borg"

    def __init__(self, work: Path, repo: str, rsh: str | None, repo_dir: Path) -> None:
        self.repo = repo
        self.repo_dir = repo_dir
        self.env = {"BORG_PASSPHRASE": PASSWORD, "BORG_BASE_DIR": str(work / "base"),
                    "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes"}
        if rsh:
            self.env["BORG_RSH"] = rsh

    def init(self) -> None:
        run(["borg", "init", "-e", "repokey", self.repo], self.env)

    def backup(self, src: Path, tag: str) -> Run:
        return run(["borg", "create", "--compression", "zstd,3", f"{self.repo}::{tag}",
                    str(src)], self.env)

    def restore(self, to: Path) -> Run:
        to.mkdir(parents=True, exist_ok=True)
        name = run(["borg", "list", "--last", "1", "--short", self.repo], self.env).output.strip()
        return run(["borg", "extract", f"{self.repo}::{name}"], self.env, cwd=to)


@dataclass
class BigFiles:
    """The large-files tree: its two days, generated once, and where tools read it."""

    day1: Path
    day2: Path
    live: Path

    def first_day(self) -> int:
        shutil.rmtree(self.live, ignore_errors=True)
        shutil.copytree(self.day1, self.live)
        return tree_size(self.live)

    def next_day(self) -> int:
        for path in self.day2.iterdir():
            shutil.copyfile(path, self.live / path.name)
        return tree_size(self.live)


def restore_median(tool: object, repo_dir: Path, work: Path) -> Run:
    """The median of three restores of the latest backup (writing GBs of new files wanders
    from 1 s to 5 s here); its peak memory is the largest of the three."""
    restores = []
    for _ in range(3):
        warm(repo_dir)
        restores.append(tool.restore(work / "restored"))  # type: ignore[attr-defined]
        shutil.rmtree(work / "restored", ignore_errors=True)
    middle = statistics.median(r.seconds for r in restores)
    return Run(middle, max(r.peak_mb for r in restores))


def scenario(tool: object, image: Path, tree: Path, work: Path, image_bytes: int,
             change_fraction: float, big: BigFiles) -> dict[str, float]:
    results: dict[str, float] = {}
    tool.init()  # type: ignore[attr-defined]
    repo_dir: Path = tool.repo_dir  # type: ignore[attr-defined]
    warm(image)
    first = tool.backup(image, "image-1")  # type: ignore[attr-defined]
    size_1 = tree_size(repo_dir)
    results["first MB/s"] = image_bytes / MB / first.seconds
    results["first peak MB"] = first.peak_mb
    change_image(image, change_fraction)
    warm(image)
    second = tool.backup(image, "image-2")  # type: ignore[attr-defined]
    results["second s"] = second.seconds
    results["second added MB"] = (tree_size(repo_dir) - size_1) / MB
    results["second peak MB"] = second.peak_mb
    size_before_few = tree_size(repo_dir)
    change_image_few(image, writes=5)
    tool.backup(image, "image-3")  # type: ignore[attr-defined]
    results["5 writes added MB"] = (tree_size(repo_dir) - size_before_few) / MB
    restore = restore_median(tool, repo_dir, work)
    results["restore MB/s"] = image_bytes / MB / restore.seconds
    results["restore peak MB"] = restore.peak_mb
    size_2 = tree_size(repo_dir)
    warm(tree)
    files_first = tool.backup(tree, "tree-1")  # type: ignore[attr-defined]
    size_3 = tree_size(repo_dir)
    change_tree(tree, 0.01)
    warm(tree)
    files_second = tool.backup(tree, "tree-2")  # type: ignore[attr-defined]
    results["tree first s"] = files_first.seconds
    results["tree first MB"] = (size_3 - size_2) / MB
    results["tree second s"] = files_second.seconds
    results["tree second added MB"] = (tree_size(repo_dir) - size_3) / MB
    size_4 = tree_size(repo_dir)
    big_bytes = big.first_day()
    warm(big.live)
    big_first = tool.backup(big.live, "big-1")  # type: ignore[attr-defined]
    size_5 = tree_size(repo_dir)
    results["big first MB/s"] = big_bytes / MB / big_first.seconds
    results["big first peak MB"] = big_first.peak_mb
    results["big first MB"] = (size_5 - size_4) / MB
    big_bytes = big.next_day()
    warm(big.live)
    big_second = tool.backup(big.live, "big-2")  # type: ignore[attr-defined]
    results["big second s"] = big_second.seconds
    results["big second added MB"] = (tree_size(repo_dir) - size_5) / MB
    results["big second peak MB"] = big_second.peak_mb
    restore = restore_median(tool, repo_dir, work)  # the latest backup: the large files
    results["big restore MB/s"] = big_bytes / MB / restore.seconds
    results["big restore peak MB"] = restore.peak_mb
    return results


def sftp_upload(work: Path, server: object, size_mb: int) -> dict[str, float]:
    blob = work / "upload.bin"
    with blob.open("wb") as f:  # written in pieces: this process stays small (see run())
        for _ in range(size_mb):
            f.write(os.urandom(MB))
    port, key, known = server.port, server.key_file, server.known_hosts  # type: ignore[attr-defined]
    batch = work / "sftp.batch"
    remote = server.root / "openssh-upload.bin"  # type: ignore[attr-defined]
    batch.write_text(f"put {blob} {remote}\n")
    theirs, ours = [], []
    for _ in range(3):  # alternated, medians kept: loopback figures wander from run to run
        openssh = run(["sftp", "-q", "-b", str(batch), "-P", str(port), "-i", str(key),
                       "-o", f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=yes",
                       f"{os.environ.get('USER', 'root')}@127.0.0.1"])
        theirs.append(openssh.seconds)
        done = run([sys.executable, str(REPO / "bench" / "hvb_worker.py"), "put", "--file",
                    str(blob), "--baie",
                    f"sftp:{port}:{key}:{known}:{server.root / 'hvb-upload'}"])  # type: ignore[attr-defined]
        ours.append(json.loads(done.output)["seconds"])
    return {"openssh sftp MB/s": size_mb / statistics.median(theirs),
            "hvbackup sftp MB/s": size_mb / statistics.median(ours)}


def small_chunks(work: Path, gib: float, change: float) -> float:
    """MB added by the second image backup with 256 KiB image chunks (`image_chunk_kib: 256`),
    the same data and change as the main scenario, into a local baie."""
    image, repo = work / "small-chunks.img", work / "small-chunks-repo"
    repo.mkdir()
    make_image(image, gib)
    tool = Hvbackup(work / "small-chunks", f"local:{repo}", image_chunk_kib=256)
    (work / "small-chunks").mkdir()
    tool.init()
    tool.backup(image, "1")
    before = tree_size(repo)
    change_image(image, change)
    tool.backup(image, "2")
    image.unlink()
    return (tree_size(repo) - before) / MB


def memory_growth(work: Path, sizes_gib: list[int]) -> list[tuple[int, float]]:
    """Peak memory of a backup of sparse images of growing size (chunks of 512 KiB)."""
    points = []
    for gib in sizes_gib:
        image = work / f"sparse-{gib}.vhdx"
        with image.open("wb") as f:
            f.truncate(gib * 1024**3)
        state = work / f"mem-state-{gib}"
        result = run([sys.executable, str(REPO / "bench" / "hvb_worker.py"), "backup",
                      "--state", str(state), "--baie", f"local:{work / f'mem-baie-{gib}'}",
                      "--src", str(image)])
        points.append((gib * 1024**3 // (512 * 1024), result.peak_mb))
        image.unlink()
    return points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image-gib", type=float, default=2.0)
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--change", type=float, default=0.02)
    parser.add_argument("--dump-mib", type=int, default=1024,
                        help="size of the SQL Server dump of the large-files tree")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/hvb-bench"))
    parser.add_argument("--memory-gib", default="8,32,128",
                        help="sizes of the sparse images for the memory curve")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--keep", action="store_true",
                        help="leave the data and repositories in --dir (about 25 GB)")
    parser.add_argument("--rounds", type=int, default=4,
                        help="extra first backups into a local baie, tools taking turns; the "
                             "median of all is reported (one sample wanders by a third here)")
    args = parser.parse_args()
    for tool in ("restic", "borg", "sftp"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is missing: run `make bench`, which installs it")
    shutil.rmtree(args.dir, ignore_errors=True)
    args.dir.mkdir(parents=True)
    data = args.dir / "data"
    data.mkdir()
    image_bytes = int(args.image_gib * 1024**3)
    print(f"data: {args.image_gib:g} GiB image, {args.files} small files, large files with a "
          f"{args.dump_mib} MiB dump; 2 cores, {os.cpu_count()} CPU(s) seen", flush=True)
    print("  generating the large files and their next day...", flush=True)
    big = BigFiles(data / "big-day1", data / "big-day2", data / "Sauvegardes")
    run([sys.executable, str(REPO / "bench" / "bigfiles.py"), str(big.day1), str(big.day2),
         str(args.dump_mib)])
    all_results: dict[str, dict[str, float]] = {}
    with sshd(args.dir / "sshd") as server:
        user = os.environ.get("USER", "root")
        ssh = (f"ssh -p {server.port} -i {server.key_file} -o UserKnownHostsFile="
               f"{server.known_hosts} -o StrictHostKeyChecking=yes")
        def tool_for(name: str, where: str, work: Path, repo_dir: Path) -> object:
            if name == "hvbackup":
                baie = f"local:{repo_dir}" if where == "local" else \
                    f"sftp:{server.port}:{server.key_file}:{server.known_hosts}:{repo_dir}"
                return Hvbackup(work, baie)
            if name == "restic":
                repo = (str(repo_dir) if where == "local"
                        else f"sftp:{user}@127.0.0.1:{repo_dir}")
                return Restic(work, repo, f"{ssh} {user}@127.0.0.1 -s sftp"
                              if where == "sftp" else None, repo_dir)
            repo = str(repo_dir) if where == "local" else \
                f"ssh://{user}@127.0.0.1:{server.port}{repo_dir}"
            return Borg(work, repo, ssh if where == "sftp" else None, repo_dir)

        image, tree = data / "ERP01.vhdx", data / "Partages"
        firsts: dict[str, list[float]] = {name: [] for name in TOOLS}
        firsts_big: dict[str, list[float]] = {name: [] for name in TOOLS}
        if args.rounds > 0:
            print(f"  first backups into a local baie, {args.rounds} rounds, tools taking turns...",
                  flush=True)
            make_image(image, args.image_gib)
            for _round in range(args.rounds):
                for name in TOOLS:
                    work = args.dir / f"round-{name}"
                    work.mkdir()
                    tool = tool_for(name, "local", work, work / "repo")
                    tool.init()  # type: ignore[attr-defined]
                    warm(image)
                    firsts[name].append(tool.backup(image, "round").seconds)  # type: ignore[attr-defined]
                    shutil.rmtree(work)
                    work.mkdir()
                    tool = tool_for(name, "local", work, work / "repo")
                    tool.init()  # type: ignore[attr-defined]
                    big.first_day()
                    warm(big.live)
                    firsts_big[name].append(tool.backup(big.live, "round").seconds)  # type: ignore[attr-defined]
                    shutil.rmtree(work)
            for what, samples in (("image", firsts), ("large files", firsts_big)):
                print(f"    {what}, seconds: " + "; ".join(
                    f"{name} {', '.join(f'{t:.2f}' for t in samples[name])}" for name in TOOLS),
                    flush=True)
        for where in ("local", "sftp"):
            for name in TOOLS:
                work = args.dir / f"{name}-{where}"
                work.mkdir()
                shutil.rmtree(tree, ignore_errors=True)
                make_image(image, args.image_gib)
                make_tree(tree, args.files)
                repo_dir = (work / "repo") if where == "local" else server.root / f"{name}-repo"
                tool = tool_for(name, where, work, repo_dir)
                print(f"  {name} ({where})...", flush=True)
                results = scenario(tool, image, tree, work, image_bytes, args.change, big)
                if where == "local" and firsts[name]:
                    # The scenario's own first backup is one more sample; the median is kept.
                    big_bytes = tree_size(big.day1)
                    for key, volume, rounds in (("first MB/s", image_bytes, firsts[name]),
                                                ("big first MB/s", big_bytes, firsts_big[name])):
                        samples = [*rounds, volume / MB / results[key]]
                        results[key] = volume / MB / statistics.median(samples)
                all_results[f"{name} {where}"] = results
        print("  raw SFTP upload...", flush=True)
        upload = sftp_upload(args.dir, server, 512)
    print("  hvbackup with 256 KiB image chunks...", flush=True)
    upload["256k second added MB"] = small_chunks(args.dir, args.image_gib, args.change)
    print("  memory against the number of chunks...", flush=True)
    curve = memory_growth(args.dir, [int(x) for x in args.memory_gib.split(",")])
    report(all_results, upload, curve, args)
    if not args.keep:
        shutil.rmtree(args.dir, ignore_errors=True)  # about 25 GB of data and repositories


def report(results: dict[str, dict[str, float]], upload: dict[str, float],
           curve: list[tuple[int, float]], args: argparse.Namespace) -> None:
    columns = list(next(iter(results.values())))
    print()
    print(f"{'':16}" + "".join(f"{c:>17}" for c in columns))
    for name, values in results.items():
        print(f"{name:16}" + "".join(f"{values[c]:>17.1f}" for c in columns))
    print()
    for where in ("local", "sftp"):
        ours, restic, borg = (results[f"{t} {where}"] for t in ("hvbackup", "restic", "borg"))
        print(f"ratios, {where} baie (hvbackup / restic, hvbackup / borg):")
        print(f"  first backup throughput  {ours['first MB/s'] / restic['first MB/s']:.2f}x"
              f"  {ours['first MB/s'] / borg['first MB/s']:.2f}x   (goal locally: >= 2x restic)")
        print(f"  second backup speed      {restic['second s'] / ours['second s']:.2f}x"
              f"  {borg['second s'] / ours['second s']:.2f}x   (goal: >= 1.5x faster)")
        added = ours["second added MB"]
        print(f"  bytes added by the 2nd   {added / max(restic['second added MB'], 0.001):.2f}"
              f"   {added / max(borg['second added MB'], 0.001):.2f}"
              "    (goal: <= 0.60 of restic)")
        if where == "local":
            small = upload["256k second added MB"]
            print(f"  same, 256 KiB chunks     {small / max(restic['second added MB'], 0.001):.2f}"
                  f"   {small / max(borg['second added MB'], 0.001):.2f}"
                  "    (image_chunk_kib: 256, per job)")
        few = ours["5 writes added MB"]
        print(f"  bytes added by 5 writes  {few / max(restic['5 writes added MB'], 0.001):.2f}"
              f"   {few / max(borg['5 writes added MB'], 0.001):.2f}    (a quiet day)")
        print(f"  restore throughput       {ours['restore MB/s'] / restic['restore MB/s']:.2f}x"
              f"  {ours['restore MB/s'] / borg['restore MB/s']:.2f}x   (goal: >= 1x)")
        print(f"  peak memory, first       {ours['first peak MB']:.0f} MB (goal: < 512 MB)")
        print(f"  large files, cut by content ({where} baie):")
        print(f"    first backup throughput  "
              f"{ours['big first MB/s'] / restic['big first MB/s']:.2f}x"
              f"  {ours['big first MB/s'] / borg['big first MB/s']:.2f}x   "
              "(goal locally: >= 2x restic)")
        print(f"    second backup speed      {restic['big second s'] / ours['big second s']:.2f}x"
              f"  {borg['big second s'] / ours['big second s']:.2f}x   (goal: >= 1.5x faster)")
        big_added = ours["big second added MB"]
        print(f"    bytes added by the 2nd   "
              f"{big_added / max(restic['big second added MB'], 0.001):.2f}"
              f"   {big_added / max(borg['big second added MB'], 0.001):.2f}"
              "    (goal: <= 0.60 of restic)")
        print(f"    restore throughput       "
              f"{ours['big restore MB/s'] / restic['big restore MB/s']:.2f}x"
              f"  {ours['big restore MB/s'] / borg['big restore MB/s']:.2f}x   (goal: >= 1x)")
        peak = max(ours["big first peak MB"], ours["big second peak MB"],
                   ours["big restore peak MB"])
        print(f"    peak memory              {peak:.0f} MB (goal: < 512 MB)")
    ratio = upload["hvbackup sftp MB/s"] / upload["openssh sftp MB/s"]
    print(f"raw SFTP upload on loopback: hvbackup {upload['hvbackup sftp MB/s']:.0f} MB/s, "
          f"OpenSSH sftp {upload['openssh sftp MB/s']:.0f} MB/s: {ratio:.2f} (goal >= 0.80)")
    (c1, m1), (c2, m2) = curve[0], curve[-1]
    slope = (m2 - m1) / (c2 - c1) if c2 != c1 else 0.0
    projected = m2 + slope * (4_194_304 - c2)
    print("memory against chunks (sparse images): "
          + ", ".join(f"{c} chunks: {m:.0f} MB" for c, m in curve))
    print(f"  {slope * 1e6:.0f} bytes per chunk -> a 2 TB image (4,194,304 chunks of 512 KiB): "
          f"about {projected:.0f} MB (goal < 512 MB)")
    if args.json:
        args.json.write_text(json.dumps({"results": results, "upload": upload,
                                         "memory_curve": curve,
                                         "projected_2tb_mb": projected}, indent=1))


if __name__ == "__main__":
    main()
