"""Keys: write-only for the MSP, readable by the client (and the escrow holder, if chosen).

* Each client has an X25519 key pair. The orchestrator keeps only the **public** key
  (``encryption.public_key_file``); the private key lives in a key file protected by the
  client's passphrase (scrypt + AES-256-GCM), and can be printed as a paper key.
* Data keys (one per pack, one per snapshot tree) are random and **sealed** to each recipient:
  an ephemeral X25519 exchange, HKDF-SHA256, AES-256-GCM. The orchestrator forgets them right
  after use, so it cannot read back what it wrote.
* A per-repository **writer key** (random, kept by the orchestrator, also sealed in the
  repository for the client) derives the chunk-id key (dedup) and the index key (pack headers,
  indexes, snapshot headers): what an unattended backup needs, and nothing that reveals data.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from orchestrator.errors import KeyMismatch, StoreError

PUBLIC_PREFIX = "hvbackup-public-key-v1"
KEY_FILE_VERSION = 1
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1  # ~100 ms and 32 MiB, as restic/kopia defaults
_SEAL_INFO = b"hvbackup seal v1"
_SEALED_ENTRY = struct.Struct(">8s32s12s48s")  # fingerprint, ephemeral public, nonce, wrapped


def _raw_public(key: X25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def fingerprint(public: bytes) -> bytes:
    """8 bytes naming a public key inside sealed blobs."""
    return hashlib.sha256(b"hvbackup-fp" + public).digest()[:8]


@dataclass(frozen=True)
class PublicKey:
    raw: bytes
    label: str = ""

    @property
    def fingerprint(self) -> bytes:
        return fingerprint(self.raw)

    def text(self) -> str:
        return f"{PUBLIC_PREFIX} {base64.b64encode(self.raw).decode()}" + (
            f" {self.label}" if self.label else "")


def read_public_key(path: Path) -> PublicKey:
    """Read a public key file; raises StoreError naming the file when it is not one."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise StoreError(f"public key file {path} does not exist: create it with "
                         "'hvbackup keys init'") from None
    except OSError as exc:
        raise StoreError(f"cannot read public key file {path}: {exc.strerror}") from None
    parts = text.split(maxsplit=2)
    try:
        if parts[0] != PUBLIC_PREFIX:
            raise ValueError
        raw = base64.b64decode(parts[1], validate=True)
        if len(raw) != 32:
            raise ValueError
    except (ValueError, IndexError):
        raise StoreError(f"{path} is not an hvbackup public key (expected a line starting "
                         f"with '{PUBLIC_PREFIX}')") from None
    return PublicKey(raw, parts[2] if len(parts) > 2 else "")


@dataclass(frozen=True)
class PrivateKey:
    key: X25519PrivateKey
    # The public half of the signing key of the orchestrator that writes this client's
    # backups, as the key file records it (None: not recorded yet, or a paper key).
    signer: bytes | None = None

    @property
    def public(self) -> PublicKey:
        return PublicKey(_raw_public(self.key.public_key()))

    def raw(self) -> bytes:
        return self.key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


def generate_private_key() -> PrivateKey:
    return PrivateKey(X25519PrivateKey.generate())


def _scrypt(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))


def _signer_mac(key: PrivateKey, signer: bytes) -> str:
    """Binds the recorded signing key to the private key: a key file whose signer was
    changed by someone without the private key is refused."""
    mac_key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"hvbackup key file",
                   info=b"signer").derive(key.raw())
    h = hmac.HMAC(mac_key, hashes.SHA256())
    h.update(signer)
    return base64.b64encode(h.finalize()[:16]).decode()


def write_key_file(path: Path, key: PrivateKey, passphrase: str, label: str,
                   signer: bytes | None = None) -> None:
    """Write the passphrase-protected private key; refuses to overwrite an existing file.
    ``signer``: the orchestrator's signing public key, recorded so that restores can prove
    who wrote a snapshot."""
    if not passphrase:
        raise StoreError("an empty passphrase would leave the key unprotected")
    salt, nonce = os.urandom(16), os.urandom(12)
    kek = _scrypt(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    public = key.public.raw
    sealed = AESGCM(kek).encrypt(nonce, key.raw(), public)
    doc = {
        "hvbackup_key_file": KEY_FILE_VERSION, "label": label,
        "public_key": base64.b64encode(public).decode(),
        "kdf": {"name": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P,
                "salt": base64.b64encode(salt).decode()},
        "nonce": base64.b64encode(nonce).decode(),
        "ciphertext": base64.b64encode(sealed).decode(),
    }
    if signer is not None:
        doc["signer"] = base64.b64encode(signer).decode()
        doc["signer_mac"] = _signer_mac(key, signer)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise StoreError(f"{path} already exists: a key file is never overwritten") from None
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


def read_key_file(path: Path, passphrase: str) -> PrivateKey:
    """Open a key file. Raises KeyMismatch for a wrong passphrase, StoreError for a bad file."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StoreError(f"key file {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise StoreError(f"{path} is not an hvbackup key file ({exc})") from None
    try:
        if doc["hvbackup_key_file"] != KEY_FILE_VERSION or doc["kdf"]["name"] != "scrypt":
            raise StoreError(f"{path}: unsupported key file version")
        kdf = doc["kdf"]
        kek = _scrypt(passphrase, base64.b64decode(kdf["salt"]), kdf["n"], kdf["r"], kdf["p"])
        public = base64.b64decode(doc["public_key"])
        raw = AESGCM(kek).decrypt(base64.b64decode(doc["nonce"]),
                                  base64.b64decode(doc["ciphertext"]), public)
    except InvalidTag:
        raise KeyMismatch(f"wrong passphrase for key file {path}") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise StoreError(f"{path} is not an hvbackup key file ({exc})") from None
    key = PrivateKey(X25519PrivateKey.from_private_bytes(raw))
    if "signer" not in doc:
        return key
    try:
        signer = base64.b64decode(doc["signer"], validate=True)
        valid = len(signer) == 32 and doc.get("signer_mac") == _signer_mac(key, signer)
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise StoreError(f"{path}: the orchestrator signing key it records was altered "
                         "(it no longer matches the private key)")
    return PrivateKey(key.key, signer)


def record_signer(path: Path, key: PrivateKey, signer: bytes) -> None:
    """Add the orchestrator's signing public key to an existing key file (first use, see
    docs/repository-format.md); the file is replaced atomically, still mode 0600."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["signer"] = base64.b64encode(signer).decode()
    doc["signer_mac"] = _signer_mac(key, signer)
    tmp = path.with_name(path.name + ".hvbtmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def signer_fingerprint(signer: bytes) -> str:
    """How a signing key is shown to people: 16 hex digits in groups of four."""
    digest = hashlib.sha256(b"hvbackup-signer" + signer).hexdigest()[:16]
    return " ".join(digest[i:i + 4] for i in range(0, 16, 4))


def signature_valid(signer: bytes, signature: bytes, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(signer).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


# -- paper key ----------------------------------------------------------------------------

def paper_key(key: PrivateKey) -> str:
    """The private key as groups of base32 letters with a checksum, to print and keep safe."""
    raw = key.raw()
    body = raw + hashlib.sha256(raw).digest()[:3]
    letters = base64.b32encode(body).decode().rstrip("=")
    groups = [letters[i:i + 5] for i in range(0, len(letters), 5)]
    return "\n".join(" ".join(groups[i:i + 5]) for i in range(0, len(groups), 5))


def from_paper_key(text: str) -> PrivateKey:
    """Read a paper key back (spaces and line breaks ignored); raises KeyMismatch on a typo."""
    letters = "".join(text.split()).upper()
    try:
        body = base64.b32decode(letters + "=" * (-len(letters) % 8))
    except ValueError:
        raise KeyMismatch("the paper key contains characters that are not in it") from None
    raw, check = body[:32], body[32:]
    if len(raw) != 32 or hashlib.sha256(raw).digest()[:3] != check:
        raise KeyMismatch("the paper key is mistyped (checksum does not match)")
    return PrivateKey(X25519PrivateKey.from_private_bytes(raw))


# -- sealing ------------------------------------------------------------------------------

def _kek(shared: bytes, ephemeral: bytes, recipient: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=ephemeral + recipient,
                info=_SEAL_INFO).derive(shared)


def seal(secret: bytes, recipients: list[PublicKey]) -> bytes:
    """``secret`` (32 bytes) wrapped for each recipient; only their private keys open it."""
    if len(secret) != 32 or not recipients:
        raise ValueError("seal needs a 32-byte secret and at least one recipient")
    out = bytearray([len(recipients)])
    for recipient in recipients:
        ephemeral = X25519PrivateKey.generate()
        eph_public = _raw_public(ephemeral.public_key())
        shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(recipient.raw))
        nonce = os.urandom(12)
        wrapped = AESGCM(_kek(shared, eph_public, recipient.raw)).encrypt(nonce, secret,
                                                                          recipient.raw)
        out += _SEALED_ENTRY.pack(recipient.fingerprint, eph_public, nonce, wrapped)
    return bytes(out)


def sealed_size(recipients: int) -> int:
    return 1 + recipients * _SEALED_ENTRY.size


def unseal(blob: bytes, key: PrivateKey) -> bytes:
    """Open a sealed secret with ``key``; raises KeyMismatch when it was not sealed to it."""
    mine = key.public
    count = blob[0] if blob else 0
    for i in range(count):
        fp, eph_public, nonce, wrapped = _SEALED_ENTRY.unpack_from(blob, 1 + i * _SEALED_ENTRY.size)
        if fp != mine.fingerprint:
            continue
        shared = key.key.exchange(X25519PublicKey.from_public_bytes(eph_public))
        try:
            return AESGCM(_kek(shared, eph_public, mine.raw)).decrypt(nonce, wrapped, mine.raw)
        except InvalidTag:
            raise KeyMismatch("a sealed key is damaged or was not made for this key") from None
    raise KeyMismatch("this key cannot open the backups: they were sealed to another key "
                      "(check the key file belongs to this client)")


# -- writer keys ----------------------------------------------------------------------------

@dataclass(frozen=True)
class WriterKeys:
    """What the orchestrator needs to write a repository, derived from one writer secret."""

    secret: bytes

    def _derive(self, purpose: bytes) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"hvbackup writer v1",
                    info=purpose).derive(self.secret)

    @functools.cached_property
    def chunk_id_key(self) -> bytes:
        return self._derive(b"chunk-id")

    @functools.cached_property
    def index_key(self) -> bytes:
        return self._derive(b"index")

    @functools.cached_property
    def signing_key(self) -> Ed25519PrivateKey:
        """Signs every snapshot (and nothing else): whoever holds the writer secret, the
        orchestrator or the client, and nobody who only sees the baie."""
        return Ed25519PrivateKey.from_private_bytes(self._derive(b"snapshot-signing"))

    @functools.cached_property
    def signer(self) -> bytes:
        """The public half of :attr:`signing_key`, which the client records."""
        return self.signing_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def sign(self, message: bytes) -> bytes:
        return self.signing_key.sign(message)

    @functools.cached_property
    def check(self) -> str:
        """A value that tells, without revealing it, whether two writer keys are the same."""
        return self._derive(b"check")[:16].hex()
