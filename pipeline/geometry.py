"""Representation geometry and spectral norms: what a probe measures beyond gradients.

Each measure reads a group's hidden states on the probe batch as rows (one per
token: a [B, T, d] output is B*T rows of width d) and returns one float:

* effective_rank: exp of the entropy of the normalised singular values of the
  centred rows (RankMe, Garrido et al. 2023). 1 when every row lies on one line,
  up to min(n - 1, d) when variance spreads evenly over every direction; 0 when
  all rows are equal.
* participation_ratio: (sum of the covariance's eigenvalues)^2 / (sum of their
  squares). Also between 1 and d, but weighted by variance rather than by
  singular value, so it is less sensitive to many small directions.
* isotropy: 1 - the mean cosine similarity of distinct (uncentred) rows
  (Ethayarajh 2019's anisotropy baseline, turned around): about 1 when rows point
  every way, 0 when every row points the same way (a shared offset dominates).
* distance_cv: the coefficient of variation (population std / mean) of the
  pairwise Euclidean distances: 0 when every pair is equally far apart, larger
  when rows gather into clusters. Over at most DISTANCE_ROWS evenly spaced rows,
  so its memory stays bounded (all pairs of 8 x 2048 tokens would be ~1 GB).

Centring (all but isotropy, which reads the shared offset on purpose) keeps the
readings independent of a shared offset; float64 keeps them independent of
accumulation order at the precisions models train in.

`top_singular_value` is power iteration on M^T M, warm-started from the previous
right vector, so a few matrix-vector products per probe follow the leading
direction as the matrix changes slowly (spectral normalisation's trick,
Miyato et al. 2018). A 1-D parameter (a norm's scale, a bias) acts as a
diagonal matrix: its spectral norm is its largest absolute entry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from govtrain.governance.errors import GovtrainError


def _rows(hidden: Tensor) -> Tensor:
    return hidden.detach().reshape(-1, hidden.shape[-1]).to(torch.float64)


def _centred(hidden: Tensor) -> Tensor:
    rows = _rows(hidden)
    return rows - rows.mean(dim=0, keepdim=True)


def effective_rank(hidden: Tensor) -> float:
    s = torch.linalg.svdvals(_centred(hidden))
    total = s.sum()
    if total <= 0:
        return 0.0
    p = s[s > 0] / total
    return float(torch.exp(-(p * p.log()).sum()))


def participation_ratio(hidden: Tensor) -> float:
    eig = torch.linalg.svdvals(_centred(hidden)).square()  # covariance eigenvalues x (n - 1)
    squares = eig.square().sum()
    return float(eig.sum().square() / squares) if squares > 0 else 0.0


def isotropy(hidden: Tensor) -> float:
    unit = nn.functional.normalize(_rows(hidden), dim=1)
    n = unit.shape[0]
    if n < 2:
        return 0.0
    # sum over ordered pairs i != j of u_i . u_j, without forming the n x n matrix
    pairs = unit.sum(dim=0).square().sum() - unit.square().sum()
    return float(1 - pairs / (n * (n - 1)))


DISTANCE_ROWS = 2048


def distance_cv(hidden: Tensor) -> float:
    rows = _rows(hidden)
    if rows.shape[0] > DISTANCE_ROWS:
        rows = rows[torch.linspace(0, rows.shape[0] - 1, DISTANCE_ROWS).long()]
    d = torch.pdist(rows)
    mean = d.mean() if d.numel() else torch.tensor(0.0)
    return float(d.std(correction=0) / mean) if mean > 0 else 0.0


def top_singular_value(
    matrix: Tensor, vector: Tensor | None, iterations: int
) -> tuple[float, Tensor | None]:
    """(sigma_max(matrix), the right singular vector to warm-start the next call with)."""
    m = matrix.detach().to(torch.float64)
    if m.dim() < 2:
        return float(m.abs().max()) if m.numel() else 0.0, None
    m = m.reshape(m.shape[0], -1)
    v = vector
    if v is None or v.shape != (m.shape[1],):
        g = torch.Generator(device="cpu").manual_seed(0)
        v = torch.randn(m.shape[1], generator=g, dtype=torch.float64).to(m.device)
    for _ in range(iterations):
        w = m.T @ (m @ v)
        norm = torch.linalg.vector_norm(w)
        if norm == 0:
            return 0.0, None
        v = w / norm
    return float(torch.linalg.vector_norm(m @ v)), v


def top_modules(model: nn.Module, group_of: dict[str, str]) -> dict[str, list[str]]:
    """Per group, the outermost modules whose own parameters all belong to it.

    A module counts by the parameters registered under its name (`group_of`'s keys):
    one that only reuses another's (a tied output head) belongs to no group.
    """
    names = list(group_of)
    owner: dict[str, str] = {}
    for prefix, _ in model.named_modules():
        if not prefix:
            continue
        mine = {group_of[n] for n in names if n.startswith(prefix + ".")}
        if len(mine) == 1:
            owner[prefix] = mine.pop()
    tops: dict[str, list[str]] = {}
    for prefix, group in owner.items():
        parent = prefix.rpartition(".")[0]
        if owner.get(parent) != group:
            tops.setdefault(group, []).append(prefix)
    return tops


@contextmanager
def hidden_states(model: nn.Module, tops: dict[str, list[str]]) -> Iterator[dict[str, Tensor]]:
    """While open, a forward of `model` leaves per group the output of the last of its
    outermost modules to run whose leading dimension is the batch's (that of the
    model's first tensor input): a position table shared by every sample is not one."""
    seen: dict[str, Tensor] = {}
    rows: list[int] = []
    modules = dict(model.named_modules())

    def batch(_module: nn.Module, args: tuple, kwargs: dict) -> None:
        first = next((a for a in (*args, *kwargs.values()) if isinstance(a, Tensor)), None)
        rows[:] = [] if first is None or first.dim() == 0 else [first.shape[0]]

    def keep(group: str) -> Callable:
        def hook(_module: nn.Module, _args: object, output: object) -> None:
            out = output[0] if isinstance(output, tuple | list) else output
            if isinstance(out, Tensor) and out.dim() >= 2 and [out.shape[0]] == rows:
                seen[group] = out.detach()

        return hook

    handles = [model.register_forward_pre_hook(batch, with_kwargs=True)]
    handles += [
        modules[name].register_forward_hook(keep(group))
        for group, names in tops.items()
        for name in names
    ]
    try:
        yield seen
    finally:
        for h in handles:
            h.remove()


def require_outputs(
    seen: dict[str, Tensor], groups: list[str], measures: list[str], instead: list[str]
) -> None:
    """Every group left hidden states to measure; else the error names the signals
    that read none (`instead`)."""
    missing = [g for g in groups if g not in seen]
    if missing:
        raise GovtrainError(
            f"group(s) {', '.join(missing)} have no module output over the probe batch to "
            f"measure {', '.join(measures)} on (hidden states): use signal "
            + ", ".join(repr(n) for n in instead)
        )
