"""The audit log of a run whose loop is someone else's (an HF Trainer, a Lightning Trainer).

The callback that governs such a loop writes its step records into a log created
here, before training starts, committing to the config, the model's architecture
and initial weights, and the data files; `config` says which loop it was.
`new_log` is what every loop's log is created by, `govtrain run`'s too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from torch import nn

from govtrain.audit.anchors import AnchorStore
from govtrain.audit.keys import Signer, generate_signer
from govtrain.audit.log import DEFAULT_CHECKPOINT_EVERY, DEFAULT_FSYNC, AuditLog, FsyncPolicy
from govtrain.audit.provenance import build_run_start
from govtrain.governance.config import GovernanceConfig
from govtrain.pipeline.models import parameter_digest, structure_digest


def create_run_log(
    run_dir: Path,
    model: nn.Module,
    cfg: GovernanceConfig,
    loop: Mapping[str, Any],
    *,
    seed: int = 0,
    data_files: Iterable[Path] = (),
    signer: Signer | None = None,
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
    fsync: FsyncPolicy = DEFAULT_FSYNC,
) -> AuditLog:
    """`run_dir`'s new audit log; `loop`: what the config records of the training loop."""
    config = {
        "governance": cfg.model_dump(mode="json"),
        **loop,
        "model_class": type(model).__name__,
    }
    run_start = build_run_start(
        config=config,
        seed=seed,
        data_files=data_files,
        model_structure_digest=f"sha256:{structure_digest(model)}",
        initial_params_digest=f"sha256:{parameter_digest(model)}",
    )
    return new_log(
        run_dir, run_start, signer=signer, checkpoint_every=checkpoint_every, fsync=fsync
    )


def new_log(
    run_dir: Path,
    run_start: Mapping[str, Any],
    *,
    signer: Signer | None = None,
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
    fsync: FsyncPolicy = DEFAULT_FSYNC,
) -> AuditLog:
    """`run_dir`'s new audit log, `run_start` its record 0, for every loop alike: a new key
    kept with the run (`run_dir/keys/`) signs unless a `signer` is given, and each signed
    checkpoint is also kept in the user's trust anchor store."""
    return AuditLog.create(
        Path(run_dir),
        signer=signer if signer is not None else generate_signer(),
        keep_key=signer is None,
        anchors=AnchorStore.default(),
        run_start=run_start,
        checkpoint_every=checkpoint_every,
        fsync=fsync,
    )
