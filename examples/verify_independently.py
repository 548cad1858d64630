"""Verify a govtrain run's audit log without govtrain: Python's hashlib and the
`cryptography` package only, from the formats docs/audit.md describes.

    python examples/verify_independently.py RUN_DIR VKEY_OR_PUB_FILE

Checks: each line's `prev` is the SHA-256 of the line before (for the first, the
SHA-256 of `govtrain.audit/v1 genesis`)
and its `seq` its index; the newest signed checkpoint (the `checkpoint` file: one C2SP
signed note) is signed by the key; its origin names this log's run_start line; its
root is the RFC 6962 Merkle root of the first `size` lines (each leaf is a line
without its newline). Exit 0 and "ok" when all hold, 1 and the first failure
otherwise. It is a recipe, written apart from govtrain on purpose: it shares no code
with it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def fail(why: str) -> None:
    print(f"FAIL: {why}")
    sys.exit(1)


def merkle_root(leaves: list[bytes]) -> bytes:
    """RFC 6962 2.1: MTH of the leaves' data, split at the largest power of two below n."""
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + merkle_root(leaves[:k]) + merkle_root(leaves[k:])).digest()


def one_note(text: str) -> tuple[str, list[tuple[str, str]]]:
    """A signed note: its body (the text before the blank line, each line ending in a
    newline) and its signature lines ("— name base64")."""
    body, blank, signatures = text.partition("\n\n")
    lines = signatures.split("\n")
    if not blank or lines[-1] or not all(line.startswith("\u2014 ") for line in lines[:-1]):
        fail("the checkpoint file is not one signed note")
    return body + "\n", [tuple(line[2:].split(" ", 1)) for line in lines[:-1]]


def main(run: Path, key_source: str) -> None:
    text = Path(key_source).read_text().strip() if Path(key_source).is_file() else key_source
    name, key_id_hex, encoded = text.split("+", 2)  # C2SP vkey: name+keyid+base64(0x01||pub)
    raw = base64.b64decode(encoded)
    if raw[0] != 1 or len(raw) != 33:
        fail("not an Ed25519 verifier key")
    public = raw[1:]
    key_id = hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4]
    if key_id.hex() != key_id_hex:
        fail("the key id does not match the key")

    lines = (run / "audit.jsonl").read_bytes().split(b"\n")
    if lines[-1] != b"":
        fail("the log ends in a torn record")
    lines = lines[:-1]
    prev = hashlib.sha256(b"govtrain.audit/v1 genesis").hexdigest()  # record 0's prev
    for seq, line in enumerate(lines):
        record = json.loads(line)
        if record["seq"] != seq or record["prev"] != prev:
            fail(f"record {seq}: bad seq or hash link")
        prev = hashlib.sha256(line).hexdigest()

    body, signatures = one_note((run / "checkpoint").read_text())
    mine = [base64.b64decode(sig) for who, sig in signatures if who == name]
    if not mine or mine[0][:4] != key_id:
        fail("the last checkpoint is not signed by this key")
    blob = mine[0]
    origin, size_text, root_b64 = body.rstrip("\n").split("\n")[:3]
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(blob[4:], body.encode())
    except InvalidSignature:
        fail("bad signature on the last checkpoint")
    if origin != "govtrain.audit/" + hashlib.sha256(lines[0]).hexdigest():
        fail("the checkpoint names another log")
    size = int(size_text)
    if not 0 < size <= len(lines) or merkle_root(lines[:size]) != base64.b64decode(root_b64):
        fail(f"the first {size} records do not have the signed root")
    closed = json.loads(lines[-1])["kind"] == "run_end" and size == len(lines)
    print(f"ok: {len(lines)} records, signed root of {size}, {'closed' if closed else 'open'}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
