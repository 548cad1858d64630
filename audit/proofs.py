"""Inclusion and consistency proofs as self-contained JSON bundles, checkable offline.

`prove` verifies the run and returns, for one record: its canonical line, leaf hash,
index, the tree size and root of a signed checkpoint, the RFC 9162 audit path, and
that checkpoint's signed note. `check_proof` needs only the bundle, a signed
checkpoint note and a key: it checks the note's signature, that the note's (origin,
size, root) are the bundle's, that the record is canonical with the claimed seq and
hashes to the leaf, and the audit path. Nothing is read from the run directory.

`parse_proof` owns the JSON schema of both bundles: each field once, none unknown or
missing, integers as integers and hashes as lowercase hex. With it every byte that
matters is checked: a bundle that differs from the one `prove` wrote does not pass.

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
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from govtrain.audit.errors import NoteError, ProofError, RecordError
from govtrain.audit.keys import VerifierKey, b64decode_strict
from govtrain.audit.merkle import (
    HASH_SIZE,
    MerkleTree,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from govtrain.audit.notes import Checkpoint, open_checkpoint, split_notes, unverified_text
from govtrain.audit.records import Record
from govtrain.audit.verify import VerifyReport, read_latest, read_run, verify_bytes

PROOF_FORMAT = "govtrain.audit.inclusion/v1"
TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1"
CONSISTENCY_FORMAT = "govtrain.audit.consistency/v1"
MAX_PROOF_BYTES = 1 << 24  # a proof is one record and at most 63 hashes: far less
_HEX64 = re.compile(r"[0-9a-f]{64}")
_SURROGATE = re.compile("[\ud800-\udfff]")  # JSON's "\\ud800" escapes: not UTF-8 text
_MAX_DIGITS = 19  # as many as a signed checkpoint's size may have

# The JSON proof schema, in one place: each format's fields as `prove` and
# `prove_consistency` write them, and what each must be.
_SCHEMA: dict[str, dict[str, str]] = {
    PROOF_FORMAT: {
        "format": "text",
        "origin": "text",
        "key": "text",
        "seq": "uint",
        "record": "text",
        "leaf_hash": "hash",
        "index": "uint",
        "tree_size": "uint",
        "root": "hash",
        "proof": "hashes",
        "checkpoint": "text",
    },
    CONSISTENCY_FORMAT: {
        "format": "text",
        "origin": "text",
        "key": "text",
        "old_size": "uint",
        "old_root": "hash",
        "tree_size": "uint",
        "root": "hash",
        "proof": "hashes",
        "checkpoint": "text",
    },
}
_KINDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "uint": ("a non-negative integer", lambda v: type(v) is int and v >= 0),
    "text": ("UTF-8 text", lambda v: type(v) is str and not _SURROGATE.search(v)),
    "hash": ("64 lowercase hex digits", lambda v: type(v) is str and bool(_HEX64.fullmatch(v))),
    "hashes": ("a list of hashes", lambda v: type(v) is list),
}


def parse_proof(text: str, source: str = "proof") -> dict[str, Any]:
    """A JSON proof bundle of either format, each field as `prove` writes it: no field
    twice, none unknown or missing, integers as integers (not "7", 7.0 or true), hashes as
    lowercase hex. The error names the file (`source`) and the field."""

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for name, value in pairs:
            if name in data:
                raise ProofError(f"{source}: field {_shown(name)} appears twice")
            data[name] = value
        return data

    def integer(digits: str) -> int:
        if len(digits) > _MAX_DIGITS:
            raise ProofError(f"{source}: an integer of {len(digits)} digits is out of range")
        return int(digits)

    try:
        data = json.loads(text, object_pairs_hook=unique, parse_int=integer)
    except ValueError as exc:
        raise ProofError(f"{source} is not a JSON proof: {exc}") from None
    except RecursionError:
        raise ProofError(f"{source} is not a JSON proof: it nests too deeply") from None
    if type(data) is not dict:
        raise ProofError(f"{source} is not a JSON proof object")
    form = data.get("format")
    fields = _SCHEMA.get(form) if type(form) is str else None
    if fields is None:
        raise ProofError(
            f"{source}: not a {PROOF_FORMAT} bundle nor a {CONSISTENCY_FORMAT} one "
            f"(format {_shown(form)})"
        )
    if unknown := sorted(data.keys() - fields.keys()):
        raise ProofError(f"{source}: unknown field {_shown(unknown[0])}")
    for name, kind in fields.items():
        if name not in data:
            raise ProofError(f'{source}: field "{name}" is missing')
        value = data[name]
        if kind == "hashes" and type(value) is list:
            for i, item in enumerate(value):
                _expect(f'{source}: field "{name}" item {i}', item, "hash")
        else:
            _expect(f'{source}: field "{name}"', value, kind)
    return data


def _expect(where: str, value: Any, kind: str) -> None:
    what, ok = _KINDS[kind]
    if not ok(value):
        raise ProofError(f"{where} must be {what}, got {_shown(value)}")


def _shown(value: Any) -> str:
    """A value as an error shows it, on one line: JSON, containers by kind, long text cut."""
    if isinstance(value, dict | list):
        return "an object" if isinstance(value, dict) else "a list"
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."


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


def check_tlog_proof(
    text: str, key: VerifierKey, source: str = "tlog-proof"
) -> tuple[Record, Checkpoint]:
    """The proven record and the checkpoint it is in, once the embedded checkpoint's
    signature, the record (the proof's extra data) and the audit path all check."""
    line, index, nodes, note = _parse_tlog_proof(text, source)
    checkpoint = open_checkpoint(note, key)
    record = _record(line)
    if record.seq != index:
        raise ProofError(f"the record has seq {record.seq}, the proof is for index {index}")
    verify_inclusion(leaf_hash(record.line), index, checkpoint.size, nodes, checkpoint.root)
    return record, checkpoint


def _parse_tlog_proof(text: str, source: str) -> tuple[bytes, int, list[bytes], str]:
    """(record line, index, audit path, checkpoint note) of a govtrain tlog-proof: the
    header, `extra` with the record, `index N`, one base64 hash a line, a blank line and
    the signed checkpoint. An error names the first bad line."""
    head, sep, note = text.partition("\n\n")
    lines = head.split("\n")

    def bad(n: int, why: str) -> ProofError:
        got = _shown(lines[n - 1]) if n <= len(lines) else "the end of the proof"
        return ProofError(f"{source}: line {n} {why}, got {got}")

    def base64_at(n: int, data: str) -> bytes:
        try:
            return b64decode_strict(data)
        except ValueError as exc:
            raise bad(n, f"must be base64 ({exc})") from None

    if lines[0] != TLOG_PROOF_HEADER:
        raise bad(1, f"must be {TLOG_PROOF_HEADER}")
    if not sep:
        raise ProofError(f"{source}: no blank line before the signed checkpoint")
    if len(lines) < 2 or not lines[1].startswith("extra "):
        raise bad(2, "must be `extra` and the record in base64")
    line = base64_at(2, lines[1].removeprefix("extra "))
    if len(lines) < 3 or not re.fullmatch(r"index (0|[1-9][0-9]{0,18})", lines[2], re.ASCII):
        raise bad(3, "must be `index N`, N a decimal without leading zeroes")
    nodes = [base64_at(n, lines[n - 1]) for n in range(4, len(lines) + 1)]
    for n, node in enumerate(nodes, 4):
        if len(node) != HASH_SIZE:
            raise bad(n, f"must be a {HASH_SIZE}-byte hash in base64")
    return line, int(lines[2].removeprefix("index ")), nodes, note


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

    `bundle` is as `parse_proof` returns it; `old_notes` is the earlier signed checkpoint
    the checker kept (one note, or a whole checkpoints.note file); the later note is the
    bundle's own, its signature checked.
    """
    if bundle["format"] != CONSISTENCY_FORMAT:
        raise ProofError(f"not a {CONSISTENCY_FORMAT} bundle")
    old = check_proof_checkpoint(old_notes, bundle["old_size"], key)
    new = _own_checkpoint(bundle, key)
    _check_key(bundle, key)
    if new.origin != old.origin:
        raise NoteError(f"the checkpoints are of two logs: {old.origin} and {new.origin}")
    if (bundle["tree_size"], bundle["root"]) != (new.size, new.root.hex()):
        raise NoteError(
            f"the bundle's checkpoint signs size {new.size} root {new.root.hex()}, the proof "
            f"is for size {bundle['tree_size']} root {bundle['root']}"
        )
    nodes = [bytes.fromhex(node) for node in bundle["proof"]]
    verify_consistency(old.size, new.size, old.root, new.root, nodes)
    if (bundle["origin"], bundle["old_root"]) != (old.origin, old.root.hex()):
        raise NoteError(
            f"your checkpoint signs {old.origin} root {old.root.hex()}, the bundle claims "
            f"{_shown(bundle['origin'])} root {bundle['old_root']}"
        )
    return old, new


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

    `bundle` is as `parse_proof` returns it; `checkpoint_notes` is one signed checkpoint
    note, or a whole checkpoints.note file from which the note of the proof's tree size is
    taken. Every field of the bundle is checked, so no two bundles that differ both pass.
    """
    if bundle["format"] != PROOF_FORMAT:
        raise ProofError(f"not a {PROOF_FORMAT} bundle")
    index, size = bundle["index"], bundle["tree_size"]
    checkpoint = check_proof_checkpoint(checkpoint_notes, size, key)
    _check_key(bundle, key)
    origin, root = bundle["origin"], bundle["root"]
    if (origin, size, root) != (checkpoint.origin, checkpoint.size, checkpoint.root.hex()):
        raise NoteError(
            f"the checkpoint signs {checkpoint.origin} size {checkpoint.size} root "
            f"{checkpoint.root.hex()}, the proof is for {_shown(origin)} size {size} root {root}"
        )
    if _own_checkpoint(bundle, key) != checkpoint:
        raise NoteError("the bundle's signed checkpoint is not the one it is checked against")
    record = _record(bundle["record"].encode())
    if not record.seq == bundle["seq"] == index:
        raise ProofError(
            f"the record has seq {record.seq}, the proof is for seq {bundle['seq']} index {index}"
        )
    leaf = leaf_hash(record.line)
    if leaf.hex() != bundle["leaf_hash"]:
        raise ProofError(f"the record hashes to leaf {leaf.hex()}, not the bundle's leaf_hash")
    nodes = [bytes.fromhex(node) for node in bundle["proof"]]
    verify_inclusion(leaf, index, size, nodes, checkpoint.root)
    return record


def _check_key(bundle: Mapping[str, Any], key: VerifierKey) -> None:
    """A bundle that names another key than the one that checks it has been altered."""
    if bundle["key"] != key.vkey:
        raise NoteError(
            f"the proof names key {_shown(bundle['key'])}, it is checked with {key.vkey}"
        )


def _record(line: bytes) -> Record:
    """The record a proof carries; an error says it is that record."""
    try:
        return Record.from_line(line)
    except RecordError as exc:
        raise type(exc)(f"the proof's record: {exc}") from None


def _own_checkpoint(bundle: Mapping[str, Any], key: VerifierKey) -> Checkpoint:
    """The bundle's own signed checkpoint, opened with `key`; an error says it is that one."""
    try:
        return open_checkpoint(bundle["checkpoint"], key)
    except NoteError as exc:
        raise type(exc)(f"the bundle's checkpoint: {exc}") from None
