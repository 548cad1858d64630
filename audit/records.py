"""Records: one RFC 8785 (JCS) canonical JSON object per line of audit.jsonl.

A record is ``{"body": {...}, "kind": str, "prev": hex, "seq": int}`` with keys in
JCS order. ``prev`` is the SHA-256 (hex) of the previous record's canonical bytes
(without the newline); the first record's ``prev`` is `GENESIS_PREV`, the SHA-256 of
a fixed domain string rather than zeros, so a govtrain chain cannot be mistaken for
another format's chain that starts from zeros.

Non-finite floats (a NaN loss) have no JSON form, so they are written as tagged
objects ``{"$float": "NaN" | "Infinity" | "-Infinity"}`` and turned back into floats
by `Record.from_line`; a body may therefore not use ``"$float"`` as a key itself.
Numbers round-trip by value (JSON has one number type: ``2.0`` comes back as ``2``,
``-0.0`` as ``0``); integers beyond +-(2**53 - 1) and non-string keys are refused, as
RFC 8785 refuses them.

Speed: ``rfc8785.dumps`` is pure Python (about 150 us for a 1.8 kB step record), too
slow to append 20,000 records/s. `canonical_json` therefore serialises with the C
``json`` encoder and keeps that output only when it provably equals the JCS form:
every difference between the two (number formats, key order beyond the BMP,
non-string keys) is either flagged by `_needs_rfc8785`, patched (integral floats), or
caught by parsing the result back, and then ``rfc8785`` decides. `parse_line` applies
the same argument in reverse when verifying: a line is accepted on the fast path only
if the C encoder reproduces it byte for byte and nothing in it is flagged.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import rfc8785

from govtrain.audit.errors import NonCanonicalError, RecordError

GENESIS_PREV = hashlib.sha256(b"govtrain.audit/v1 genesis").hexdigest()
FLOAT_TAG = "$float"
FIELDS = frozenset({"body", "kind", "prev", "seq"})

_SAFE_INT = 2**53 - 1
_TAGS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_KIND = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]{0,63}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
# check_circular=False: a cycle then ends in RecursionError (refused below) instead of
# paying for id() bookkeeping on every container of every record.
_ENCODER = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":"), check_circular=False
)
# Where the C encoder's text and JCS may differ: exponents (Python 1e-05, JCS 1e-5;
# JCS writes 1e-6 <= |x| < 1e-4 as "0.0000..."), -0.0, integers of 16+ digits (beyond
# the JCS range), non-BMP characters (JCS sorts keys by UTF-16 units) and the reserved
# tag send a record to rfc8785. Integral floats (Python "2.0", JCS "2") are common
# (a zero signal) and are patched in place instead. The tests run on `_NUMBER_SHAPE`
# text, where digits read "0", "e"/"E" read "e", signs read "-", other hex letters
# read "." and all else " ": so " 0000000000000000" is a 16-digit number after a ":",
# "," or "[", while hex digests and fractions never look like one. A false alarm only
# costs speed: every fast result is confirmed by parsing it back (see canonical_json).
_NON_BMP = re.compile(rb"[\xf0-\xf4]")
_NEGATIVE_ZERO = re.compile(rb"-0\.0(?![0-9])")
_INTEGRAL_FLOAT = re.compile(rb"\.0(?=[,\]}]|$)")  # in a string too: the parse-back catches it


def _shape_of(byte: int) -> int:
    char = chr(byte)
    if char in "0123456789":
        return ord("0")
    if char in "eE+-.$":
        return ord({"E": "e", "+": "-"}.get(char, char))
    return ord(".") if char in "abcdfABCDF" else ord(" ")


_NUMBER_SHAPE = bytes.maketrans(bytes(range(256)), bytes(_shape_of(b) for b in range(256)))


def _needs_rfc8785(data: bytes, shape: bytes, *, read: bool = False) -> bool:
    """True when the C encoder's bytes and JCS may differ beyond integral floats.

    `read` adds the check only a line read back needs: Python never writes "0.0000".
    Rare characters ("-", "$", non-ASCII) gate the slower tests.
    """
    signed = b"-" in shape and (
        b"0e-" in shape
        or b"-0000000000000000" in shape
        or (b"-0.0" in data and _NEGATIVE_ZERO.search(data) is not None)
    )
    return (
        signed
        or b" 0000000000000000" in shape
        or (b"$" in shape and b'"$float"' in data)
        or (not data.isascii() and _NON_BMP.search(data) is not None)
        or (read and b"0.0000" in data)
    )


def canonical_json(value: Any) -> bytes:
    """RFC 8785 bytes of `value`, with non-finite floats tagged; RecordError if not encodable.

    The C encoder's text is kept only once parsing it back gives `value` again: that
    also refuses the int/float/bool/None keys json would silently turn into strings.
    """
    try:
        data = _ENCODER.encode(value).encode()
    except (TypeError, ValueError, RecursionError):  # non-finite, odd type or key, surrogate
        return _slow_canonical(value)
    shape = data.translate(_NUMBER_SHAPE)
    if _needs_rfc8785(data, shape):
        return _slow_canonical(value)
    data = _INTEGRAL_FLOAT.sub(b"", data)
    return data if json.loads(data.decode()) == value else _slow_canonical(value)


def _slow_canonical(value: Any) -> bytes:
    try:
        return rfc8785.dumps(_tagged(value))
    except rfc8785.CanonicalizationError as exc:
        raise RecordError(f"cannot canonicalise: {exc}") from exc
    except RecursionError as exc:
        raise RecordError("the value is nested too deeply or contains itself") from exc


def _tagged(value: Any) -> Any:
    """Copy of `value` with non-finite floats tagged; refuses what JCS cannot express."""
    if isinstance(value, float) and not math.isfinite(value):
        return {
            FLOAT_TAG: "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
        }
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise RecordError(f"object keys must be strings, got {key!r}")
            if key == FLOAT_TAG:
                raise RecordError(f"the key {FLOAT_TAG!r} is reserved for non-finite floats")
            out[key] = _tagged(item)
        return out
    if isinstance(value, list | tuple):
        return [_tagged(item) for item in value]
    raise RecordError(f"cannot encode a {type(value).__name__} in a record")


def _untagged(value: Any) -> Any:
    """Inverse of `_tagged` on parsed JSON; RecordError on a malformed tag."""
    if isinstance(value, dict):
        if FLOAT_TAG in value:
            if len(value) != 1 or value[FLOAT_TAG] not in _TAGS:
                raise RecordError(f"malformed {FLOAT_TAG} tag: {value!r}")
            return _TAGS[value[FLOAT_TAG]]
        return {key: _untagged(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_untagged(item) for item in value]
    return value


def log_origin(first_line: bytes) -> str:
    """The checkpoint origin of a log: names it by its run_start record, so one key's
    checkpoints for two runs can never be swapped between them."""
    return "govtrain.audit/" + hashlib.sha256(first_line).hexdigest()


def encode_record(seq: int, kind: str, prev: str, body: Mapping[str, Any]) -> bytes:
    """Canonical bytes (no newline) of one record; RecordError on a bad field or body."""
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq <= _SAFE_INT:
        raise RecordError(f"seq must be a non-negative integer, got {seq!r}")
    if not isinstance(kind, str) or not _KIND.fullmatch(kind):
        raise RecordError(f"kind must match {_KIND.pattern}, got {kind!r}")
    if not isinstance(prev, str) or not _HEX64.fullmatch(prev):
        raise RecordError(f"prev must be 64 lowercase hex digits, got {prev!r}")
    if not isinstance(body, Mapping):
        raise RecordError(f"body must be a mapping, got {type(body).__name__}")
    return canonical_json({"body": body, "kind": kind, "prev": prev, "seq": seq})


def _jcs_int(text: str) -> int | float:
    """JSON numbers are doubles: an integer literal outside the safe range reads as one."""
    value = int(text)
    return value if -_SAFE_INT <= value <= _SAFE_INT else float(value)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _canonical_value(line: bytes, parsed: Any) -> Any | None:
    """The value of `line` if its bytes are canonical, else None.

    Off the fast path the line is re-read with JSON number semantics (a 16+ digit
    integer is a double), so a value that went in as 1e16 comes back as a float.
    """
    shape = line.translate(_NUMBER_SHAPE)
    if not _needs_rfc8785(line, shape, read=True) and _INTEGRAL_FLOAT.search(line) is None:
        try:
            return parsed if _ENCODER.encode(parsed).encode() == line else None
        except (ValueError, UnicodeEncodeError):  # NaN literal, lone surrogate
            return None
    try:
        exact = json.loads(line, parse_int=_jcs_int, parse_constant=_refuse_constant)
        return exact if rfc8785.dumps(exact) == line else None
    except (ValueError, rfc8785.CanonicalizationError):
        return None


def parse_line(line: bytes) -> dict[str, Any]:
    """The raw record dict of a canonical line (tags left in place), or a precise error.

    Raises RecordError when the line is not a record at all and NonCanonicalError
    when it is one but its bytes are not the RFC 8785 form of its value.
    """
    try:
        parsed = json.loads(line.decode())
        if type(parsed) is dict and parsed.keys() == FIELDS:
            parsed = _canonical_value(line, parsed)
            if parsed is None:
                raise NonCanonicalError("bytes are not the RFC 8785 canonical form of the record")
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an over-long integer
        raise RecordError(f"not JSON ({str(exc)[:200]})") from None
    except RecursionError:
        raise RecordError("nests too deeply to be a record") from None
    if type(parsed) is not dict or parsed.keys() != FIELDS:
        keys = sorted(parsed) if isinstance(parsed, dict) else type(parsed).__name__
        raise RecordError(f"a record has exactly the fields {sorted(FIELDS)}, got {keys}")
    seq, kind, prev, body = parsed["seq"], parsed["kind"], parsed["prev"], parsed["body"]
    if type(seq) is not int or seq < 0:
        raise RecordError(f"seq must be a non-negative integer, got {seq!r}")
    if type(kind) is not str or not _KIND.fullmatch(kind):
        raise RecordError(f"kind must match {_KIND.pattern}, got {kind!r}")
    if type(prev) is not str or not _HEX64.fullmatch(prev):
        raise RecordError(f"prev must be 64 lowercase hex digits, got {prev!r}")
    if type(body) is not dict:
        raise RecordError(f"body must be an object, got {type(body).__name__}")
    if b'"$float"' in line:
        _untagged(body)
    return parsed


@dataclass(frozen=True, slots=True)
class Record:
    """One parsed record; `line` is its canonical bytes (what is hashed and signed)."""

    seq: int
    kind: str
    prev: str
    body: dict[str, Any]
    line: bytes

    @classmethod
    def build(cls, seq: int, kind: str, prev: str, body: Mapping[str, Any]) -> Record:
        """Encode a new record; the body keeps the caller's values (NaN stays NaN)."""
        return cls(seq, kind, prev, dict(body), encode_record(seq, kind, prev, body))

    @classmethod
    def from_line(cls, line: bytes) -> Record:
        """Parse and check one line (without its newline); tags become floats again."""
        raw = parse_line(line)
        return cls(raw["seq"], raw["kind"], raw["prev"], _untagged(raw["body"]), line)

    @property
    def hash(self) -> str:
        """Hex SHA-256 of the canonical bytes: the next record's `prev`."""
        return hashlib.sha256(self.line).hexdigest()
