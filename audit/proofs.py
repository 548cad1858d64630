"""Inclusion and consistency proofs as self-contained JSON bundles, checkable offline.

`prove` verifies the run and returns, for one record: its canonical line, leaf hash,
index, the tree size and root of a signed checkpoint, the RFC 9162 audit path, and
that checkpoint's signed note. `check_proof` needs only the bundle, a signed
checkpoint note and a key: it checks the note's signature, that the note's (origin,
size, root) are the bundle's, that the record is canonical with the claimed seq and
hashes to the leaf, and the audit path. Nothing is read from the run directory.

`tlog_proof` writes the same inclusion proof in the C2SP tlog-proof@v1 text format
(https://c2sp.org/tlog-proof: `index`, the audit path in base64, the signed
checkpoint verbatim), with the record's canonical line as its `extra` data, so
standard tlog tools verify it and `check_tlog_proof` needs nothing else.

`prove_consistency` answers whoever kept an older signed checkpoint: the RFC 9162
consistency proof from that size to a later signed checkpoint, embedded in the
bundle. `check_consistency` checks the later note's signature, the earlier note the
checker trusts, and that the later tree extends the earlier one: no record the
earlier checkpoint covered was changed, dropped or reordered since.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from govtrain.audit.errors import NoteError, ProofError, RecordError
from govtrain.audit.keys import VerifierKey
from govtrain.audit.merkle import MerkleTree, leaf_hash, verify_consistency, verify_inclusion
from govtrain.audit.notes import Checkpoint, open_checkpoint, split_notes, unverified_text
from govtrain.audit.records import Record
from govtrain.audit.verify import VerifyReport, read_latest, read_run, verify_bytes

PROOF_FORMAT = "govtrain.audit.inclusion/v1"
TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1"
CONSISTENCY_FORMAT = "govtrain.audit.consistency/v1"


def _verified_tree(
    path: Path, pubkey: VerifierKey | None, size: int | None
) -> tuple[VerifyReport, dict[int, str], int, MerkleTree, list[bytes]]:
    """Verify the run; its report, its notes by size, the proof's size, tree and lines."""
    log, notes = read_run(path)
    report = verify_bytes(log, notes, pubkey=pubkey, latest=read_latest(path))
    texts, _ = split_notes(notes)
    signed = {Checkpoint.parse(unverified_text(text)).size: text for text in texts}
    size = report.checkpoint_size if size is None else size
    if size not in signed:
        raise ProofError(f"there is no signed checkpoint of size {size} (sizes: {sorted(signed)})")
    lines = log.split(b"\n")[:size]
    return report, signed, size, MerkleTree(leaf_hash(line) for line in lines), lines


def prove(
    path: Path, seq: int, *, pubkey: VerifierKey | None = None, size: int | None = None
) -> dict[str, Any]:
    """The bundle for record `seq` against the last signed checkpoint (or the one of `size`)."""
    report, signed, size, tree, lines = _verified_tree(path, pubkey, size)
    if not 0 <= seq < size:
        raise ProofError(f"record {seq} is not covered by the signed checkpoint of size {size}")
    return {
        "format": PROOF_FORMAT,
        "origin": report.origin,
        "key": report.key.vkey,
        "seq": seq,
        "record": lines[seq].decode(),
        "leaf_hash": leaf_hash(lines[seq]).hex(),
        "index": seq,
        "tree_size": size,
        "root": tree.root(size).hex(),
        "proof": [node.hex() for node in tree.inclusion_proof(seq, size)],
        "checkpoint": signed[size],
    }


def tlog_proof(bundle: Mapping[str, Any]) -> str:
    """An inclusion bundle (from `prove`) as a C2SP tlog-proof, the record as extra data."""
    lines = [
        TLOG_PROOF_HEADER,
        "extra " + base64.b64encode(bundle["record"].encode()).decode(),
        f"index {bundle['index']}",
        *(base64.b64encode(bytes.fromhex(node)).decode() for node in bundle["proof"]),
        "",
    ]
    return "\n".join(lines) + "\n" + bundle["checkpoint"]


def check_tlog_proof(text: str, key: VerifierKey) -> tuple[Record, Checkpoint]:
    """The proven record and the checkpoint it is in, once the embedded checkpoint's
    signature, the record (the proof's extra data) and the audit path all check."""
    head, sep, note = text.partition("\n\n")
    lines = head.split("\n")
    if not sep or lines[0] != TLOG_PROOF_HEADER:
        raise ProofError(f"not a {TLOG_PROOF_HEADER} proof")
    if len(lines) < 3 or not lines[1].startswith("extra ") or not lines[2].startswith("index "):
        raise ProofError("a govtrain tlog-proof has the record as `extra`, then `index N`")
    try:
        line = base64.b64decode(lines[1].removeprefix("extra "), validate=True)
        nodes = [base64.b64decode(node, validate=True) for node in lines[3:]]
    except (binascii.Error, ValueError) as exc:
        raise ProofError(f"the proof has a line that is not base64: {exc}") from exc
    index_text = lines[2].removeprefix("index ")
    if not re.fullmatch(r"0|[1-9][0-9]{0,18}", index_text, flags=re.ASCII):
        raise ProofError(f"index {index_text[:40]!r} is not a decimal without leading zeroes")
    checkpoint = open_checkpoint(note, key)
    record = Record.from_line(line)
    if record.seq != int(index_text):
        raise ProofError(f"the record has seq {record.seq}, the proof is for index {index_text}")
    verify_inclusion(leaf_hash(record.line), record.seq, checkpoint.size, nodes, checkpoint.root)
    return record, checkpoint


def prove_consistency(
    path: Path, old_size: int, *, pubkey: VerifierKey | None = None, size: int | None = None
) -> dict[str, Any]:
    """The bundle showing that the last signed checkpoint (or the one of `size`) extends
    the signed checkpoint of `old_size`."""
    report, signed, size, tree, _ = _verified_tree(path, pubkey, size)
    if old_size not in signed or not 0 < old_size <= size:
        earlier = sorted(n for n in signed if n <= size)
        raise ProofError(
            f"there is no signed checkpoint of size {old_size} up to size {size} (sizes: {earlier})"
        )
    return {
        "format": CONSISTENCY_FORMAT,
        "origin": report.origin,
        "key": report.key.vkey,
        "old_size": old_size,
        "old_root": tree.root(old_size).hex(),
        "tree_size": size,
        "root": tree.root(size).hex(),
        "proof": [node.hex() for node in tree.consistency_proof(old_size, size)],
        "checkpoint": signed[size],
    }


def check_consistency(
    bundle: Mapping[str, Any], old_notes: str, key: VerifierKey
) -> tuple[Checkpoint, Checkpoint]:
    """(the trusted earlier checkpoint, the later one) once the later signed tree is shown
    to extend the earlier; otherwise the error names the failed check.

    `old_notes` is the earlier signed checkpoint the checker kept (one note, or a whole
    checkpoints.note file); the later note is the bundle's own, its signature checked.
    """
    if bundle.get("format") != CONSISTENCY_FORMAT:
        raise ProofError(f"not a {CONSISTENCY_FORMAT} bundle")
    old_size, size = bundle.get("old_size"), bundle.get("tree_size")
    if type(old_size) is not int or type(size) is not int:
        raise ProofError("old_size and tree_size must be integers")
    text = bundle.get("checkpoint")
    if not isinstance(text, str):
        raise ProofError("the bundle has no signed checkpoint")
    old = check_proof_checkpoint(old_notes, old_size, key)
    new = open_checkpoint(text, key)
    if new.origin != old.origin:
        raise NoteError(f"the checkpoints are of two logs: {old.origin} and {new.origin}")
    if new.size != size or new.root != _hex(bundle.get("root"), "root"):
        raise NoteError(
            f"the bundle's checkpoint signs size {new.size} root {new.root.hex()}, the proof "
            f"is for size {size} root {bundle.get('root')}"
        )
    nodes = bundle.get("proof")
    if not isinstance(nodes, list):
        raise ProofError("proof must be a list of hex hashes")
    verify_consistency(
        old.size, new.size, old.root, new.root, [_hex(n, "proof hash") for n in nodes]
    )
    return old, new


def _hex(value: Any, what: str) -> bytes:
    try:
        return bytes.fromhex(value)
    except (TypeError, ValueError) as exc:
        raise ProofError(f"{what} is not hex") from exc


def _note_of_size(notes: str, size: int) -> str:
    """The note for tree `size` in one note or a whole checkpoints.note file (unverified yet)."""
    texts, _ = split_notes(notes.encode())
    sizes = {}
    for text in texts:
        try:
            sizes[Checkpoint.parse(unverified_text(text)).size] = text
        except NoteError:
            continue  # not a checkpoint: it cannot be the one asked for
    if size not in sizes:
        raise NoteError(
            f"the checkpoint file signs sizes {sorted(sizes)}, the proof is for size {size}"
        )
    return sizes[size]


def check_proof_checkpoint(checkpoint_notes: str, size: int, key: VerifierKey) -> Checkpoint:
    """The signed checkpoint of `size` in a note or a checkpoints.note file, verified."""
    return open_checkpoint(_note_of_size(checkpoint_notes, size), key)


def check_proof(bundle: Mapping[str, Any], checkpoint_notes: str, key: VerifierKey) -> Record:
    """The proven record once every check passes; otherwise the error names the failed check.

    `checkpoint_notes` is one signed checkpoint note, or a whole checkpoints.note file
    from which the note of the proof's tree size is taken.
    """
    if bundle.get("format") != PROOF_FORMAT:
        raise ProofError(f"not a {PROOF_FORMAT} bundle")
    index, size = bundle.get("index"), bundle.get("tree_size")
    if type(index) is not int or type(size) is not int:
        raise ProofError("index and tree_size must be integers")
    checkpoint = check_proof_checkpoint(checkpoint_notes, size, key)
    root = _hex(bundle.get("root"), "root")
    if (checkpoint.origin, checkpoint.size, checkpoint.root) != (bundle.get("origin"), size, root):
        raise NoteError(
            f"the checkpoint signs {checkpoint.origin} size {checkpoint.size} root "
            f"{checkpoint.root.hex()}, the proof is for {bundle.get('origin')} size {size} "
            f"root {root.hex()}"
        )
    line = bundle.get("record")
    if not isinstance(line, str):
        raise RecordError("the bundle has no record text")
    record = Record.from_line(line.encode())
    if record.seq != index:
        raise ProofError(f"the record has seq {record.seq}, the proof is for index {index}")
    leaf = leaf_hash(record.line)
    if leaf != _hex(bundle.get("leaf_hash"), "leaf_hash"):
        raise ProofError(f"the record hashes to leaf {leaf.hex()}, not the bundle's leaf_hash")
    nodes = bundle.get("proof")
    if not isinstance(nodes, list):
        raise ProofError("proof must be a list of hex hashes")
    verify_inclusion(leaf, index, size, [_hex(node, "proof hash") for node in nodes], root)
    return record
