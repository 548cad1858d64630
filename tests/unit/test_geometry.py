"""Representation measures and power iteration against closed-form cases."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from govtrain.pipeline import geometry  # noqa: E402

pytestmark = pytest.mark.torch


def _gaussian(n: int, d: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_isotropic_gaussian_spreads_over_every_direction() -> None:
    x = _gaussian(20_000, 16)
    assert geometry.participation_ratio(x) == pytest.approx(16, rel=0.01)
    assert geometry.effective_rank(x) == pytest.approx(16, rel=0.01)
    assert geometry.isotropy(x) == pytest.approx(1.0, abs=0.01)


def test_rank_one_data_has_rank_one_and_no_isotropy() -> None:
    scale = _gaussian(500, 1, seed=1)
    direction = _gaussian(1, 16, seed=2)
    x = scale * direction
    assert geometry.effective_rank(x) == pytest.approx(1.0, abs=1e-6)
    assert geometry.participation_ratio(x) == pytest.approx(1.0, abs=1e-9)
    # every row points the same way once the scales are positive
    assert geometry.isotropy(scale.abs() * direction) == pytest.approx(0.0, abs=1e-9)


def test_a_known_spectrum_gives_the_known_ratios() -> None:
    # covariance eigenvalues 4, 1, 1, 1: PR = 7^2 / (16 + 3) exactly, from exact rows
    basis = torch.eye(4, dtype=torch.float64)
    rows = torch.cat(
        [2 * basis[:1], -2 * basis[:1], *(s * basis[i : i + 1] for i in (1, 2, 3) for s in (1, -1))]
    )
    assert geometry.participation_ratio(rows) == pytest.approx(49 / 19)
    # singular values 2*sqrt2, sqrt2 x3: p = (2, 1, 1, 1) / 5
    p = torch.tensor([0.4, 0.2, 0.2, 0.2], dtype=torch.float64)
    assert geometry.effective_rank(rows) == pytest.approx(float(torch.exp(-(p * p.log()).sum())))


def test_distance_spread_of_a_simplex_and_of_a_line() -> None:
    assert geometry.distance_cv(torch.eye(10)) == pytest.approx(0.0, abs=1e-12)
    # points 0, 1, 3: distances 1, 3, 2 -> mean 2, population std sqrt(2/3)
    line = torch.tensor([[0.0], [1.0], [3.0]])
    assert geometry.distance_cv(line) == pytest.approx((2 / 3) ** 0.5 / 2)


def test_degenerate_inputs_read_zero_not_nan() -> None:
    zeros = torch.zeros(5, 3)
    assert geometry.effective_rank(zeros) == geometry.participation_ratio(zeros) == 0.0
    assert geometry.distance_cv(zeros) == 0.0
    assert geometry.isotropy(zeros) == 1.0  # no shared direction among zero rows


def _known(spectrum: list[float], rows: int = 64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(rows, rows, generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(
        torch.randn(len(spectrum), len(spectrum), generator=g, dtype=torch.float64)
    )
    return u[:, : len(spectrum)] @ torch.diag(torch.tensor(spectrum, dtype=torch.float64)) @ v.T


@pytest.mark.parametrize("iterations", [3, 4])
def test_power_iteration_finds_the_top_singular_value_within_one_percent(iterations) -> None:
    m = _known([10.0, 5.0] + [1.0] * 30)
    sigma, _ = geometry.top_singular_value(m, None, iterations)
    assert sigma == pytest.approx(10.0, rel=0.01)
    assert sigma <= 10.0 + 1e-9  # a Rayleigh quotient never overshoots


def test_a_warm_start_follows_a_slowly_changing_matrix_in_one_iteration() -> None:
    m = _known([10.0, 9.0] + [1.0] * 30)  # a small gap: cold starts converge slowly
    cold, _ = geometry.top_singular_value(m, None, 1)
    _, v = geometry.top_singular_value(m, None, 50)
    nudged = m + 1e-3 * _known([1.0] * 32, seed=5)
    warm, _ = geometry.top_singular_value(nudged, v, 1)
    exact = float(torch.linalg.matrix_norm(nudged, ord=2))
    assert abs(warm - exact) / exact < 1e-4 < abs(cold - 10.0) / 10.0


def test_a_vector_acts_as_a_diagonal_matrix() -> None:
    sigma, vector = geometry.top_singular_value(torch.tensor([0.5, -3.0, 2.0]), None, 3)
    assert sigma == 3.0 and vector is None


def test_top_modules_skip_a_tied_head_and_follow_nesting() -> None:
    from govtrain.pipeline.config import ModelConfig
    from govtrain.pipeline.models import build_model

    model = build_model(ModelConfig(name="gpt2", n_layer=2, n_embd=16, n_head=2), 32, 8)
    group_of = {
        n: ("embed" if ".w" in n[:15] else "low" if ".h.0." in n else "top")
        for n, _ in model.named_parameters()
    }
    tops = geometry.top_modules(model, group_of)
    assert tops["embed"] == ["transformer.wte", "transformer.wpe"]  # not lm_head (tied)
    assert tops["low"] == ["transformer.h.0"]
    assert tops["top"] == ["transformer.h.1", "transformer.ln_f"]
    with geometry.hidden_states(model, tops) as seen:
        model(torch.zeros(3, 8, dtype=torch.long))
    # the position table (leading dimension 1) is not a per-sample output
    assert seen["embed"].shape == (3, 8, 16)
    assert seen["top"].shape == (3, 8, 16)
