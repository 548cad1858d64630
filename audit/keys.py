"""Ed25519 run keys in the C2SP signed-note key formats, and where they live on disk.

A verifier key is the one-line C2SP vkey ``<name>+<hex key id>+<base64(0x01 || pub)>``;
a private key file holds ``PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || seed)>``,
the format Go's golang.org/x/mod/sumdb/note uses, so other note tooling can read them.
A verifier may also be given as a PEM Ed25519 public key (``openssl pkey -pubout``).
The key id is the first 4 bytes of SHA-256(name || 0x0A || 0x01 || pub); the
fingerprint committed in run_start is the whole of that hash, so the key id is its
prefix.

Default location: ``<run_dir>/keys/audit.key`` (mode 0600) and ``<run_dir>/keys/audit.pub``,
written with the run (``AuditLog.create(..., keep_key=True)``) and read by `run_key`.
A key stored beside the log lets the run resume and sign at close, but anyone who can
write the run directory can then re-sign a forged log with it: for evidence against
that, generate the key elsewhere (``govtrain keys generate DIR``), pass it with
`load_signing_key`, and give verifiers the .pub file out of band (``--pubkey``); the
trust anchor store (audit/anchors.py) catches a re-signed run on the machine that ran it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)

from govtrain.audit.errors import KeyFileError, UnsafePathError
from govtrain.audit.files import open_regular, read_fd, write_synced

ALG_ED25519 = 0x01
DEFAULT_KEY_NAME = "govtrain-audit"
PRIVATE_KEY_FILE = "audit.key"
PUBLIC_KEY_FILE = "audit.pub"
RUN_KEY_DIR = "keys"
# C2SP: a key name is non-empty UTF-8 without whitespace or "+".
_NAME = re.compile(r"[^\s+]+")
_PEM = "-----BEGIN"


def b64decode_strict(text: str) -> bytes:
    """Standard base64 that must re-encode to the same text (no slack in the padding bits)."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"bad base64: {exc}") from exc
    if base64.b64encode(raw).decode() != text:
        raise ValueError("non-canonical base64")
    return raw


def key_hash(name: str, public: bytes) -> bytes:
    """SHA-256(name || 0x0A || 0x01 || pub): the key id is its first 4 bytes."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([ALG_ED25519]) + public).digest()


def _check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise KeyFileError(f"key name {name!r} must be non-empty, without whitespace or '+'")
    return name


@dataclass(frozen=True)
class VerifierKey:
    """A named Ed25519 public key, as a C2SP note verifier."""

    name: str
    public: bytes

    @property
    def key_id(self) -> bytes:
        return key_hash(self.name, self.public)[:4]

    @property
    def fingerprint(self) -> str:
        return "sha256:" + key_hash(self.name, self.public).hex()

    @property
    def vkey(self) -> str:
        """The one-line C2SP verifier key."""
        data = base64.b64encode(bytes([ALG_ED25519]) + self.public).decode()
        return f"{self.name}+{self.key_id.hex()}+{data}"

    def verify(self, signature: bytes, message: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public).verify(signature, message)
        except InvalidSignature:
            return False
        return True

    @classmethod
    def parse(cls, vkey: str) -> VerifierKey:
        """Parse a C2SP vkey line; KeyFileError when it is malformed or its id is wrong."""
        name, hex_id, raw = _key_fields(vkey, [], "verifier key")
        key = cls(name, raw)
        if hex_id != key.key_id.hex():
            raise KeyFileError(f"verifier key {name}: id {hex_id} does not match the key")
        return key


def _key_fields(text: str, prefix: list[str], what: str) -> tuple[str, str, bytes]:
    """(name, hex id, 32 key bytes) of ``[prefix+]<name>+<hex id>+<base64(0x01 || key)>``."""
    parts = text.strip().split("+", len(prefix) + 2)  # the base64 may itself hold "+"
    if len(parts) != len(prefix) + 3 or parts[: len(prefix)] != prefix:
        form = "+".join([*prefix, "<name>", "<hex id>", "<base64 key>"])
        raise KeyFileError(f"a {what} is {form}")
    name, hex_id, data = parts[len(prefix) :]
    _check_name(name)
    try:
        raw = b64decode_strict(data)
    except ValueError as exc:
        raise KeyFileError(f"{what} {name}: {exc}") from exc
    if len(raw) != 33 or raw[0] != ALG_ED25519:
        raise KeyFileError(f"{what} {name} is not an Ed25519 key")
    return name, hex_id, raw[1:]


@dataclass(frozen=True)
class Signer:
    """A named Ed25519 private key that signs notes and DSSE envelopes."""

    name: str
    private: Ed25519PrivateKey

    @property
    def verifier(self) -> VerifierKey:
        return VerifierKey(
            self.name, self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        )

    def sign(self, message: bytes) -> bytes:
        return self.private.sign(message)

    def to_text(self) -> str:
        """The private key line (Go note format): keep it secret."""
        seed = self.private.private_bytes_raw()
        data = base64.b64encode(bytes([ALG_ED25519]) + seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.verifier.key_id.hex()}+{data}"

    @classmethod
    def parse(cls, text: str) -> Signer:
        """Parse a private key line; KeyFileError when it is malformed or its id is wrong."""
        name, hex_id, seed = _key_fields(text, ["PRIVATE", "KEY"], "private key")
        signer = cls(name, Ed25519PrivateKey.from_private_bytes(seed))
        if hex_id != signer.verifier.key_id.hex():
            raise KeyFileError(f"private key {name}: id {hex_id} does not match the key")
        return signer


def generate_signer(name: str = DEFAULT_KEY_NAME) -> Signer:
    return Signer(_check_name(name), Ed25519PrivateKey.generate())


def write_new_key_file(path: Path, text: str, mode: int) -> None:
    """Create `path` with `mode` from the start (never briefly world-readable); never overwrite."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError as exc:
        raise KeyFileError(f"{path} already exists; refusing to overwrite a key") from exc
    write_synced(fd, (text + "\n").encode())


def write_key_pair(directory: Path, signer: Signer) -> tuple[Path, Path]:
    """Write `audit.key` (0600) and `audit.pub` into `directory`; returns both paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    private, public = directory / PRIVATE_KEY_FILE, directory / PUBLIC_KEY_FILE
    for path in (private, public):
        if path.exists():
            raise KeyFileError(f"{path} already exists; refusing to overwrite a key")
    write_new_key_file(private, signer.to_text(), 0o600)
    write_new_key_file(public, signer.verifier.vkey, 0o644)
    return private, public


def load_signing_key(path: Path) -> Signer:
    """Read a private key file; refuses one that group or others may read (like ssh)."""
    return Signer.parse(read_private(path))


def read_private(path: Path, *, follow: bool = True) -> str:
    """A private key file's text; KeyFileError if group or others may read it (like ssh).
    Never read from a FIFO or device, nor through a link unless `follow` (a path the user
    named, not one inside a run)."""
    path = Path(path)
    try:
        fd = open_regular(os.path.realpath(path) if follow else path, path)
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        text = read_fd(fd).decode()
    except UnsafePathError as exc:
        raise KeyFileError(f"cannot read private key: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise KeyFileError(f"cannot read private key {path}: {why}") from exc
    if mode & 0o077:
        raise KeyFileError(f"private key {path} has mode {mode:04o}; it must be 0600 or stricter")
    return text


def load_verifier_key(source: str | Path, name: str = DEFAULT_KEY_NAME) -> VerifierKey:
    """A verifier key from a .pub file or a PEM Ed25519 public key file, or the text of either.

    A PEM key carries no name, yet a note's signature line is found by name and key id
    (which hashes the name): it takes `name`, that of the key it is checked against. The
    name is a label, not a secret: what is trusted is the key's 32 bytes.
    """
    path = Path(source)
    if path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise KeyFileError(f"{source} is not a public key file (not UTF-8 text)") from None
    elif isinstance(source, str) and (source.count("+") >= 2 or _PEM in source):
        text, path = source, None
    else:
        raise KeyFileError(f"{source or '(none)'} is neither a public key file nor a verifier key")
    if text.lstrip().startswith(_PEM):
        return VerifierKey(_check_name(name), _pem_public(text, path or "the PEM text"))
    try:
        return VerifierKey.parse(text)
    except KeyFileError:
        where = path or "the key text"
        raise KeyFileError(
            f"{where} is not a public key: give a verifier key NAME+HASH+BASE64 (the run's "
            f"keys/{PUBLIC_KEY_FILE}) or a PEM Ed25519 public key"
        ) from None


def _pem_public(text: str, where: Path | str) -> bytes:
    """The 32 bytes of a PEM Ed25519 public key, or one line saying what the file is instead."""
    try:
        key = load_pem_public_key(text.encode())
    except (ValueError, TypeError):
        raise KeyFileError(
            f"{where} is not a PEM public key; give the run's keys/{PUBLIC_KEY_FILE}"
        ) from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(
            f"{where} is not an Ed25519 public key, which audit logs are signed with: give the "
            f"run's keys/{PUBLIC_KEY_FILE} or the .pub `govtrain keys generate` wrote"
        )
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def run_key(run_dir: Path) -> Signer:
    """The run's own key, kept in ``run_dir/keys/`` (never read through a link there)."""
    return Signer.parse(read_private(Path(run_dir) / RUN_KEY_DIR / PRIVATE_KEY_FILE, follow=False))
