"""C2SP signed notes, tlog checkpoints, and the checkpoints.note sidecar file.

A signed note is UTF-8 text ending in "\\n", a blank line, then one line per
signature: ``— <key name> <base64(4-byte key id || Ed25519 signature)>`` (U+2014).
A checkpoint's text is ``<origin>\\n<tree size>\\n<base64 root>\\n`` (C2SP
tlog-checkpoint). A checkpoint is what makes truncation and rollback detectable: it
is a statement of (size, root) that only the key holder can make.

The sidecar is append-only: one note per checkpoint, notes written back to back. A
note ends after its last signature line and a body line never starts with "— ", so
`split_notes` can cut the file into notes without extra framing, and tell an
incomplete final note (a crash mid-write) from damage elsewhere.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from govtrain.audit.errors import NoteError, SignatureError
from govtrain.audit.keys import Signer, VerifierKey, b64decode_strict

SIG_PREFIX = "\u2014 "
_SIG_PREFIX_BYTES = SIG_PREFIX.encode()
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")
_SIZE = re.compile(r"0|[1-9][0-9]{0,18}")


@dataclass(frozen=True)
class Checkpoint:
    """A log's (origin, tree size, root): the body of a checkpoint note."""

    origin: str
    size: int
    root: bytes

    def text(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Parse a checkpoint body; extension lines after the root are allowed and ignored."""
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "" or not all(lines[:-1]):
            raise NoteError("a checkpoint is origin, size and root lines, each ending in a newline")
        origin, size, root = lines[:3]
        if not _SIZE.fullmatch(size):
            raise NoteError(f"checkpoint size {size!r} is not a decimal integer")
        try:
            raw = b64decode_strict(root)
        except ValueError as exc:
            raise NoteError(f"checkpoint root: {exc}") from exc
        if len(raw) != 32:
            raise NoteError(f"checkpoint root is {len(raw)} bytes, not 32")
        return cls(origin, int(size), raw)


def _check_text(text: str) -> None:
    if not text.endswith("\n") or text.startswith("\n") or "\n\n" in text:
        raise NoteError("note text must be non-empty lines, each ending in a newline")
    if _CONTROL.search(text):
        raise NoteError("note text contains a control character")
    if any(line.startswith(SIG_PREFIX) for line in text.split("\n")):
        raise NoteError(f"a note text line may not start with {SIG_PREFIX!r}")


def sign_note(text: str, signer: Signer) -> str:
    """The signed note for `text`: text, a blank line, one signature line."""
    _check_text(text)
    blob = signer.verifier.key_id + signer.sign(text.encode())
    return f"{text}\n{SIG_PREFIX}{signer.name} {base64.b64encode(blob).decode()}\n"


def unverified_text(note: str) -> str:
    """The text part of a note without checking anything: only for notes already verified."""
    return note[: note.rfind("\n\n") + 1]


def open_note(note: str, key: VerifierKey) -> str:
    """The text of `note` once `key` has a valid signature on it.

    Raises NoteError when the note is malformed and SignatureError when `key` has
    no signature line on it or its signature does not verify; signatures by other
    keys (witness cosignatures, say) are ignored.
    """
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise NoteError("a note is text, a blank line and signature lines")
    text, sig_lines = note[: split + 1], note[split + 2 : -1].split("\n")
    _check_text(text)
    signed = False
    for line in sig_lines:
        if not line.startswith(SIG_PREFIX):
            raise NoteError(f"signature line {line!r} does not start with {SIG_PREFIX!r}")
        name, _, data = line[len(SIG_PREFIX) :].partition(" ")
        try:
            blob = b64decode_strict(data)
        except ValueError as exc:
            raise NoteError(f"signature by {name}: {exc}") from exc
        if len(blob) < 5:
            raise NoteError(f"signature by {name} is too short")
        if name != key.name or blob[:4] != key.key_id:
            continue
        if not key.verify(blob[4:], text.encode()):
            raise SignatureError(f"signature by {name} ({key.key_id.hex()}) does not verify")
        signed = True
    if not signed:
        raise SignatureError(f"no signature by key {key.name} ({key.key_id.hex()})")
    return text


def sign_checkpoint(checkpoint: Checkpoint, signer: Signer) -> str:
    return sign_note(checkpoint.text(), signer)


def open_checkpoint(note: str, key: VerifierKey) -> Checkpoint:
    """The checkpoint in `note`, after checking `key`'s signature on it."""
    return Checkpoint.parse(open_note(note, key))


def split_notes(data: bytes) -> tuple[list[str], int]:
    """Cut a sidecar into notes; returns them and the offset where a torn final note starts.

    The offset equals len(data) when the file ends on a complete note. Damage that
    is not at the end (a note without signatures followed by more text) raises NoteError.
    """
    notes: list[str] = []
    pos = 0
    while pos < len(data):
        blank = data.find(b"\n\n", pos)
        if blank < 0:
            return notes, pos
        end = blank + 2
        while data.startswith(_SIG_PREFIX_BYTES, end):
            newline = data.find(b"\n", end)
            if newline < 0:
                return notes, pos
            end = newline + 1
        if end == blank + 2:
            if _SIG_PREFIX_BYTES.startswith(data[end:]):  # cut before or inside "— "
                return notes, pos
            raise NoteError(f"note {len(notes) + 1} has no signature lines")
        try:
            notes.append(data[pos:end].decode())
        except UnicodeDecodeError as exc:
            raise NoteError(f"note {len(notes) + 1} is not UTF-8") from exc
        pos = end
    return notes, pos
