"""Governance for a training loop you write with Hugging Face Accelerate: `GovernedLoop`.

    accelerator = Accelerator(kwargs_handlers=[DistributedDataParallelKwargs(
        find_unused_parameters=True)])                  # frozen groups send no gradient
    model, optimizer, data = accelerator.prepare(model, optimizer, data)
    loop = GovernedLoop(accelerator, model, optimizer, cfg.governance, probe=probe_loss,
                        audit=log, signal="drift")       # GovernOptions as keywords
    for batch in data:
        outcome = loop.step(per_sample_loss(model, batch))   # [B]: one loss per sample
        if outcome.stop:                                  # Finish: nothing left to train
            break
    loop.close()                                          # run_end: the log sealed

The loop policy is the `Driver`'s (pipeline/driver.py), as for `govtrain run` and the
HF and Lightning callbacks; `step` only puts its calls at Accelerate's points: route
after the forward, `accelerator.backward` (clipping with `accelerator.clip_grad_norm_`
when asked), the update unless the step is skipped, then govern. Under several
processes every rank takes rank 0's observations, so every rank decides alike.
"""

from __future__ import annotations

from typing import Any

from accelerate import Accelerator
from torch import Tensor, nn
from torch.optim import Optimizer

from govtrain.governance.config import GovernanceConfig
from govtrain.governance.errors import GovtrainError
from govtrain.pipeline.config import parse_options
from govtrain.pipeline.distributed import current_world
from govtrain.pipeline.driver import Driver, Outcome, RunLog
from govtrain.pipeline.governor import ProbeLoss


class GovernedLoop:
    """One governed run of an Accelerate loop: `step` per batch, then `close`."""

    def __init__(
        self,
        accelerator: Accelerator,
        model: nn.Module,
        optimizer: Optimizer,
        cfg: GovernanceConfig,
        *,
        probe: ProbeLoss | None = None,
        audit: RunLog | None = None,
        seed: int = 0,
        **options: Any,
    ) -> None:
        inner = accelerator.unwrap_model(model)
        torch_optimizer = getattr(optimizer, "optimizer", optimizer)  # AcceleratedOptimizer's
        world = current_world()
        problems = Driver.refusals(
            cfg, inner, torch_optimizer, loop="the Accelerate loop", audit=audit, world=world
        )
        if accelerator.gradient_accumulation_steps != 1:
            problems.append(
                f"gradient_accumulation_steps is {accelerator.gradient_accumulation_steps}, "
                "must be 1 (one route per optimizer step)"
            )
        if problems:
            raise GovtrainError("cannot govern this Accelerate loop: " + "; ".join(problems))
        self.accelerator, self.optimizer = accelerator, optimizer
        self.driver = Driver(
            inner,
            torch_optimizer,
            cfg,
            parse_options(options, "GovernedLoop"),
            probe=probe,
            audit=audit,
            seed=seed,
            world=world,
        )

    def step(self, per_sample: Tensor, *, lr: float | None = None, clip: float | None = None):
        """One governed step from this batch's per-sample losses `[B]` (still attached to
        the forward): route, backward, clip (`clip`: max norm), update, govern. `lr`: the
        rate the step used (default: the optimizer's first group's). Returns the Outcome."""
        self.driver.forward(per_sample)
        loss = per_sample.mean()
        self.accelerator.backward(self.driver.steppable(loss))
        norm = None
        if clip is not None:
            params = self.driver.gov.all_params
            total = self.accelerator.clip_grad_norm_(params, clip)
            norm = None if total is None else float(total)  # None: DeepSpeed clips itself
        if self.driver.before_update(norm):
            self.optimizer.step()
        rate = lr if lr is not None else float(self.optimizer.param_groups[0]["lr"])
        outcome: Outcome = self.driver.end(float(loss.detach()), rate)
        self.optimizer.zero_grad(set_to_none=True)
        return outcome

    def evaluated(self, step: int, loss: float, metrics: dict[str, float] | None = None):
        self.driver.evaluated(step, loss, metrics)

    def close(self) -> None:
        """Hand the model back and seal the log (run_end)."""
        self.driver.close()
