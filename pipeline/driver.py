"""The loop policy every governed loop shares, in one place: `Driver`.

`GovernedTrainer`, the HF callback and the Lightning callback (or any other loop)
map their hooks onto a handful of calls and decide nothing themselves:

    driver = Driver(model, optimizer, cfg.governance, options, probe=probe, audit=log)
    for batch in batches:
        per_sample = per_sample_loss(model, batch)       # [B]
        driver.forward(per_sample)                       # route, or skip a non-finite step
        per_sample.mean().backward()                     # the routed backward
        if driver.before_update(grad_norm):              # False: skipped, gradients dropped
            optimizer.step()
        outcome = driver.end(loss, lr)                   # commit, or record the skip
        if outcome.stop: break                           # Finish, or nothing left to step
    driver.close()                                       # run_end, the log sealed

What the driver owns, so that every loop does it alike:

* route or skip: a step whose per-sample losses (or gradient norm) are not all
  finite, on any rank, routes every sample, updates nothing and is recorded as
  `nonfinite`; `max_nonfinite` of them in a row stop the run: the loop's last
  checkpoint is taken (`on_stop`), the log sealed with the reason, and
  `NonFiniteStreak` raised;
* a batch whose size is not `router.batch_size` (a short last batch) is refused in
  one line (quotas are samples of a full batch), the log sealed first with status
  "stopped" and that line, so the steps before it stay a verifiable run;
* when to stop: at Finish (every group converged and stayed so), and only then.
  A step with every group frozen still runs (the core observes it: a level may
  activate, a probe may wake a group, the quiet count grows towards Finish); for a
  loop whose backward needs a loss that requires grad (the HF and Lightning
  trainers), `steppable` ties the loss to an anchor of the driver's own whose
  gradient is zero, so the step runs and updates nothing;
* the `eval`, `checkpoint` and `run_end` records, the transitions' log lines,
  and the setup refusals every loop shares (`refusals`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
import torch
from torch import Tensor, nn

from govtrain.governance import completion
from govtrain.governance.config import GovernanceConfig
from govtrain.governance.errors import GovtrainError
from govtrain.governance.state import Transition
from govtrain.pipeline.config import GovernOptions
from govtrain.pipeline.distributed import Shard, World
from govtrain.pipeline.governor import AuditSink, Governor, ProbeLoss, untrainable
from govtrain.pipeline.scorer import refused

log = structlog.get_logger("govtrain")

LOGGED = ("Converge", "Awaken", "ActivateLevel", "Finish")
FINISHED = "finished: every group converged and stayed so"


class NonFiniteStreak(GovtrainError):
    """`max_nonfinite` steps in a row were not finite: the run stopped, its log sealed."""


class BatchSizeError(GovtrainError):
    """A batch of another size than `router.batch_size` reached the router."""


class RunLog(AuditSink, Protocol):
    """Where a run's records go: an `AuditLog`, or a rank's sink that writes nothing."""

    def close(self, body: dict[str, Any] | None = None) -> Any: ...


@dataclass(frozen=True)
class Outcome:
    """What a step's end decided: its transitions, why the loop must stop (or None), and
    whether the step was skipped (not finite)."""

    transitions: tuple[Transition, ...]
    stop: str | None = None
    skipped: bool = False


class Driver:
    """One governed run's loop policy over a `Governor` (`gov`)."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        cfg: GovernanceConfig,
        options: GovernOptions | None = None,
        *,
        probe: ProbeLoss | None = None,
        audit: RunLog | None = None,
        seed: int = 0,
        world: World | None = None,
        synced: bool = False,
        on_stop: Callable[[], None] | None = None,
    ) -> None:
        self.cfg, self.options = cfg, options if options is not None else GovernOptions()
        self.audit, self.on_stop = audit, on_stop
        self.gov = Governor(
            model,
            optimizer,
            cfg,
            self.options,
            probe=probe,
            audit=audit,
            seed=seed,
            world=world,
            synced=synced,
        )
        self.transitions: list[Transition] = []  # the run's, in order
        self.routed: dict[str, tuple[int, ...] | None] = {}  # this step's rows per group
        self._skip: dict[str, float] | None = None  # why this step is skipped
        self._streak = 0  # non-finite steps in a row
        self._anchor = nn.Parameter(torch.zeros(()))  # see `steppable`
        self.closed = False

    def attach(self, audit: RunLog | None) -> None:
        """Give the run its log once it exists (a loop that creates it after the driver)."""
        self.audit = self.gov.audit = audit

    @property
    def skipping(self) -> bool:
        """Whether this step is being skipped (a loss or gradient not finite)."""
        return self._skip is not None

    @staticmethod
    def refusals(
        cfg: GovernanceConfig,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        loop: str,
        audit: AuditSink | None,
        world: World | None,
    ) -> list[str]:
        """Why `loop` (someone else's) cannot govern `model` with `optimizer`, in the
        terms every such loop shares; empty when it can."""
        problems = untrainable(model, optimizer, cfg.groups)
        if audit is not None and world is not None and not world.leader:
            problems.append(f"an audit log on rank {world.rank}: only rank 0 writes the log")
        return problems + refused(cfg, loop)

    # -- a step ----------------------------------------------------------------------

    def forward(self, per_sample: Tensor, shard: Shard | None = None) -> bool:
        """After the training forward, before its backward: route this step's samples
        (`shard`: the global batch's losses, under torchrun). When a loss is not finite
        on any rank, every sample is let through and the step will be skipped; False
        then, True when routed."""
        everyone = per_sample if shard is None else shard.losses
        batch = self.cfg.router.batch_size
        if everyone.shape != (batch,):
            why = (
                f"a batch of {tuple(everyone.shape)} per-sample losses reached the router, "
                f"router.batch_size is {batch}: quotas are samples of a full batch (drop the "
                "short last batch: dataloader_drop_last=True / drop_last=True)"
            )
            self.close("stopped", reason=why)  # the steps before it stay a sealed run
            raise BatchSizeError(why)
        # the gathered global batch is alike on every rank (no collective needed to agree);
        # a rank's own batch is not
        if shard is not None:
            bad = not bool(torch.isfinite(everyone.detach()).all())
        else:
            bad = self.gov.nonfinite(everyone)
        if bad:
            self.gov.plan.route_all()
            self._skip = {"loss": float(everyone.detach().float().mean())}
            self.routed = {}
            return False
        self._skip = None
        self.routed = self.gov.route(per_sample, shard)
        return True

    def steppable(self, loss: Tensor) -> Tensor:
        """`loss`, which a backward can run on even with every group frozen: then it is
        tied to the driver's anchor (gradient zero, in no optimizer), so the loop's step
        runs, updates nothing, and its end still reaches the core."""
        if loss.requires_grad:
            return loss
        return loss + 0.0 * self._anchor.to(loss.device)

    def before_update(self, grad_norm: float | None = None) -> bool:
        """Right before the optimizer step: whether it may update. A step already marked
        skipped, or whose (clipped-to) gradient norm is not finite, has its gradients
        dropped, so an optimizer step leaves every parameter as it was."""
        if grad_norm is not None and not math.isfinite(grad_norm):
            self._skip = {**(self._skip or {}), "grad_norm": grad_norm}
        if self._skip is not None:
            self.gov.discard_gradients()
        return self._skip is None

    def end(self, loss: float, lr: float, **measured: Any) -> Outcome:
        """After the optimizer step: commit the step to the core (`measured`: what
        `Governor.commit` records besides), or record it as skipped."""
        if self._skip is not None:
            return self._skipped(loss)
        self._streak = 0
        result = self.gov.commit(loss=loss, lr=lr, **measured)
        for t in result.transitions:
            self.transitions.append(t)
            if t.action in LOGGED:
                log.info(t.action, step=self.gov.step - 1, group=t.group, to=t.after)
        return Outcome(result.transitions, FINISHED if self.finished else None)

    def _skipped(self, loss: float) -> Outcome:
        assert self._skip is not None
        if self.audit is not None:
            self.audit.append("nonfinite", {"step": self.gov.step, "loss": loss, **self._skip})
        self._skip = None
        self.gov.skip()
        self._streak += 1
        if self._streak < self.options.max_nonfinite:
            return Outcome((), skipped=True)
        why = (
            f"{self._streak} non-finite losses in a row (max_nonfinite) by step "
            f"{self.gov.step}: stopped, log sealed"
        )
        if self.on_stop is not None:
            self.on_stop()
        self.close("stopped", reason=why)
        raise NonFiniteStreak(why + ("" if self.on_stop is None else ", last checkpoint kept"))

    @property
    def finished(self) -> bool:
        """The core took Finish: nothing is left to train (governance/completion.py)."""
        return completion.finished(self.gov.state, self.cfg)

    # -- records ---------------------------------------------------------------------

    def evaluated(self, step: int, loss: float | None, metrics: dict[str, float] | None = None):
        """An evaluation's record: its loss and, from a loop that reports them, metrics."""
        if self.audit is None or self.closed:
            return  # an evaluation after the run ended is not part of the sealed log
        body: dict[str, Any] = {"step": step}
        if loss is not None:
            body["loss"] = loss
        if metrics:
            body["metrics"] = metrics
        self.audit.append("eval", body)

    def saved(self, step: int, path: str, sha256: str) -> None:
        """A model checkpoint's record: the file (relative to the run when inside it)."""
        if self.audit is not None and not self.closed:
            self.audit.append("checkpoint", {"step": step, "path": path, "sha256": sha256})

    def close(self, status: str = "ok", *, release: bool = True, **facts: Any) -> None:
        """End governance: hand the model back (`release`) and seal the log with a
        run_end record saying how the run ended (and where a Finish ended it)."""
        if self.closed:
            return
        self.closed = True
        if release:
            self.gov.release()
        if self.audit is None:
            return
        body = {"status": status, "steps": self.gov.step, **facts}
        if self.finished:
            saved = self.cfg.total_steps - self.gov.step
            body |= {"finished_at": self.gov.step, "steps_saved": saved}
            log.info("finish", step=self.gov.step, steps_saved=body["steps_saved"])
        self.audit.close(body)


class Driven:
    """What an integration built on a `Driver` shows its user once governance started:
    the Governor (`gov`) and every transition of the run in order (`transitions`)."""

    driver: Driver | None = None

    @property
    def gov(self) -> Governor | None:
        return None if self.driver is None else self.driver.gov

    @property
    def transitions(self) -> list[Transition]:
        return [] if self.driver is None else self.driver.transitions
