"""The governed step for any PyTorch loop: measure, decide (pure core), apply, audit.

    gov = Governor(model, optimizer, cfg.governance, GovernOptions(), probe=probe_loss, audit=log)
    for step, batch in enumerate(batches):
        per_sample = per_sample_loss(model, batch)     # [B], one loss per sample
        gov.route(per_sample)                          # who reaches which group's weights
        per_sample.mean().backward()                   # routed backward: skipped work is skipped
        optimizer.step()
        gov.commit(loss=per_sample.mean().item(), lr=lr)   # govern; takes effect next step
        optimizer.zero_grad(set_to_none=True)

Every decision comes from `governance.step.govern`, a pure function of the
observations its `Observer` measures (pipeline/observe.py: by default the
registered signals the options name, pipeline/signals.py); this module routes,
commits each step to the core, applies the decision and records it:

* freezing (DORMANT, CONVERGED): `requires_grad=False` and `.grad=None`, so
  autograd skips the work and no optimiser touches the weights (no weight
  decay, no momentum drift). Parameters never leave the optimiser's groups,
  which keeps `state_dict()` and resume intact.
* awakening: parameters train again; optimiser state is reset (default:
  stale Adam moments from before convergence would be applied to a changed
  landscape) or kept, per `awaken_optimizer_state`.
* the decision's quota: the number of samples, of the batch, whose gradient
  reaches the group's weights on the next step, chosen by the router. With
  `router.scorer: learned` each group is routed by its own learned scores
  (pipeline/scorer.py), and the loop calls `gov.learn_router(lambda:
  per_sample_loss(model, batch))` right after `optimizer.step()`: on a learn
  step that forward's loss drops train the scorers (commit refuses a learn step
  whose backward ran without it).

With `enforce=False` (shadow mode) everything is measured, decided and audited
but nothing is applied: every group trains on every sample.

Across ranks (`world`, pipeline/distributed.py) the observations the core sees
are rank 0's, broadcast, so every rank decides alike. GovernedTrainer also
passes `route` the gathered losses of the global batch and, with `synced=True`,
takes the gradient norms from the averaged gradients (`record_gradients`)
rather than from the backward's hooks, which see each rank's local gradient.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from govtrain.governance import growth, routing, taxonomy
from govtrain.governance.config import GovernanceConfig, GroupConfig
from govtrain.governance.errors import GovtrainError
from govtrain.governance.record import StepRecord, decision_from_dict, decision_to_dict
from govtrain.governance.state import (
    GovernanceState,
    GroupObservation,
    Phase,
    state_from_dict,
    state_to_dict,
)
from govtrain.governance.step import Decision, StepResult, decide, govern, initial_state
from govtrain.pipeline import geometry
from govtrain.pipeline.config import GovernOptions
from govtrain.pipeline.distributed import Shard, World
from govtrain.pipeline.growth import Blocks
from govtrain.pipeline.observe import (
    Measurements,
    Observer,
    ProbeLoss,
    SignalObserver,
    from_format_1,
)
from govtrain.pipeline.routed import RoutingPlan, make_routable
from govtrain.pipeline.scorer import LearnedScorer, nominal_k

# 2: the observer's state under "observer"; 1 (no "format" key): observe.from_format_1
STATE_FORMAT = 2


class AuditSink(Protocol):
    def append(self, kind: str, body: dict[str, Any]) -> Any: ...


class Governor:
    """Owns the governance state of one model and applies its decisions."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        cfg: GovernanceConfig,
        options: GovernOptions | None = None,
        *,
        probe: ProbeLoss | None = None,
        audit: AuditSink | None = None,
        seed: int = 0,
        world: World | None = None,
        synced: bool = False,
        observer: Observer | None = None,
    ) -> None:
        """`observer`: what measures the groups (default: the registered signals the
        options name, pipeline/observe.py); `synced`: gradient norms come from
        `record_gradients`, after the gradients are averaged across ranks."""
        _refuse(model, cfg, world)
        options = options if options is not None else GovernOptions()
        self.model, self.optimizer, self.cfg = model, optimizer, cfg
        self.awaken_policy, self.audit, self.seed = options.awaken_optimizer_state, audit, seed
        self.enforce, self.world = options.enforce, world
        # the model's parameters as built: FSDP2 swaps unsharded copies in and out of the
        # modules around each forward, so `model.parameters()` is not stable mid-step
        self.all_params = list(model.parameters())
        trainable = [n for n, p in model.named_parameters() if p.requires_grad]
        group_of = taxonomy.assign(trainable, cfg.groups)
        self.names = [g.name for g in cfg.groups]
        self.params: dict[str, list[nn.Parameter]] = {g: [] for g in self.names}
        for name, p in model.named_parameters():
            if name in group_of:
                self.params[group_of[name]].append(p)
        # lazy: a module whose rows mix (BatchNorm) is refused only if its group is routed
        self.plan: RoutingPlan = make_routable(model, group_of, lazy=True)
        self.tops = geometry.top_modules(model, group_of)
        # hierarchy.dormant 'bypass': the residual blocks a DORMANT group owns are not run
        self.blocks = Blocks(model, group_of, cfg) if cfg.hierarchy.dormant == "bypass" else None
        self._grown: dict[str, Any] | None = None  # this step's growth, for its record
        if observer is None:
            observer = SignalObserver(
                model, self.params, self.all_params, self.plan, self.tops, cfg.governor, options,
                probe=probe, world=world, synced=synced,
            )  # fmt: skip
        self.observer = observer
        # router.scorer: learned (pipeline/scorer.py): each group's own scores, and what a
        # learn step keeps from route() to learn_router(): features, losses before, k
        self.scorer = (
            LearnedScorer(model, self.tops, self.names, cfg.router.learned, seed)
            if cfg.router.scorer == "learned"
            else None
        )
        self._pending: tuple[dict[str, Tensor], Tensor, dict[str, int]] | None = None
        self._scored_by: str | None = None
        self.state: GovernanceState = initial_state(cfg)
        self.decision: Decision = decide(self.state, [1.0] * len(self.names), cfg)
        self.step = 0
        self.routed: dict[str, dict[str, Any]] = {}
        self._t0 = time.perf_counter()
        self._apply_freezing()

    # -- the three calls of a step -------------------------------------------------

    def route(
        self, per_sample_loss: Tensor, shard: Shard | None = None
    ) -> dict[str, tuple[int, ...] | None]:
        """Choose, per group, the samples whose gradient reaches its weights this step.

        With a `shard` the quotas apply to the global batch (`shard.losses`), whose
        routed rows this rank then takes its own share of; the returned indices are global.
        """
        self._t0 = time.perf_counter()
        everyone = per_sample_loss if shard is None else shard.losses
        batch, local = everyone.shape[0], per_sample_loss.shape[0]
        quotas = [
            routing.applied_quota(self.state, i, q, batch, self.enforce)
            for i, q in enumerate(self.decision.quotas)
        ]
        # scores are read off the device only when some group is really routed (the learned
        # scorer's features every step: a learn step may come while nothing is routed)
        features = self._features(everyone, quotas)
        # the learned scorer's parameters that score this step (before its learning)
        self._scored_by = None if self.scorer is None else self.scorer.digest()
        routes = any(0 < k < batch for k in quotas)
        scores = self._scores(everyone, features) if routes else {}
        chosen: dict[str, tuple[int, ...] | None] = {}
        self.routed = {}
        for i, (name, k) in enumerate(zip(self.names, quotas, strict=True)):
            index = None if k >= batch else () if k == 0 else routing.route(scores[name], k)
            chosen[name] = index
            # a frozen group's weights take no gradient: nothing to route
            frozen = self.enforce and self.state.frozen(i)
            mine = index if shard is None or index is None else shard.local_rows(index)
            rows = (
                None
                if mine is None or frozen
                else torch.tensor(mine, dtype=torch.long, device=per_sample_loss.device)
            )
            self.plan.set(name, rows, local, None if index is None else batch / max(1, k))
            self.routed[name] = {"quota": k, "digest": _digest(index, batch)}
        return chosen

    def commit(
        self,
        loss: float,
        lr: float,
        grad_bytes: int | None = None,
        flops: tuple[int, int] | None = None,
        samples: dict[str, list] | None = None,
    ) -> StepResult:
        """After the optimiser step: observe, run the pure core, apply, audit.

        `grad_bytes`: the gradient bytes all-reduced this step, in a distributed run;
        `flops`: the step's (backward, dense backward) FLOPs, where they are counted;
        `samples`: the batch's rows and per-sample losses, with data tiers.
        """
        if self._pending is not None and self.trainable():  # a backward ran, nothing learnt
            raise GovtrainError(
                f"router.scorer 'learned': step {self.step} is a learn step, but "
                "Governor.learn_router was not called after optimizer.step()"
            )
        self._pending = None
        groups = zip(self.names, self.state.groups, strict=True)
        phases: dict[str, Phase] = {n: g.phase for n, g in groups}
        observations = self.observer.observe(self.step, phases)
        result = govern(self.state, observations, self.cfg)
        self._grow(self.state, result.state)
        self.state, self.decision = result.state, result.decision
        self._apply(result)
        if self.audit is not None:
            record = self._record(loss, lr, observations, result, grad_bytes, flops, samples)
            self.audit.append("step", record)
        self._grown = None
        self.step += 1
        return result

    def learn_router(self, losses_after: Callable[[], Tensor]) -> None:
        """With `router.scorer: learned`, right after `optimizer.step()` on a learn step:
        `losses_after()` is the same batch's per-sample losses after the update (a
        forward; run here without gradients and with the RNG forked, so dropout draws
        nothing from the model's stream); each sample's loss drop trains the scorers
        (pipeline/scorer.py). A no-op on other steps and for the other scorers."""
        if self._pending is None:
            return
        assert self.scorer is not None
        features, before, ks = self._pending
        device = self._device()
        forked = [device] if device.type == "cuda" else []
        with torch.no_grad(), torch.random.fork_rng(devices=forked):
            after = losses_after().detach().float().cpu()
        self.scorer.learn(features, before - after, ks)
        self._pending = None

    def skip(self) -> None:
        """A step whose update was skipped (non-finite loss): nothing observed, clock still."""
        self.step += 1
        self._pending = None
        self.observer.skip()

    # -- observing (pipeline/observe.py) ---------------------------------------------

    @property
    def observing(self) -> bool:
        """Whether forwards and backwards now are the training step's: False while a
        probe or a FLOP count (pipeline/flops.py) runs its own."""
        return self.observer.observing

    @observing.setter
    def observing(self, value: bool) -> None:
        self.observer.observing = value

    @property
    def measured(self) -> Measurements | None:
        """The last committed step's probe measurements (None when it probed none)."""
        return self.observer.measured

    def record_gradients(self) -> None:
        """Take each group's gradients now (after they were averaged across ranks)
        instead of from the backward's hooks, which see each rank's local gradient."""
        self.observer.record_gradients()

    def nonfinite(self, per_sample_loss: Tensor) -> bool:
        """Whether this step's losses are not all finite, on any rank: every rank must
        skip the step alike, or their collectives would pair up wrongly."""
        bad = (~torch.isfinite(per_sample_loss.detach())).any().to(torch.float32).reshape(1)
        if self.world is not None:
            torch.distributed.all_reduce(bad, op=torch.distributed.ReduceOp.MAX)
        return bool(bad.item())

    def discard_gradients(self) -> None:
        """Drop the gradients of the step about to be applied (its loss was not finite):
        an optimizer leaves a parameter without a gradient untouched."""
        for p in self.all_params:
            p.grad = None

    def release(self) -> None:
        """Hand the model back when governance ends (the callbacks' fit or train ends):
        its gradient hooks removed, every governed parameter trainable again, every
        routed module computing the whole batch's gradient."""
        self.observer.close()
        if self.scorer is not None:
            self.scorer.close()
        self.plan.route_all()
        for name in self.names:
            self.plan.set_native(name, True)
        if self.blocks is not None:
            self.blocks.set_computed((True,) * len(self.names))
        for ps in self.params.values():
            for p in ps:
                p.requires_grad_(True)

    def trainable(self) -> list[nn.Parameter]:
        """The parameters the next backward gives gradients to, in model order."""
        return [p for p in self.all_params if p.requires_grad]

    def _features(self, losses: Tensor, quotas: list[int]) -> dict[str, Tensor] | None:
        """The learned scorer's features of this batch (None for the other scorers); on a
        learn step they are kept, with the losses and each group's k, for learn_router."""
        if self.scorer is None:
            return None
        features = self.scorer.features(losses)
        if self.step % self.cfg.router.learned.learn_every == 0:
            batch, d = losses.shape[0], self.decision
            ks = {
                n: nominal_k((q, d.quotas[i], d.allocations[i]), batch)
                for i, (n, q) in enumerate(zip(self.names, quotas, strict=True))
            }
            self._pending = (features, losses.detach().float().cpu(), ks)
        return features

    def _scores(
        self, per_sample_loss: Tensor, features: dict[str, Tensor] | None
    ) -> dict[str, list[float]]:
        """Each group's routing scores: its own learned ones, or one vector for all."""
        if self.scorer is not None and features is not None:
            return self.scorer.scores(features)
        if self.cfg.router.scorer == "random":
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.step)
            shared = torch.rand(per_sample_loss.shape[0], generator=g).tolist()
        else:
            shared = per_sample_loss.detach().float().tolist()
        return dict.fromkeys(self.names, shared)

    def _device(self) -> torch.device:
        return self.all_params[0].device

    # -- applying --------------------------------------------------------------------

    def _grow(self, before: GovernanceState, after: GovernanceState) -> None:
        """A level activated while bypassed: initialise its blocks by `hierarchy.grow`
        (governance/growth.py) before they first run."""
        if self.blocks is not None and self.enforce and growth.grows(before, after, self.cfg):
            plan = growth.plan(after.active_level, self.blocks.owners, self.cfg)
            self._grown = self.blocks.grow(plan)

    def _apply(self, result: StepResult) -> None:
        """The observer learns the transitions; an awakened group's optimizer state is
        dropped (stale moments from before convergence would be applied to a changed
        landscape) unless kept by policy; requires_grad follows the new state."""
        self.observer.transition(result.transitions)
        if self.awaken_policy == "reset" and self.enforce:
            for t in result.transitions:
                if t.action == "Awaken" and t.group is not None:
                    for p in self.params[t.group]:
                        self.optimizer.state.pop(p, None)
        self._apply_freezing()

    def _apply_freezing(self) -> None:
        """requires_grad follows the state; a group the next step routes fully runs natively;
        a bypassed DORMANT group's blocks do not run."""
        if self.blocks is not None:
            everything = (True,) * len(self.names)
            self.blocks.set_computed(
                growth.computed(self.state, self.cfg) if self.enforce else everything
            )
        batch = self.cfg.router.batch_size
        for i, name in enumerate(self.names):
            k = routing.applied_quota(self.state, i, self.decision.quotas[i], batch, self.enforce)
            frozen = self.enforce and self.state.frozen(i)
            self.plan.set_native(name, frozen or k >= batch)
        for name, g in zip(self.names, self.state.groups, strict=True):
            frozen = g.phase.frozen and self.enforce
            for p in self.params[name]:
                p.requires_grad_(not frozen)
                if frozen:
                    p.grad = None

    # -- recording -------------------------------------------------------------------

    def _record(
        self,
        loss: float,
        lr: float,
        obs: list[GroupObservation],
        result: StepResult,
        grad_bytes: int | None,
        flops: tuple[int, int] | None,
        samples: dict[str, list] | None = None,
    ) -> dict[str, Any]:
        return StepRecord(
            step=self.step,
            loss=loss,
            lr=lr,
            step_time_ms=round((time.perf_counter() - self._t0) * 1000, 3),
            routed=self.routed,
            observations=tuple(obs),
            transitions=result.transitions,
            state=result.state,
            decision=result.decision,
            grad_bytes=grad_bytes,
            backward_flops=None if flops is None else flops[0],
            dense_backward_flops=None if flops is None else flops[1],
            measurements=self.observer.measured,
            samples=samples,
            scorer=self._scored_by,
            growth=self._grown,
            bypassed=None if self.blocks is None else sorted(self.blocks.bypassed()),
            blocks=self.blocks.owned() if self.blocks is not None and self.step == 0 else None,
        ).to_dict(self.names)

    def state_dict(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "step": self.step,
            "state": state_to_dict(self.state, self.names),
            "decision": decision_to_dict(self.decision, self.names),
            "observer": self.observer.state_dict(),
            **({} if self.scorer is None else {"scorer": self.scorer.state_dict()}),
        }

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        """Restore the core state, the decision the next step uses and the observer's
        state, from this format or format 1 (read by its number)."""
        version = sd.get("format", 1)
        if version not in (1, STATE_FORMAT):
            raise GovtrainError(
                f"governor state format {version!r}: this govtrain reads 1-{STATE_FORMAT}"
            )
        self.step = sd["step"]
        self.state = state_from_dict(sd["state"], self.names)
        self.decision = decision_from_dict(sd["decision"], self.names)
        observed = sd["observer"] if version == STATE_FORMAT else from_format_1(sd)
        self.observer.load_state_dict(observed)
        if self.scorer is not None:
            self.scorer.load_state_dict(sd["scorer"])
        self._apply_freezing()


def untrainable(
    model: nn.Module, optimizer: torch.optim.Optimizer, groups: tuple[GroupConfig, ...]
) -> list[str]:
    """Why `model` cannot be governed by someone else's loop with `optimizer`: a parameter
    a group claims but frozen before governance starts, or a trainable one missing from
    the optimizer (either would never be updated once its group activates). A frozen
    parameter no group claims stays outside governance (a PEFT model's base weights).
    Empty when it can."""
    problems = []
    frozen = [
        n
        for n, p in model.named_parameters()
        if not p.requires_grad and taxonomy.group_of(n, groups) is not None
    ]
    if frozen:
        problems.append(
            f"{len(frozen)} parameter(s) frozen before governance starts (e.g. {frozen[0]}): "
            f"leave every parameter a group claims trainable and let the groups' levels "
            f"freeze them"
        )
    in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
    missing = [
        n for n, p in model.named_parameters() if p.requires_grad and id(p) not in in_optimizer
    ]
    if missing:
        problems.append(
            f"{len(missing)} parameter(s) missing from the optimizer (e.g. {missing[0]}): "
            f"they would never be updated once their group activates"
        )
    return problems


def _refuse(model: nn.Module, cfg: GovernanceConfig, world: World | None) -> None:
    """One clear error for what the Governor cannot govern."""
    if _compiled(model):
        raise GovtrainError(
            "a torch.compile'd model cannot be governed: the routed modules read their "
            "routing slots and requires_grad eagerly, and a compiled graph would keep "
            "stale ones; pass the eager model"
        )
    if cfg.router.scorer == "learned" and world is not None:
        raise GovtrainError(
            "router.scorer 'learned' is not supported under torchrun (each rank sees its "
            "own share of the features and benefits): use 'loss' or 'random'"
        )


def _compiled(model: nn.Module) -> bool:
    """torch.compile(model) wraps it (OptimizedModule); model.compile() compiles in place."""
    return hasattr(model, "_orig_mod") or getattr(model, "_compiled_call_impl", None) is not None


def _digest(index: tuple[int, ...] | None, batch: int) -> str:
    """SHA-256 of the routed indices (all of them when the whole batch is routed)."""
    rows = range(batch) if index is None else index
    return hashlib.sha256(",".join(map(str, rows)).encode()).hexdigest()
