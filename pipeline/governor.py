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
observations measured here; this module only measures and applies:

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
from torch.distributed.tensor import DTensor

from govtrain.governance import routing, taxonomy
from govtrain.governance.config import GovernanceConfig
from govtrain.governance.errors import GovtrainError
from govtrain.governance.readings import SPECTRAL, Guard, Readings
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
from govtrain.pipeline.distributed import Shard, World, broadcast_floats, group_norms
from govtrain.pipeline.routed import RoutingPlan, make_routable
from govtrain.pipeline.scorer import LearnedScorer, nominal_k
from govtrain.pipeline.signals import SignalMeter, drift_reading


class AuditSink(Protocol):
    def append(self, kind: str, body: dict[str, Any]) -> Any: ...


ProbeLoss = Callable[[nn.Module], Tensor]


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
    ) -> None:
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
        options = options if options is not None else GovernOptions()
        signal, guard = options.signal, options.geometry_guard
        self.model, self.optimizer, self.cfg = model, optimizer, cfg
        self.probe, self.probe_every = probe, options.probe_every
        self.awaken_policy, self.audit, self.seed = options.awaken_optimizer_state, audit, seed
        self.enforce, self.world, self.synced = options.enforce, world, synced
        # FSDP2: parameters are DTensor shards (pipeline/distributed.py)
        # the model's parameters as built: FSDP2 swaps unsharded copies in and out of the
        # modules around each forward, so `model.parameters()` is not stable mid-step
        self.all_params = list(model.parameters())
        self.sharded = any(isinstance(p, DTensor) for p in self.all_params)
        trainable = [n for n, p in model.named_parameters() if p.requires_grad]
        group_of = taxonomy.assign(trainable, cfg.groups)
        self.names = [g.name for g in cfg.groups]
        self.params: dict[str, list[nn.Parameter]] = {g: [] for g in self.names}
        for name, p in model.named_parameters():
            if name in group_of:
                self.params[group_of[name]].append(p)
        self.plan: RoutingPlan = make_routable(model, group_of)
        self._sq: dict[str, list[Tensor]] = {g: [] for g in self.names}
        self.observing = True  # False while probes and FLOP counts run their own backward
        self.meter = SignalMeter(self.names, cfg.governor.window, signal)
        self._hooks = [
            p.register_post_accumulate_grad_hook(self._grad_hook(name))
            for name, ps in self.params.items()
            for p in ps
        ]
        gov = cfg.governor
        self.readings = Readings(
            self.names,
            signal,
            None if guard is None else Guard(guard.collapse, guard.wake),
            gov.signal_threshold,
            gov.wake_threshold,
            options.measure,
        )
        if self.readings.measures and (probe is None or self.sharded):
            raise GovtrainError(
                f"measuring {', '.join(self.readings.measures)} needs a probe batch and an "
                "unsharded model"
            )
        self.tops = geometry.top_modules(model, group_of)
        # router.scorer: learned (pipeline/scorer.py): each group's own scores, and what a
        # learn step keeps from route() to learn_router(): features, losses before, k
        self.scorer = (
            LearnedScorer(model, self.tops, self.names, cfg.router.learned, seed)
            if cfg.router.scorer == "learned"
            else None
        )
        self._pending: tuple[dict[str, Tensor], Tensor, dict[str, int]] | None = None
        self._scored_by: str | None = None
        self.power_iterations = options.power_iterations
        # spectral: each trainable group's weights at the last probe, and the power
        # iteration's vectors per (group, parameter index, "update" | "weight")
        self._at_probe: dict[str, list[Tensor]] = {}
        self._vectors: dict[str, Tensor] = {}
        self.measured: dict[str, dict[str, float]] | None = None  # this step's, if probed
        # drift: each group's steps trained since (re)activation and its weights W and
        # 2W of those steps ago
        self._own_steps: dict[str, int] = {}
        self._snapshots: dict[str, list[list[Tensor]]] = {}
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
        observations = self._observe()
        result = govern(self.state, observations, self.cfg)
        before = self.state
        self.state, self.decision = result.state, result.decision
        self._apply_transitions(before, result)
        if self.audit is not None:
            record = self._record(loss, lr, observations, result, grad_bytes, flops, samples)
            self.audit.append("step", record)
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
        for name in self.names:
            self._sq[name] = []

    # -- observing -------------------------------------------------------------------

    def _grad_hook(self, group: str) -> Callable[[Tensor], None]:
        """Keep each gradient's norm for its group as the backward produces it (the
        `grad_norm` signal only: `drift` reads weights, not gradients).

        Reading gradients here, not at commit, sees them before any clipping
        rescales them, so the signal tracks the group and not the clip factor.
        """
        wanted = self.meter.kind == "grad_norm" and not self.synced

        def hook(p: Tensor) -> None:
            if wanted and self.observing and p.grad is not None:
                self._sq[group].append(
                    torch.linalg.vector_norm(p.grad.detach(), dtype=torch.float32)
                )

        return hook

    def record_gradients(self) -> None:
        """Take each group's gradient norms now (after they were averaged across ranks)
        instead of from the backward's hooks, which see each rank's local gradient."""
        if self.meter.kind != "grad_norm":
            return
        if self.sharded:  # each rank holds shards: one all-reduce gives the whole norms
            grads = [[p.grad for p in ps if p.grad is not None] for ps in self.params.values()]
            norms = group_norms(grads, self._device())
            self._sq = {n: [v] if g else [] for n, v, g in zip(self._sq, norms, grads, strict=True)}
            return
        for name, ps in self.params.items():
            self._sq[name] = [
                torch.linalg.vector_norm(p.grad.detach(), dtype=torch.float32)
                for p in ps
                if p.grad is not None
            ]

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
        for handle in self._hooks:
            handle.remove()
        self._hooks.clear()
        if self.scorer is not None:
            self.scorer.close()
        self.plan.route_all()
        for name in self.names:
            self.plan.set_native(name, True)
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

    def _observe(self) -> list[GroupObservation]:
        probe_due = self.probe is not None and self.step % self.probe_every == 0
        phases = {n: g.phase for n, g in zip(self.names, self.state.groups, strict=True)}
        self.measured = self._measure(phases) if probe_due and self.readings.measures else None
        if self.measured is not None:
            self.readings.read(self.measured, phases)
        converged = [n for n, p in phases.items() if p is Phase.CONVERGED]
        # geometry signals wake from the same measurements: no gradient probe
        gradient_probe = probe_due and converged and not self.readings.geometric
        probes = self._probe(converged) if gradient_probe else {}
        norms = self._take_norms()
        if self.meter.kind == "drift":
            self._read_drift()
        out = []
        for name, phase in phases.items():
            if not phase.frozen:
                self.meter.record(name, norms[name])
            signal, wake = self.readings.observe(
                name,
                phase,
                0.0 if phase.frozen else self.meter.signal(name),
                self.meter.wake(name, probes[name]) if name in probes else 0.0,
                probed=self.measured is not None,
            )
            out.append(GroupObservation(signal=signal, wake=wake, need=signal))
        if self.world is None:
            return out
        flat = broadcast_floats(
            [v for o in out for v in (o.signal, o.wake, o.need)], self._device()
        )
        return [GroupObservation(*flat[i : i + 3]) for i in range(0, len(flat), 3)]

    def _take_norms(self) -> dict[str, float]:
        """Each group's gradient L2 norm this step, read off the device in one sync."""
        sums = [torch.stack(v).square().sum() if v else None for v in self._sq.values()]
        present = [t for t in sums if t is not None]
        values = iter(torch.stack(present).sqrt().tolist() if present else [])
        norms = {
            n: (0.0 if t is None else next(values)) for n, t in zip(self._sq, sums, strict=True)
        }
        self._sq = {g: [] for g in self.names}
        return norms

    def _read_drift(self) -> None:
        """Every `window` of a trainable group's own steps, snapshot its weights and read
        the drift over the last two windows (signals.drift_reading)."""
        w = self.cfg.governor.window
        for name, g in zip(self.names, self.state.groups, strict=True):
            if g.phase.frozen and self.enforce:
                continue
            n = self._own_steps[name] = self._own_steps.get(name, 0) + 1
            if n % w:
                continue
            snaps = self._snapshots.setdefault(name, [])
            now = [p.detach().clone() for p in self.params[name]]
            if len(snaps) == 2:
                d1, d2 = (
                    torch.stack([(a - b).float().pow(2).sum() for a, b in zip(now, s, strict=True)])
                    .sum()
                    .item()
                    for s in (snaps[1], snaps[0])
                )
                self.meter.record_drift(name, drift_reading(d1, d2))
            snaps.append(now)
            del snaps[:-2]

    def _measure(self, phases: dict[str, Phase]) -> dict[str, dict[str, float]]:
        """This probe's measurements per group: the geometry of every group's hidden
        states on the probe batch (one forward, no gradients) and, for `spectral`, the
        relative spectral norm of each trainable group's update since the last probe."""
        wanted = [m for m in self.readings.measures if m in geometry.GEOMETRY]
        out: dict[str, dict[str, float]] = {}
        if wanted:
            assert self.probe is not None
            was_training = self.model.training
            self.observing = False
            try:
                self.plan.route_all()
                self.model.eval()
                with torch.no_grad(), geometry.hidden_states(self.model, self.tops) as seen:
                    self.probe(self.model)
            finally:
                self.observing = True
                self.model.train(was_training)
            geometry.require_outputs(seen, self.names, wanted)
            out = {g: {m: geometry.GEOMETRY[m](seen[g]) for m in wanted} for g in self.names}
        if SPECTRAL in self.readings.measures:
            for name, phase in phases.items():
                reading = None if phase.frozen else self._spectral(name)
                if reading is not None:
                    out.setdefault(name, {})[SPECTRAL] = reading
        return out

    def _spectral(self, group: str) -> float | None:
        """max over the group's matrices (its vectors, if it has none) of
        sigma_max(W_now - W_last_probe) / sigma_max(W_now); None at its first probe."""
        params = self.params[group]
        chosen = [i for i, p in enumerate(params) if p.dim() >= 2] or list(range(len(params)))
        now = [params[i].detach().clone() for i in chosen]
        before, self._at_probe[group] = self._at_probe.get(group), now
        if before is None:
            return None
        ratios = []
        for i, w, b in zip(chosen, now, before, strict=True):
            sig_w = self._power(f"{group}/{i}/weight", w)
            if sig_w > 0:
                ratios.append(self._power(f"{group}/{i}/update", w - b) / sig_w)
        return max(ratios, default=0.0)

    def _power(self, key: str, matrix: Tensor) -> float:
        sigma, v = geometry.top_singular_value(
            matrix, self._vectors.get(key), self.power_iterations
        )
        if v is not None:
            self._vectors[key] = v
        return sigma

    def _device(self) -> torch.device:
        return self.all_params[0].device

    def _probe(self, groups: list[str]) -> dict[str, float]:
        """Gradient norms of (frozen) `groups` on the probe batch; nothing is updated.

        `torch.autograd.grad`, not `backward()`: no `.grad` is written and no
        gradient-accumulation hook fires (DDP's reducer keeps its own there, and a
        probe seen by it breaks the next training backward), so the probe is
        invisible to the training step.
        """
        assert self.probe is not None
        saved = {id(p): p.requires_grad for p in self.all_params}
        wanted = [p for g in groups for p in self.params[g]]
        ids = {id(p) for p in wanted}
        was_training = self.model.training
        self.observing = False
        try:
            for p in self.all_params:
                p.requires_grad_(id(p) in ids)
            self.plan.route_all()
            self.model.eval()
            if self.sharded:
                return self._sharded_probe(groups, wanted)
            grads = iter(torch.autograd.grad(self.probe(self.model), wanted, allow_unused=True))
            return {g: _grad_norm([next(grads) for _ in self.params[g]]) for g in groups}
        finally:
            self.observing = True
            self.model.train(was_training)
            for p in self.all_params:
                p.requires_grad_(saved[id(p)])

    def _sharded_probe(self, groups: list[str], wanted: list[nn.Parameter]) -> dict[str, float]:
        """The probe under FSDP2, whose forward runs on unsharded copies that autograd
        does not connect to the shards: a backward (FSDP2 reduce-scatters it into the
        shards' `.grad`, on every rank alike), then the training gradients put back."""
        saved = {id(p): p.grad for p in wanted}
        for p in wanted:
            p.grad = None
        try:
            self.probe(self.model).backward()
            grads = [[p.grad for p in self.params[g] if p.grad is not None] for g in groups]
            norms = group_norms(grads, self._device())
            return {g: float(n) for g, n in zip(groups, norms, strict=True)}
        finally:
            for p in wanted:
                p.grad = saved[id(p)]

    # -- applying --------------------------------------------------------------------

    def _apply_transitions(self, before: GovernanceState, result: StepResult) -> None:
        converged_now = []
        for t in result.transitions:
            if t.group is None:
                continue
            self.readings.transition(t.action, t.group)
            if t.action in ("Activate", "Awaken"):
                self.meter.reset(t.group)
                self._at_probe.pop(t.group, None)
                self._own_steps.pop(t.group, None)
                self._snapshots.pop(t.group, None)
            if t.action == "Awaken" and self.awaken_policy == "reset" and self.enforce:
                for p in self.params[t.group]:
                    self.optimizer.state.pop(p, None)
            if t.action == "Converge":
                converged_now.append(t.group)
        if converged_now and self.probe is not None and not self.readings.geometric:
            self.meter.baseline.update(self._probe(converged_now))
        self._apply_freezing()

    def _apply_freezing(self) -> None:
        """requires_grad follows the state; a group the next step routes fully runs natively."""
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
            measurements=self.measured,
            samples=samples,
            scorer=self._scored_by,
        ).to_dict(self.names)

    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "state": state_to_dict(self.state, self.names),
            "decision": decision_to_dict(self.decision, self.names),
            "meter": self.meter.state_dict(),
            "own_steps": dict(self._own_steps),
            "snapshots": {g: [list(s) for s in snaps] for g, snaps in self._snapshots.items()},
            "readings": self.readings.state_dict(),
            "at_probe": {g: list(ts) for g, ts in self._at_probe.items()},
            "vectors": dict(self._vectors),
            **({} if self.scorer is None else {"scorer": self.scorer.state_dict()}),
        }

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        """Restore the core state and the decision the next step uses."""
        self.step = sd["step"]
        self.state = state_from_dict(sd["state"], self.names)
        self.decision = decision_from_dict(sd["decision"], self.names)
        self.meter.load_state_dict(sd["meter"])
        self._own_steps = dict(sd["own_steps"])
        device = {g: ps[0].device for g, ps in self.params.items() if ps}
        self._snapshots = {
            g: [[t.to(device[g]) for t in snap] for snap in snaps]
            for g, snaps in sd["snapshots"].items()
        }
        if "readings" in sd:  # absent from checkpoints written before probe measurements
            self.readings.load_state_dict(sd["readings"])
        at_probe = sd.get("at_probe", {})
        self._at_probe = {g: [t.to(device[g]) for t in ts] for g, ts in at_probe.items()}
        self._vectors = {k: v.to(self._device()) for k, v in sd.get("vectors", {}).items()}
        if self.scorer is not None:
            self.scorer.load_state_dict(sd["scorer"])
        self._apply_freezing()


def untrainable(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    """Why `model` cannot be governed by someone else's loop with `optimizer`: parameters
    frozen before governance starts, or missing from the optimizer (either would never be
    updated once its group activates). Empty when it can."""
    problems = []
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    if frozen:
        problems.append(
            f"{len(frozen)} parameter(s) frozen before governance starts (e.g. {frozen[0]}): "
            f"leave every parameter trainable and let the groups' levels freeze them"
        )
    in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
    missing = [n for n, p in model.named_parameters() if id(p) not in in_optimizer]
    if missing:
        problems.append(
            f"{len(missing)} parameter(s) missing from the optimizer (e.g. {missing[0]}): "
            f"they would never be updated once their group activates"
        )
    return problems


def _compiled(model: nn.Module) -> bool:
    """torch.compile(model) wraps it (OptimizedModule); model.compile() compiles in place."""
    return hasattr(model, "_orig_mod") or getattr(model, "_compiled_call_impl", None) is not None


def _grad_norm(grads: list[Tensor | None]) -> float:
    present = [g for g in grads if g is not None]
    if not present:
        return 0.0
    return float(
        torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in present]))
    )


def _digest(index: tuple[int, ...] | None, batch: int) -> str:
    """SHA-256 of the routed indices (all of them when the whole batch is routed)."""
    rows = range(batch) if index is None else index
    return hashlib.sha256(",".join(map(str, rows)).encode()).hexdigest()
