"""Governance and auditing for a Lightning `Trainer`: one callback.

    class Model(L.LightningModule):
        def training_step(self, batch, batch_idx):
            per_sample = ...                                  # [B], one loss per sample
            return {"loss": per_sample.mean(), "per_sample_loss": per_sample}

    log = start_audit(run_dir, model, cfg.governance)         # optional, rank 0 only
    callback = GovernanceCallback(cfg.governance, probe=probe_loss, audit=log)
    L.Trainer(max_steps=cfg.governance.total_steps, callbacks=[callback]).fit(model, data)

The callback drives the same `Governor` as `GovernedTrainer`, at the same points
of a step (Lightning 2.x, automatic optimization):

* build the Governor, freeze DORMANT groups -> `on_fit_start`: the strategy has
  set up the model (DDP-wrapped under a DDP strategy) and its one optimizer;
* `route(per_sample_loss)` -> right after `training_step` returns (the callback
  wraps the module's `training_step` for the fit): the routed backward that
  follows reads the slots it set, and the rate read there is the step's;
* `commit(loss, lr)` -> `on_train_batch_end`, after the optimizer step;
* `eval` record -> `on_validation_end` (the numeric callback metrics);
* close the log (run_end, final signed checkpoint) -> `on_fit_end`; a fit that
  raises leaves the log unsealed, as a crash would.

The loop policy is the `Driver`'s (pipeline/driver.py), as in GovernedTrainer and
the HF callback: a step whose per-sample losses are not all finite, on any rank,
is recorded as `nonfinite` and skipped on every rank (its gradients dropped before
the optimizer step, so nothing is updated); `max_nonfinite` (3) such steps in a
row stop the fit with an error, the log sealed. A batch of another size than
`router.batch_size` (a short last batch: use `drop_last=True`) is refused in one
line. The fit stops at Finish; a step with every group frozen still runs (its
loss tied to the driver's anchor) and the core observes it.

Resume. The Governor's state (core state, decision, signal windows, probe
readings) is the callback's `state_dict`, so Lightning saves it in every
checkpoint and `fit(ckpt_path=...)` restores it; the Governor re-applies the
freezing it implies to the restored model, and the optimizer keeps every
parameter in its groups throughout, so its restored state always matches (the
resume failures of `BaseFinetuning`, Lightning #6891 and #8502, came from
parameter groups that changed as layers unfroze).

Several processes (Lightning's DDP strategy): the model is wrapped before
`on_fit_start`, so the callback only freezes and unfreezes parameters of DDP's
construction-time set; `find_unused_parameters=True` is required (DDP fails
the first backward after a group freezes otherwise) and DDP still all-reduces
frozen parameters as zeros. The observations the core sees are rank 0's,
broadcast, so every rank takes the same decisions and freezes the same groups
(the ranks drifting apart under `BaseFinetuning`, Lightning #20340, cannot
happen: no rank decides alone). Each rank routes its own batch. Only rank 0 may
hold the audit log.

Refused at `on_fit_start`, each in one line (LightningGovernanceError): manual
optimization, several optimizers, gradient accumulation, 16-bit loss scaling,
`max_steps` unset or past `total_steps`, DDP without `find_unused_parameters`,
an audit log on a rank other than 0 or on a resumed fit (a Lightning checkpoint
does not carry the log's position), parameters frozen or missing from the
optimizer before governance starts; later, a `training_step` that does not
return `per_sample_loss` for a batch of `router.batch_size` samples.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from importlib.metadata import version
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import structlog
import torch
from lightning.pytorch.strategies import DDPStrategy
from torch import Tensor, nn

from govtrain.audit.log import AuditLog
from govtrain.governance.config import GovernanceConfig
from govtrain.governance.errors import GovtrainError
from govtrain.pipeline.config import parse_options
from govtrain.pipeline.distributed import current_world
from govtrain.pipeline.driver import Driven, Driver
from govtrain.pipeline.governor import ProbeLoss
from govtrain.pipeline.runlog import create_run_log

log = structlog.get_logger("govtrain.lightning")

PER_SAMPLE = "per_sample_loss"  # the key of `training_step`'s output the router reads


class LightningGovernanceError(GovtrainError):
    """The Lightning run cannot be governed as set up."""


def start_audit(run_dir: Path, model: nn.Module, cfg: GovernanceConfig, **options: Any) -> AuditLog:
    """Create `run_dir`'s audit log for a Lightning run (call it before `fit`); `options`
    are `create_run_log`'s (seed, data_files, signer, checkpoint_every, fsync)."""
    loop = {"trainer": "lightning.Trainer", "lightning": version("lightning")}
    return create_run_log(run_dir, model, cfg, loop, **options)


class GovernanceCallback(Driven, L.Callback):
    """Governs a LightningModule's parameters through a `Driver`; one instance per fit.

    `probe`: the loss of a fixed batch, `probe(module) -> scalar`, for wake signals
    and geometry measures (without it no group ever awakens). `options`: how it
    governs (`GovernOptions`: signal, measure, mode, probe_every, max_nonfinite, ...),
    as `govtrain run`'s `train:` section says it. After `on_fit_start`, `gov` is the
    Governor and `transitions` every transition of the fit in order.
    """

    def __init__(
        self,
        cfg: GovernanceConfig,
        *,
        probe: ProbeLoss | None = None,
        audit: AuditLog | None = None,
        seed: int = 0,
        **options: Any,
    ) -> None:
        self.cfg, self.probe, self.audit, self.seed = cfg, probe, audit, seed
        self.options = parse_options(options, "GovernanceCallback")
        self.driver: Driver | None = None
        self._restored: dict[str, Any] | None = None
        self._original: Callable[..., Any] | None = None
        self._wrapped = False
        self._step_input: tuple[float, float] | None = None  # this batch's (loss, lr)

    # -- checkpoints -----------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {} if self.gov is None else {"governor": self.gov.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "governor" not in state_dict:
            return
        if self.driver is None:  # most strategies restore callbacks before on_fit_start
            self._restored = state_dict["governor"]
            return
        if self.audit is not None:
            raise LightningGovernanceError(
                "an audit log on a resumed fit: a Lightning checkpoint does not carry the "
                "log's position; resume without audit= or start a new audited run"
            )
        self.driver.gov.load_state_dict(state_dict["governor"])

    # -- the fit ---------------------------------------------------------------------------

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.driver is not None:
            raise LightningGovernanceError("a GovernanceCallback governs one fit; make a new one")
        self._check_setup(trainer, pl_module)
        self.driver = Driver(
            pl_module,
            trainer.optimizers[0],
            self.cfg,
            self.options,
            probe=self.probe,
            audit=self.audit,
            seed=self.seed,
            world=current_world(),
        )
        if self._restored is not None:
            self.driver.gov.load_state_dict(self._restored)
            self._restored = None
        # the module's own attribute, if it had one; None: its class's method
        self._original = vars(pl_module).get("training_step")
        self._wrapped = True
        pl_module.training_step = self._routed_step(trainer, pl_module.training_step)
        log.info("governance_start", groups=self.driver.gov.names, step=self.driver.gov.step)

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        driver = self._driver()
        if self._step_input is None:
            raise LightningGovernanceError(
                f"batch {batch_idx} ended without a governed training_step"
            )
        loss, lr = self._step_input
        self._step_input = None
        if trainer.global_step != driver.gov.step + 1:
            raise LightningGovernanceError(
                f"governor at step {driver.gov.step} but Lightning finished step "
                f"{trainer.global_step}"
            )
        if driver.end(loss, lr).stop:
            trainer.should_stop = True

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        self._driver().before_update()  # a skipped step's gradients are dropped

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.driver is None or trainer.sanity_checking:
            return
        metrics = {
            k: float(v)
            for k, v in trainer.callback_metrics.items()
            if isinstance(v, Tensor | int | float) and torch.as_tensor(v).numel() == 1
        }
        loss = next((metrics[k] for k in ("val_loss", "eval_loss", "loss") if k in metrics), None)
        self.driver.evaluated(trainer.global_step, loss, metrics)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._unwrap(pl_module)
        if self.driver is not None:  # the module, used afterwards, is the user's again
            self.driver.close()

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self._unwrap(pl_module)
        if self.driver is not None and not self.driver.closed:
            self.driver.gov.release()  # the log stays unsealed: what a crash leaves

    # -- helpers ---------------------------------------------------------------------------

    def _routed_step(self, trainer: L.Trainer, step: Callable[..., Any]) -> Callable[..., Any]:
        """`training_step`, then the route of its per-sample losses (before the backward)."""

        def routed(*args: Any, **kwargs: Any) -> Any:
            out = step(*args, **kwargs)
            driver = self._driver()
            if not driver.gov.observing:
                return out
            per_sample = out.get(PER_SAMPLE) if isinstance(out, MutableMapping) else None
            if not isinstance(per_sample, Tensor):
                got = "nothing" if per_sample is None else type(per_sample).__name__
                raise LightningGovernanceError(
                    f"training_step must return {{'loss': ..., '{PER_SAMPLE}': [batch]}}, one "
                    f"loss per sample; got {got}"
                )
            lr = float(trainer.optimizers[0].param_groups[0]["lr"])
            self._step_input = (float(out["loss"].detach()), lr)
            out["loss"] = driver.steppable(out["loss"])  # the backward runs, even all frozen
            driver.forward(per_sample.detach())
            return out

        return routed

    def _unwrap(self, pl_module: L.LightningModule) -> None:
        if self._wrapped:
            if self._original is None:
                del pl_module.training_step
            else:
                pl_module.training_step = self._original
            self._wrapped, self._original = False, None

    def _check_setup(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        cfg, problems = self.cfg, []
        if not pl_module.automatic_optimization:
            problems.append("manual optimization is not supported (one route per optimizer step)")
        if len(trainer.optimizers) != 1:
            problems.append(f"{len(trainer.optimizers)} optimizers: exactly one is governed")
        if trainer.accumulate_grad_batches != 1:
            problems.append(
                f"accumulate_grad_batches is {trainer.accumulate_grad_batches}, must be 1"
            )
        if str(trainer.precision).startswith("16"):
            problems.append(
                "16-bit loss scaling is not supported (a skipped overflow step would feed "
                "infinite norms to the core): use bf16 or 32"
            )
        if trainer.max_steps < 0 or trainer.max_steps > cfg.total_steps:
            problems.append(
                f"max_steps is {trainer.max_steps}: set it to total_steps ({cfg.total_steps}) "
                "or fewer (the hierarchy's deadlines are fractions of total_steps)"
            )
        world = current_world()
        strategy = trainer.strategy
        if isinstance(strategy, DDPStrategy) and not strategy._ddp_kwargs.get(
            "find_unused_parameters", False
        ):
            problems.append(
                "DDP without find_unused_parameters=True would fail the first backward after "
                "a group freezes: use DDPStrategy(find_unused_parameters=True)"
            )
        if self.audit is not None and self._restored is not None:
            problems.append(
                "an audit log on a resumed fit: a Lightning checkpoint does not carry the log's "
                "position; resume without audit= or start a new audited run"
            )
        if trainer.optimizers:
            problems += Driver.refusals(
                cfg,
                pl_module,
                trainer.optimizers[0],
                loop="the Lightning callback",
                audit=self.audit,
                world=world,
            )
        if problems:
            raise LightningGovernanceError(
                "cannot govern this Lightning fit: " + "; ".join(problems)
            )

    def _driver(self) -> Driver:
        if self.driver is None:
            raise LightningGovernanceError("the GovernanceCallback has not seen on_fit_start")
        return self.driver
