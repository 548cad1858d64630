"""Model checkpoints of a `govtrain run`: written atomically inside the run, read back
only as data, and only once the verified log vouches for their bytes.

A checkpoint is a `torch.save` of plain tensors and data (`FORMAT` says which keys),
at ``checkpoints/step_NNNNNN.pt`` in the run directory; its SHA-256 goes into the
log's `checkpoint` record. Nothing is reached through a link: the ``checkpoints``
directory and the staging file are opened without following one, and a read walks
every component of the recorded path the same way. The bytes hashed are the bytes
loaded (read once, into memory), so a file swapped after the check is never loaded.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
from pathlib import Path
from typing import Any

import torch

from govtrain.audit.errors import AuditError
from govtrain.audit.files import open_in_run, read_fd, replace_synced, run_subdir
from govtrain.governance.errors import GovtrainError

DIRECTORY = "checkpoints"
# 2: the "format" key itself, and every key below always present. 1: none, with
# "evals", "evaluated_at", "changed_since_eval" and "tiers" possibly absent.
FORMAT = 2
KEYS = {
    "step": int,
    "model": dict,
    "optimizer": (dict, type(None)),
    "governor": dict,
    "rng": dict,
    "backward_flops": int,
    "grad_bytes": int,
    "transitions": dict,
    "last_loss": float,
    "last_eval": float,
}
SINCE_2 = {"evals": {}, "evaluated_at": None, "changed_since_eval": True, "tiers": None}


class CheckpointError(GovtrainError):
    """A checkpoint cannot be written, or is not one this run can resume from."""


def write(run_dir: Path, step: int, state: dict[str, Any]) -> tuple[str, str]:
    """Save `state` as step `step`'s checkpoint; returns (its path in the run, its SHA-256).

    Durable before it returns (file and directory entry fsynced), so the log never
    names a file a crash could lose. A failure (full disk) leaves no partial file."""
    name = f"step_{step:06d}.pt"
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, **state}, buffer)
    data = buffer.getvalue()
    try:
        with run_subdir(run_dir, DIRECTORY, create=True) as fd:
            replace_synced(Path(name), data, dir_fd=fd)
            os.fsync(fd)  # the rename is durable before the log names the file
    except OSError as exc:
        raise CheckpointError(
            f"{Path(run_dir) / DIRECTORY / name}: checkpoint not written ({exc.strerror}; is "
            "the disk full?); the log is intact up to the previous checkpoint: fix the cause, "
            "then resume"
        ) from None
    return f"{DIRECTORY}/{name}", hashlib.sha256(data).hexdigest()


def read(run_dir: Path, record: dict[str, Any]) -> dict[str, Any]:
    """The state saved in the checkpoint a verified log's `record` names, checked against
    the record's SHA-256 and `FORMAT`; CheckpointError names what is wrong."""
    rel = str(record.get("path"))
    try:
        data = read_fd(open_in_run(Path(run_dir), rel, "checkpoint"))
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {rel}: missing from the run directory") from None
    except AuditError as exc:  # a link, or a path out of the run
        raise CheckpointError(str(exc)) from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != record.get("sha256"):
        raise CheckpointError(
            f"checkpoint {rel}: SHA-256 {digest} does not match the log's {record.get('sha256')}"
        )
    try:  # weights_only: a checkpoint is data; nothing in it is ever executed
        state = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as exc:
        text = str(exc).strip()
        first = text.splitlines()[0] if text else type(exc).__name__
        raise CheckpointError(
            f"checkpoint {rel}: refused, not plain tensors and data ({first})"
        ) from None
    return _checked(state, rel)


def _checked(state: Any, rel: str) -> dict[str, Any]:
    """`state` with the keys and types its format promises (an older format's missing
    keys at their defaults), or CheckpointError naming the first one wrong."""
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {rel}: not a govtrain checkpoint (a {type(state)})")
    version = state.get("format", 1)
    if version not in (1, FORMAT):
        raise CheckpointError(f"checkpoint {rel}: format {version!r}, this govtrain reads 1-2")
    if version == 1:
        state = SINCE_2 | state
    for key, kind in (KEYS | {k: object for k in SINCE_2}).items():
        if key not in state:
            raise CheckpointError(f"checkpoint {rel}: not a govtrain checkpoint (no {key!r})")
        if not isinstance(state[key], kind) or (isinstance(state[key], bool) and kind is int):
            raise CheckpointError(
                f"checkpoint {rel}: {key!r} is a {type(state[key]).__name__}, not what a "
                "govtrain checkpoint holds"
            )
    return state
