"""The learned router scorer (`router.scorer: learned`): each group scores its own samples.

The router's rule is unchanged: a group takes the `k` highest scores of the
batch, ties to the lower index (`governance.routing.route`, the spec's `Route`).
Only where the scores come from changes: instead of one vector for every group
(the per-sample loss, or a seeded random draw), each group has a small MLP
(3 features -> `hidden` tanh units -> 1) that scores the batch's samples from
features measured in the training forward, before the backward. The scores
are data to the spec, as the losses are.

Features, per group and sample, each standardised over the batch (z-score; 0
where the batch does not vary). Top-k compares a sample with the rest of its
batch, so the scorer sees exactly that, and not levels that drift as training
proceeds (a raw or log loss falls through the run and would make yesterday's
scorer read today's batch wrongly):

* `loss`: the sample's loss. Selective backprop's signal; the scorer starts
  from it and may weigh it against the others.
* `activation_norm`: the mean over positions of the row norm of the group's
  own output (its outermost modules, `geometry.top_modules`), captured by a
  forward hook during the training forward. Group-specific: a weight gradient
  is an outer product of activations and output gradients, so samples whose
  activations through this group are large move its weights most.
* `atypicality`: 1 - the cosine of the sample's mean output of the group with
  the batch's mean output. Group-specific: a sample the group represents far
  from the batch carries gradient directions the rest of the batch does not.

A group whose output does not vary by sample (GPT-2's position table, which
the hook sees last for the embeddings) gets zero for the last two and scores on
its loss. No feature needs anything after the forward, so routing stays
before the backward, where it saves work.

Training signal: every `learn_every` steps (during the router's warmup too,
when every sample is routed and the signal is unbiased), the benefit of a
sample is its loss before the update minus its loss after it (one extra
no-grad forward of the same batch after `optimizer.step()`, by
`Governor.learn_router`), standardised over the batch. Per group,

    objective = -(1/k) * sum_i m_i * b_i  -  entropy * H(softmax(s / temperature))

where `m` is the straight-through top-k mask: its value is the hard top-k of
`routing.route` (the rule that routes), its gradient that of the relaxation
`soft = k * softmax(s / temperature)` (`straight_through_mask`). Then
d/ds_j of the first term is -(1/temperature) * p_j * (b_j - sum_i p_i b_i): a
score rises when its sample helped more than the softmax-weighted average,
which is what top-k by score should pick. The entropy bonus keeps softmax from
collapsing onto a few samples, where every other sample's gradient would
vanish (p_j -> 0) and the scorer would stop learning. Together the two terms'
gradients vanish where softmax(s / temperature) is proportional to
exp(b / entropy), i.e. at s = b * temperature / entropy (+ a constant): with
the defaults (both 1) the scores regress the standardised benefit, spread like
it, instead of only its argmax. `k` is the group's quota when it routes, else
its decided budget units, else half the batch.

The benefit is measured on the model's whole update, so it is shared by every
group's scorer (their features differ); once routing is active it is measured
on the samples the scorers chose, which favours what they already pick: the
warmup's unbiased steps and the entropy bonus temper that, nothing removes it.

The MLPs and their Adam state live on the CPU (a batch's features are a few
numbers per sample), are initialised from the run seed with the global RNG
forked (the model's random stream is the same whatever the scorer), and are
checkpointed with the governor, so a resume continues bit for bit; every step
record carries the SHA-256 of the parameters that scored it (`scorer`, taken
before the step's own learning).

The objective is linear in `m`, so its straight-through gradient is the
relaxation's, -sum_i p_i b_i, for any `k`: the quota shapes the objective's
value (and which samples the hard mask names), not what the scorer learns.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from govtrain.governance import routing
from govtrain.governance.config import GovernanceConfig, LearnedScorerConfig
from govtrain.pipeline import geometry

FEATURES = ("loss", "activation_norm", "atypicality")
SEED_OFFSET = 0x5C0E  # the scorer's init stream, apart from the model's (same seed)


def refused(cfg: GovernanceConfig, loop: str) -> list[str]:
    """Why `loop` cannot run this config's router: the learned scorer learns from a forward
    after the optimizer step, which only GovernedTrainer (or a loop that calls
    `Governor.learn_router`) runs. Empty when it can."""
    if cfg.router.scorer != "learned":
        return []
    return [
        f"router.scorer 'learned' is not supported by {loop} (it learns from a second "
        "forward after the optimizer step): use 'loss' or 'random'"
    ]


def standardise(x: Tensor) -> Tensor:
    """(x - mean) / std over the batch; all zeros where the batch does not vary."""
    std = x.std(correction=0)
    if not std > 1e-12 * max(1.0, float(x.abs().max())):
        return torch.zeros_like(x)
    return (x - x.mean()) / std


def group_features(losses: Tensor, hidden: Tensor | None) -> Tensor:
    """[B, 3] features of one group's samples (FEATURES, each standardised over the batch)
    from the batch's per-sample losses and the group's output [B, ..., d], if seen."""
    z_loss = standardise(losses)
    if hidden is None or hidden.shape[0] != losses.shape[0]:
        zero = torch.zeros_like(z_loss)
        return torch.stack([z_loss, zero, zero], dim=1)
    rows = hidden.detach().float().reshape(hidden.shape[0], -1, hidden.shape[-1])
    norm = torch.linalg.vector_norm(rows, dim=-1).mean(1)
    mean = rows.mean(1)
    typical = nn.functional.cosine_similarity(mean, mean.mean(0, keepdim=True), dim=1)
    return torch.stack([z_loss, standardise(norm.cpu()), standardise(1 - typical.cpu())], dim=1)


def topk_mask(scores: Tensor, k: int) -> Tensor:
    """1 at the samples `routing.route` picks (top-k, ties to the lower index), else 0."""
    hard = torch.zeros_like(scores)
    hard[list(routing.route(scores.detach().tolist(), k))] = 1.0
    return hard


def straight_through_mask(scores: Tensor, k: int, temperature: float) -> Tensor:
    """The hard top-k mask in value, with the gradient of k * softmax(scores / temperature)."""
    soft = k * torch.softmax(scores / temperature, dim=0)
    return topk_mask(scores, k) + (soft - soft.detach())


def entropy(scores: Tensor, temperature: float) -> Tensor:
    logp = torch.log_softmax(scores / temperature, dim=0)
    return -(logp.exp() * logp).sum()


def objective(scores: Tensor, benefit: Tensor, k: int, temperature: float, weight: float) -> Tensor:
    """-(1/k) * sum(m * b) - weight * H(softmax(scores / temperature)), m straight-through."""
    picked = (straight_through_mask(scores, k, temperature) * benefit).sum() / k
    return -picked - weight * entropy(scores, temperature)


def nominal_k(candidates: tuple[int, ...], batch: int) -> int:
    """The `k` a group learns at: the first candidate that really routes (0 < k < batch),
    else half the batch (warmup, or a quota of the whole batch)."""
    return next((k for k in candidates if 0 < k < batch), max(1, batch // 2))


class LearnedScorer:
    """One MLP per group, its Adam optimiser, and the hooks that see each group's output."""

    def __init__(
        self,
        model: nn.Module,
        tops: dict[str, list[str]],
        names: list[str],
        cfg: LearnedScorerConfig,
        seed: int,
    ) -> None:
        self.names, self.cfg = names, cfg
        with torch.random.fork_rng(devices=[]):
            # the CPU generator only (torch.manual_seed would reseed every CUDA device too)
            torch.default_generator.manual_seed(seed * 1_000_003 + SEED_OFFSET)
            self.nets = nn.ModuleDict(
                {
                    n: nn.Sequential(
                        nn.Linear(len(FEATURES), cfg.hidden), nn.Tanh(), nn.Linear(cfg.hidden, 1)
                    )
                    for n in names
                }
            )
        self.optimizer = torch.optim.Adam(self.nets.parameters(), lr=cfg.lr)
        # each group's output in the latest forward; read (and cleared) at every route
        self._hooks = contextlib.ExitStack()
        self.seen = self._hooks.enter_context(geometry.hidden_states(model, tops))

    def features(self, losses: Tensor) -> dict[str, Tensor]:
        """Per group, its [B, 3] features from the forward that produced `losses`."""
        cpu = losses.detach().float().cpu()
        out = {n: group_features(cpu, self.seen.get(n)) for n in self.names}
        self.seen.clear()
        return out

    @torch.no_grad()
    def scores(self, features: Mapping[str, Tensor]) -> dict[str, list[float]]:
        return {n: self.nets[n](features[n]).squeeze(-1).tolist() for n in self.names}

    def learn(
        self, features: Mapping[str, Tensor], benefit: Tensor, ks: Mapping[str, int]
    ) -> float:
        """One Adam step on every group's objective for this batch's `benefit` (per sample,
        standardised here); returns the summed objective."""
        b = standardise(benefit.detach().float().cpu())
        cfg = self.cfg
        self.optimizer.zero_grad(set_to_none=True)
        with torch.enable_grad():
            total = torch.stack(
                [
                    objective(
                        self.nets[n](features[n]).squeeze(-1),
                        b,
                        ks[n],
                        cfg.temperature,
                        cfg.entropy,
                    )
                    for n in self.names
                ]
            ).sum()
            total.backward()
        self.optimizer.step()
        return float(total.detach())

    def digest(self) -> str:
        """SHA-256 of every group's scorer parameters (name, shape, float32 bytes)."""
        h = hashlib.sha256()
        for name, p in self.nets.state_dict().items():
            h.update(f"{name}:{tuple(p.shape)}:".encode())
            h.update(p.detach().to(torch.float32).contiguous().numpy().tobytes())
        return h.hexdigest()

    def state_dict(self) -> dict:
        return {"nets": self.nets.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, sd: dict) -> None:
        self.nets.load_state_dict(sd["nets"])
        self.optimizer.load_state_dict(sd["optimizer"])

    def close(self) -> None:
        """Remove the forward hooks (the governor hands the model back)."""
        self._hooks.close()
