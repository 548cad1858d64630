"""Open a run as `govtrain run` does: fresh, resumed, or, under torchrun, on several ranks.

Under torchrun every rank runs this same command. The run directory must be the
same on every rank and across restarts, so its default name uses torchrun's run
id, not the clock; when torchrun restarts a failed group (`--max-restarts`) the
restarted ranks find the log and resume it (verified first) instead of starting.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from govtrain.audit.verify import LOG_FILE
from govtrain.pipeline import distributed
from govtrain.pipeline.config import RunConfig, load_config
from govtrain.pipeline.trainer import GovernedTrainer, committed_config, wants_cuda


def open_run(
    config: Path,
    run_dir: Path | None,
    resume_dir: Path | None,
    key_path: Path | None,
    overrides: Sequence[str] = (),
) -> GovernedTrainer:
    """The trainer `govtrain run` trains: started, or resumed (after verification)."""
    cfg = load_config(config, overrides) if resume_dir is None else committed_config(resume_dir)
    world = None
    if distributed.launched():
        tcfg = cfg.trainable().train
        world = distributed.join(tcfg.collective_timeout_s, wants_cuda(tcfg.device))
    if resume_dir is not None:
        return GovernedTrainer.resume(resume_dir, key_path=key_path, world=world)
    run_dir = run_dir or default_run_dir(cfg)
    if world is not None and distributed.restarted() and (run_dir / LOG_FILE).is_file():
        return GovernedTrainer.resume(run_dir, key_path=key_path, world=world, after_crash=True)
    trainer = GovernedTrainer(cfg, run_dir, key_path=key_path, world=world)
    trainer.start()
    return trainer


def default_run_dir(cfg: RunConfig) -> Path:
    """runs/NAME-UTCTIME, or runs/NAME-JOBID under torchrun (alike on every rank)."""
    job = distributed.job_id() if distributed.launched() else None
    return Path("runs") / f"{cfg.name}-{job or datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}"
