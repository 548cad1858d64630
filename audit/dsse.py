"""DSSE v1 envelopes (Dead Simple Signing Envelope) signed with the run key.

The signature covers PAE(payloadType, payload) =
``"DSSEv1" SP len(type) SP type SP len(payload) SP payload`` (lengths in ASCII
decimal bytes), never the base64 text, so the payload type cannot be swapped and
the payload is signed exactly as delivered. Used for the in-toto provenance export.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from govtrain.audit.errors import NoteError, SignatureError
from govtrain.audit.keys import Signer, VerifierKey

INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def sign_envelope(payload: bytes, payload_type: str, signer: Signer) -> dict[str, Any]:
    """A DSSE envelope with one Ed25519 signature; keyid is the key's fingerprint."""
    signature = signer.sign(pae(payload_type, payload))
    return {
        "payload": base64.b64encode(payload).decode(),
        "payloadType": payload_type,
        "signatures": [
            {"keyid": signer.verifier.fingerprint, "sig": base64.b64encode(signature).decode()}
        ],
    }


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise NoteError(f"envelope {what} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise NoteError(f"envelope {what} is not base64: {exc}") from exc


def open_envelope(envelope: Mapping[str, Any], key: VerifierKey) -> tuple[str, bytes]:
    """(payloadType, payload) once some signature verifies with `key`.

    keyid is an unauthenticated hint, so every signature is tried; NoteError when
    the envelope is malformed, SignatureError when no signature verifies.
    """
    payload_type = envelope.get("payloadType")
    signatures = envelope.get("signatures")
    if not isinstance(payload_type, str) or not isinstance(signatures, list) or not signatures:
        raise NoteError("a DSSE envelope has payloadType, payload and a non-empty signatures list")
    payload = _b64(envelope.get("payload"), "payload")
    message = pae(payload_type, payload)
    for entry in signatures:
        if not isinstance(entry, Mapping):
            raise NoteError("each DSSE signature is an object with a sig")
        if key.verify(_b64(entry.get("sig"), "sig"), message):
            return payload_type, payload
    raise SignatureError(f"no envelope signature verifies with key {key.name} ({key.fingerprint})")
