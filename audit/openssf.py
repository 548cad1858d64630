"""OpenSSF Model Signing of a run's checkpoints, so `model_signing verify` accepts them.

The `model-signing` library (sigstore/model-transparency) signs a model file or
directory into a Sigstore bundle (an in-toto statement over the files'
digests, in a DSSE envelope). Its key-based signer takes ECDSA keys on P-256,
P-384 or P-521 only, so this is a second key beside the run's Ed25519 one:
`govtrain keys model-signing DIR` makes one. A checkpoint is signed only after
the audit log verifies and the file's SHA-256 matches the log's checkpoint
record: the signature then vouches for the weights the governed run recorded,
not for whatever file sits at that path.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from govtrain.audit.errors import AuditError
from govtrain.audit.files import open_in_run, write_synced
from govtrain.audit.keys import KeyFileError, VerifierKey, read_private, write_new_key_file
from govtrain.audit.provenance import (
    check_artifacts,
    file_sha256,
    read_records,
    recorded_artifacts,
)
from govtrain.audit.verify import verify_run

PRIVATE_FILE, PUBLIC_FILE = "model-signing.pem", "model-signing.pub.pem"
INSTALL = "pip install 'govtrain[model-signing]'"


def generate_key(directory: Path) -> tuple[Path, Path]:
    """Write an ECDSA P-256 key pair for model signing: PRIVATE_FILE (0600), PUBLIC_FILE."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    private, public = directory / PRIVATE_FILE, directory / PUBLIC_FILE
    if private.exists() or public.exists():
        raise KeyFileError(f"{directory} already holds a model-signing key; refusing to overwrite")
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_new_key_file(private, pem.decode().strip(), 0o600)
    pub = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    write_new_key_file(public, pub.decode().strip(), 0o644)
    return private, public


def sign_checkpoint(
    run_dir: Path,
    private_key: Path,
    path: str | None = None,
    signature: Path | None = None,
    *,
    pubkey: VerifierKey | None = None,
    anchors: Sequence[str] = (),
) -> tuple[str, Path]:
    """Sign the checkpoint the log records at `path` (default: the last one recorded) into
    `signature` (default: beside it, `.sig` appended); returns (path, signature).

    The log must verify as `audit verify` verifies it (`pubkey`, trust `anchors`). The
    bytes signed are a private copy whose SHA-256 matched the log's record, so a file
    swapped in after the check cannot be signed; the signature file is written beside
    its destination and renamed into place (a link there is replaced, never followed).
    """
    run_dir = Path(run_dir)
    verify_run(run_dir, pubkey=pubkey, anchors=anchors)  # an AuditError names the first bad record
    artifacts = recorded_artifacts(read_records(run_dir / "audit.jsonl"))
    if not artifacts:
        raise AuditError(f"{run_dir}'s log records no checkpoint to sign")
    chosen = path if path is not None else list(artifacts)[-1]
    if chosen not in artifacts:
        raise AuditError(f"{chosen} is not a checkpoint the log records: {', '.join(artifacts)}")
    check_artifacts(run_dir, {chosen: artifacts[chosen]})  # inside the run, a regular file
    read_private(private_key)  # the mode check every private key here gets
    try:
        from model_signing import signing
    except ImportError as exc:
        raise AuditError(f"OpenSSF model signing needs model-signing: {INSTALL}") from exc
    model = run_dir / chosen
    out = Path(signature) if signature is not None else model.with_name(model.name + ".sig")
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / model.name  # the bundle names the file: keep its name
        with open(open_in_run(run_dir, chosen, "checkpoint"), "rb") as src, open(copy, "wb") as dst:
            shutil.copyfileobj(src, dst)
        if file_sha256(copy) != artifacts[chosen]:
            raise AuditError(f"checkpoint {chosen} changed while it was being signed")
        bundle = Path(tmp) / "bundle.sig"
        try:
            signing.Config().use_elliptic_key_signer(private_key=private_key).sign(copy, bundle)
        except (ValueError, TypeError, OSError) as exc:  # a key that is not ECDSA P-256/384/521
            raise KeyFileError(f"cannot sign with {private_key}: {exc}") from exc
        # a unique staging name: two signers of one file must not share it
        fd, staged = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
        try:
            write_synced(fd, bundle.read_bytes())
            os.replace(staged, out)
        except BaseException:
            Path(staged).unlink(missing_ok=True)
            raise
    return chosen, out
