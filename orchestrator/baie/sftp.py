"""``SftpTarget``: the one door to a remote baie over SFTP (paramiko).

* The server's host key must be in the configured known_hosts file: it is never accepted
  blindly, so a machine that pretends to be the baie gets nothing.
* AES-GCM ciphers first (fastest where AES-NI exists), key authentication only.
* Writes are pipelined with large requests (paramiko's default is one 32 KiB request per
  round trip: 1 MB/s on loopback, a fraction of a slow link), to a temporary name, then
  renamed into place (``posix-rename``), so a reader never sees half a file. Every file is
  created read-only (mode 0444 asked, the account's umask applied), so that an account that
  may only add files (below) can never open one for writing afterwards.
* ``append_only``: the account may add files and read them, never remove, rename or change
  one (docs/baie-setup.md: sshd refuses those requests). Each file is then written once,
  directly under its final name, created exclusively (``SSH_FXF_EXCL``: an existing file is
  never opened for writing); a name already taken holds either the same bytes (a file put
  again: done) or the remains of an upload cut short, which only the maintenance access can
  clear. While an upload is under way its name is left out of this process's listings.
* Before the rename each upload is fsynced on the server (OpenSSH's ``fsync@openssh.com``
  extension; paramiko has no call for it, so it is sent as an extended request), so that when
  ``put`` returns the file is on the array's disks, not only in the server's cache: packs are
  durable before the index and the snapshot that name them. A server that does not advertise
  the extension, or refuses it, gets the files all the same and is said once (WARNING): their
  durability is then the server's. SFTP has no way to sync a folder, so the rename itself is
  as durable as the server's file system makes it (journaled on ext4, XFS, ZFS).
* Several connections serve parallel uploads; a connection that failed is replaced.
* Reads (restores, verification, pack headers) go through asyncssh, with the same key and the
  same known_hosts: its SFTP client pipelines reads about twice as fast as paramiko's (measured
  330–390 MB/s against 80–160 on loopback), which decides restore speed.
paramiko, asyncssh and socket exceptions become :class:`~orchestrator.errors.BaieError` kinds
here.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import posixpath
import queue
import secrets
import socket
import stat as stat_module
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

import paramiko
from paramiko.sftp import CMD_EXTENDED as _CMD_EXTENDED
from paramiko.sftp import CMD_INIT as _CMD_INIT
from paramiko.sftp import CMD_VERSION as _CMD_VERSION
from paramiko.sftp import SFTP_OP_UNSUPPORTED as _SFTP_OP_UNSUPPORTED

from orchestrator.baie.canary import CANARY, CANARY_BYTES, CanaryResult
from orchestrator.baie.target import (
    TMP_MARK,
    Data,
    Entry,
    check_name,
    is_temporary,
    joined,
)
from orchestrator.errors import BaieAuthError, BaieError, BaieFull, BaieUnreachable

log = logging.getLogger(__name__)

FSYNC = "fsync@openssh.com"
_SAID: set[str] = set()  # baies whose lack of fsync was already logged by this process
PREFERRED_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "aes128-ctr",
                     "aes256-ctr")
WRITE_SLICE = 4 * 1024 * 1024
READ_ONLY = 0o444  # every file uploaded: written once, never opened for writing again
# Uploads under way in this process, by server and full path: an append-only upload is
# written under its final name, and a listing must not show it before it is whole.
_WRITING: set[tuple[str, int, str, str]] = set()
_WRITING_LOCK = threading.Lock()
T = TypeVar("T")


class _SftpClient(paramiko.SFTPClient):  # type: ignore[misc]  # paramiko is untyped
    """paramiko's client, keeping the extensions the server advertises (paramiko reads its
    version message and drops them), and telling "operation unsupported" apart from a failure
    (paramiko raises a bare IOError for both)."""

    extensions: dict[str, bytes]

    def _send_version(self) -> int:
        init = paramiko.Message()
        init.add_int(3)
        self._send_packet(_CMD_INIT, init)
        kind, data = self._read_packet()
        if kind != _CMD_VERSION:
            raise paramiko.SFTPError("Incompatible sftp protocol")
        msg = paramiko.Message(data)
        version: int = msg.get_int()
        self.extensions = {}
        while msg.get_remainder():
            name = msg.get_string().decode("utf-8", "replace")
            self.extensions[name] = msg.get_string()
        return version

    def _convert_status(self, msg: paramiko.Message) -> None:
        code = msg.get_int()
        text = msg.get_text()
        if code == _SFTP_OP_UNSUPPORTED:
            raise OSError(errno.EOPNOTSUPP, text)
        again = paramiko.Message()
        again.add_int(code)
        again.add_string(text)
        again.rewind()
        super()._convert_status(again)

    def create(self, path: str, *, exclusive: bool, perm: int = READ_ONLY) -> paramiko.SFTPFile:
        """Open ``path`` for writing, created with the permissions ``perm`` (the server's
        umask applied): exclusively (SSH_FXF_EXCL, fails when it exists) or truncating it."""
        flags = paramiko.sftp.SFTP_FLAG_WRITE | paramiko.sftp.SFTP_FLAG_CREATE | (
            paramiko.sftp.SFTP_FLAG_EXCL if exclusive else paramiko.sftp.SFTP_FLAG_TRUNC)
        attrs = paramiko.SFTPAttributes()
        attrs.st_mode = perm
        kind, msg = self._request(paramiko.sftp.CMD_OPEN, self._adjust_cwd(path), flags, attrs)
        if kind != paramiko.sftp.CMD_HANDLE:
            raise paramiko.SFTPError("Expected handle")
        return paramiko.SFTPFile(self, msg.get_binary(), "wb", -1)

    def fsync(self, handle: bytes) -> None:
        """fsync@openssh.com on an open file: returns once the server's fsync(2) returned.
        Raises OSError (EOPNOTSUPP, EACCES: refused; anything else: the sync failed)."""
        self._request(_CMD_EXTENDED, FSYNC, handle)


class SftpTarget:
    def __init__(
        self,
        label: str,
        host: str,
        *,
        user: str,
        key_file: Path,
        known_hosts: Path,
        root: str,
        port: int = 22,
        connections: int = 4,
        timeout_s: float = 30,
        request_size: int = 255 * 1024,
        append_only: bool = False,
    ) -> None:
        self.label = label
        self.append_only = append_only
        self.host = host
        self.port = port
        self.user = user
        self.key_file = key_file
        self.known_hosts = known_hosts
        self.root = root.rstrip("/") or "/"
        self.timeout_s = timeout_s
        self.request_size = request_size
        self._pool: queue.LifoQueue[tuple[paramiko.Transport, _SftpClient]] = \
            queue.LifoQueue()
        self._slots = threading.Semaphore(connections)
        self._open: list[paramiko.Transport] = []
        self._lock = threading.Lock()
        self._dirs: set[str] = set()
        self._reader: _FastReader | None = None
        self._fsync = True  # until the server says it will not

    def __repr__(self) -> str:
        return f"SftpTarget({self.label!r}, {self.user}@{self.host}:{self.port}{self.root})"

    @property
    def _where(self) -> str:
        return f"baie {self.label} ({self.user}@{self.host}:{self.port})"

    # -- connections ----------------------------------------------------------------------

    def _connect(self) -> tuple[paramiko.Transport, _SftpClient]:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
        except OSError as exc:
            raise BaieUnreachable(f"{self._where}: cannot connect ({exc.strerror or exc}); "
                                  "check the address, the port and the firewall") from None
        transport = paramiko.Transport(sock)
        try:
            options = transport.get_security_options()
            offered = [c for c in PREFERRED_CIPHERS if c in options.ciphers]
            options.ciphers = tuple(offered) + tuple(c for c in options.ciphers
                                                     if c not in offered)
            transport.start_client(timeout=self.timeout_s)
            self._check_host_key(transport)
            transport.auth_publickey(self.user, self._load_key())
            sftp = _SftpClient.from_transport(transport)
            if sftp is None:
                raise paramiko.SSHException("the server refused the SFTP subsystem")
            sftp.get_channel().settimeout(self.timeout_s)
        except BaieError:
            transport.close()
            raise
        except paramiko.AuthenticationException:
            transport.close()
            raise BaieAuthError(f"{self._where}: the key {self.key_file} was refused for user "
                                f"{self.user}; check the baie's authorized_keys") from None
        except (paramiko.SSHException, OSError, EOFError) as exc:
            transport.close()
            raise BaieUnreachable(f"{self._where}: SSH failed ({exc})") from None
        with self._lock:
            self._open.append(transport)
        return transport, sftp

    def _check_host_key(self, transport: paramiko.Transport) -> None:
        offered = transport.get_remote_server_key()
        try:
            known = paramiko.HostKeys(str(self.known_hosts))
        except OSError as exc:
            raise BaieAuthError(f"{self._where}: cannot read known_hosts {self.known_hosts} "
                                f"({exc.strerror})") from None
        name = self.host if self.port == 22 else f"[{self.host}]:{self.port}"
        entry = known.lookup(name)
        if entry is None or offered.get_name() not in entry:
            raise BaieAuthError(
                f"{self._where}: host key {offered.get_name()} {offered.get_base64()[:24]}... is "
                f"not in {self.known_hosts}; check it with the baie's administrator, then add "
                f"it (ssh-keyscan -p {self.port} {self.host})")
        if entry[offered.get_name()] != offered:
            raise BaieAuthError(
                f"{self._where}: the host key CHANGED since it was recorded in "
                f"{self.known_hosts}: someone may be impersonating the baie. Nothing was sent.")

    def _load_key(self) -> paramiko.PKey:
        try:
            return paramiko.PKey.from_path(str(self.key_file))
        except FileNotFoundError:
            raise BaieAuthError(f"{self._where}: key file {self.key_file} does not exist") \
                from None
        except (paramiko.SSHException, OSError, ValueError) as exc:
            raise BaieAuthError(f"{self._where}: cannot load key {self.key_file} ({exc})") \
                from None

    @contextmanager
    def _sftp(self) -> Iterator[_SftpClient]:
        with self._slots:
            try:
                transport, sftp = self._pool.get_nowait()
                if not transport.is_active():
                    raise queue.Empty
            except queue.Empty:
                transport, sftp = self._connect()
            healthy = True
            try:
                yield sftp
            except (OSError, EOFError, paramiko.SSHException):
                healthy = False
                raise
            finally:
                if healthy and transport.is_active():
                    self._pool.put((transport, sftp))
                else:
                    transport.close()

    def _call(self, doing: str, fn: Callable[[_SftpClient], T]) -> T:
        with self._sftp_errors(doing), self._sftp() as sftp:
            return fn(sftp)

    @contextmanager
    def _sftp_errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except BaieError:
            raise
        except FileNotFoundError:
            raise BaieError(f"{self._where}: not found while {doing}") from None
        except PermissionError:
            raise BaieError(f"{self._where}: permission denied while {doing}; check the "
                            "account's rights on the baie folder") from None
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise BaieFull(f"{self._where} is full while {doing}") from None
            silent = exc.errno is None and not str(exc).strip()
            if isinstance(exc, socket.timeout | ConnectionError) or silent:
                raise BaieUnreachable(f"{self._where}: connection lost while {doing}") from None
            raise BaieError(f"{self._where}: {doing} failed ({exc}); the baie may be full or "
                            "read-only", permanent=False) from None
        except (EOFError, paramiko.SSHException) as exc:
            raise BaieUnreachable(f"{self._where}: connection lost while {doing} ({exc})") \
                from None

    def _full(self, name: str) -> str:
        return posixpath.join(self.root, check_name(name))

    # -- the Target protocol --------------------------------------------------------------

    def _makedirs(self, sftp: _SftpClient, folder: str) -> None:
        if folder in self._dirs or folder in ("", "/"):
            return
        try:
            sftp.stat(folder)
        except FileNotFoundError:
            self._makedirs(sftp, posixpath.dirname(folder))
            try:
                sftp.mkdir(folder)
            except OSError:
                sftp.stat(folder)  # made meanwhile by a parallel upload: fine
        self._dirs.add(folder)

    def put(self, name: str, data: Data) -> None:
        if self.append_only:
            self._put_new(name, data)
            return
        final = self._full(name)
        parts = [data] if isinstance(data, bytes | bytearray) else data
        tmp = f"{final}{TMP_MARK}{secrets.token_hex(4)}"

        def upload(sftp: _SftpClient) -> None:
            self._makedirs(sftp, posixpath.dirname(final))
            try:
                with sftp.create(tmp, exclusive=False) as f:
                    self._write(sftp, f, parts)
                sftp.posix_rename(tmp, final)
            except BaseException:
                with suppress(OSError, paramiko.SSHException):
                    sftp.remove(tmp)
                raise

        self._call(f"writing {name}", upload)

    def _write(self, sftp: _SftpClient, f: paramiko.SFTPFile, parts: list[Any]) -> None:
        f.set_pipelined(True)
        f.MAX_REQUEST_SIZE = self.request_size
        for part in parts:
            view = memoryview(part)
            for start in range(0, len(view), WRITE_SLICE):
                f.write(view[start:start + WRITE_SLICE])
        f.flush()  # every write sent: the server handles requests in order
        self._sync(sftp, f.handle)

    def _put_new(self, name: str, data: Data) -> None:
        """Append-only: written once under its final name, created exclusively."""
        final = self._full(name)
        parts = [data] if isinstance(data, bytes | bytearray) else data
        key = (self.host, self.port, self.user, final)

        def upload(sftp: _SftpClient) -> bool:
            self._makedirs(sftp, posixpath.dirname(final))
            try:
                f = sftp.create(final, exclusive=True)
            except OSError:
                if self._stat_or_none(sftp, final) is None:
                    raise  # refused for another reason than the name being taken
                return False
            with f:
                self._write(sftp, f, parts)
            return True

        with _WRITING_LOCK:
            _WRITING.add(key)
        try:
            written = self._call(f"writing {name}", upload)
        finally:
            with _WRITING_LOCK:
                _WRITING.discard(key)
        if not written and self.get(name) != joined(data):
            raise BaieError(
                f"{self._where}: {name} is already there with other bytes (an upload cut "
                "short?); this account may only add files: the maintenance access removes it")

    @staticmethod
    def _stat_or_none(sftp: _SftpClient, path: str) -> int | None:
        try:
            return int(sftp.stat(path).st_size or 0)
        except FileNotFoundError:
            return None

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        if self._reader is None:
            with self._lock:
                if self._reader is None:
                    self._reader = _FastReader(self)
        return self._reader.read(self._full(name), name, offset, length)

    def stat(self, name: str) -> int | None:
        path = self._full(name)

        def look(sftp: _SftpClient) -> int | None:
            try:
                size = sftp.stat(path).st_size
                return int(size) if size is not None else 0
            except FileNotFoundError:
                return None

        return self._call(f"looking at {name}", look)

    def list(self, prefix: str) -> Iterator[Entry]:
        base = self._full(prefix) if prefix else self.root

        def walk(sftp: _SftpClient) -> list[Entry]:
            out: list[Entry] = []
            pending = [base]
            while pending:
                folder = pending.pop()
                try:
                    items = sftp.listdir_attr(folder)
                except FileNotFoundError:
                    continue
                for item in items:
                    full = posixpath.join(folder, item.filename)
                    if stat_module.S_ISDIR(item.st_mode or 0):
                        pending.append(full)
                    else:
                        rel = posixpath.relpath(full, self.root)
                        if (self.host, self.port, self.user, full) in _WRITING:
                            continue  # an append-only upload of this process, not whole yet
                        if not is_temporary(rel):
                            out.append(Entry(rel, item.st_size or 0))
            return sorted(out, key=lambda e: e.name)

        yield from self._call(f"listing {prefix}", walk)

    def delete(self, name: str) -> None:
        path = self._full(name)

        def remove(sftp: _SftpClient) -> None:
            with suppress(FileNotFoundError):
                sftp.remove(path)

        self._call(f"deleting {name}", remove)

    def canary(self) -> CanaryResult:
        """With this very account, try to destroy the canary file (made the first time): remove
        it, open it truncating, rename it away. Each must be refused, and the file stay whole.
        Raises BaieError when the baie cannot be reached (nothing then was tried)."""
        path = self._full(CANARY)

        def attempt(sftp: _SftpClient) -> CanaryResult:
            self._makedirs(sftp, self.root)
            size = self._stat_or_none(sftp, path)
            if size is None:
                with sftp.create(path, exclusive=True) as f:
                    f.write(CANARY_BYTES)
                size = len(CANARY_BYTES)
            allowed = []
            tries: list[tuple[str, Callable[[], object]]] = [
                ("remove", lambda: sftp.remove(path)),
                ("overwrite", lambda: sftp.create(path, exclusive=False).close()),
                ("rename", lambda: sftp.rename(path, f"{path}.moved")),
                ("posix-rename", lambda: sftp.posix_rename(path, f"{path}.moved")),
            ]
            for request, call in tries:
                try:
                    call()
                except OSError:
                    continue  # refused, as it must be
                allowed.append(request)
                moved = self._stat_or_none(sftp, f"{path}.moved")
                if moved is not None:  # put it back for the next attempts and nights
                    with suppress(OSError):
                        sftp.posix_rename(f"{path}.moved", path)
            if self._stat_or_none(sftp, path) != size and "remove" not in allowed:
                allowed.append("changed")
            return CanaryResult(allowed)

        return self._call("trying to destroy the canary file", attempt)

    def _sync(self, sftp: _SftpClient, handle: bytes) -> None:
        """fsync the open upload on the server; without the extension, say so once."""
        if not self._fsync:
            return
        why = None
        if FSYNC not in sftp.extensions:
            why = "does not offer"
        else:
            try:
                sftp.fsync(handle)
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.EACCES):
                    raise  # the sync itself failed: the file may not be on disk
                why = f"refuses ({exc.strerror or exc})"
        if why is not None:
            self._fsync = False
            if self._where not in _SAID:
                _SAID.add(self._where)
                log.warning("%s: the SFTP server %s %s: files are uploaded and renamed into "
                            "place, but their durability on the array is left to the server "
                            "(a power cut there could lose the last ones written)",
                            self._where, why, FSYNC)

    def flush(self) -> None:
        """Nothing left to do: each upload was fsynced on the server (``fsync@openssh.com``)
        before its rename, so every file put is durable when ``put`` returns."""

    def close(self) -> None:
        with self._lock:
            transports, self._open = self._open, []
            reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()
        for transport in transports:
            transport.close()
        while not self._pool.empty():
            self._pool.get_nowait()



class _FastReader:
    """asyncssh on an event loop of its own thread: ``read`` is called from any thread."""

    def __init__(self, target: SftpTarget) -> None:
        self._target = target
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name=f"sftp-read {target.label}")
        self._thread.start()
        self._conn: Any = None
        self._sftp: Any = None
        self._connecting = asyncio.Lock()

    async def _client(self) -> Any:
        import asyncssh

        async with self._connecting:
            if self._sftp is None:
                t = self._target
                self._conn = await asyncssh.connect(
                    t.host, port=t.port, username=t.user, client_keys=[str(t.key_file)],
                    known_hosts=str(t.known_hosts), agent_path=None,
                    encryption_algs=[*PREFERRED_CIPHERS, "chacha20-poly1305@openssh.com"],
                    connect_timeout=t.timeout_s, login_timeout=t.timeout_s)
                self._sftp = await self._conn.start_sftp_client()
            return self._sftp

    async def _read(self, path: str, offset: int, length: int | None) -> bytes:
        sftp = await self._client()
        async with sftp.open(path, "rb") as f:
            if length is None:
                length = max(0, (await f.stat()).size - offset)
            if length == 0:
                return b""
            data: bytes = await f.read(length, offset)
            return data

    def read(self, path: str, name: str, offset: int, length: int | None) -> bytes:
        import asyncssh

        where = self._target._where
        future = asyncio.run_coroutine_threadsafe(self._read(path, offset, length), self._loop)
        try:
            return future.result(timeout=self._target.timeout_s * 20)
        except asyncssh.SFTPNoSuchFile:
            raise BaieError(f"{where}: not found while reading {name}") from None
        except asyncssh.SFTPPermissionDenied:
            raise BaieError(f"{where}: permission denied while reading {name}") from None
        except asyncssh.HostKeyNotVerifiable as exc:
            self._reset()
            raise BaieAuthError(f"{where}: host key not accepted ({exc.reason}); check "
                                f"{self._target.known_hosts}") from None
        except asyncssh.PermissionDenied:
            self._reset()
            raise BaieAuthError(f"{where}: the key {self._target.key_file} was refused for "
                                f"user {self._target.user}") from None
        except (asyncssh.Error, OSError, EOFError, TimeoutError) as exc:
            self._reset()
            raise BaieUnreachable(f"{where}: connection lost while reading {name} ({exc})") \
                from None

    def _reset(self) -> None:
        conn, self._conn, self._sftp = self._conn, None, None
        if conn is not None:
            self._loop.call_soon_threadsafe(conn.close)

    async def _shutdown(self) -> None:
        """Close the connection and let its tasks end: a loop stopped with tasks pending
        complains later, when it is collected, into whatever stderr is current then."""
        conn, self._conn, self._sftp = self._conn, None, None
        if conn is not None:
            conn.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.wait_closed(), 5)
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    def close(self) -> None:
        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._loop.close()
