"""Pooled error curves and the profile's regret estimate (vrg_core.error_table.smooth_levels, vrg_core.regret)."""

import numpy as np
import pytest

from vrg_core.error_table import ErrorTable, smooth_levels
from vrg_core.errors import VRGError
from vrg_core.objective import cumulative_error
from vrg_core.optimize import optimize_sigmas
from vrg_core.parameterization import ModelKind, noise_level_grid
from vrg_core.regret import default_schedule, schedule_regret_estimate


def true_w(sigma):
    return 0.3 / (1.0 + sigma**2) + 0.02 * np.exp(-np.log(sigma) ** 2)


def measured(kind=ModelKind.EPS, samples=32, seed=0, levels=48):
    """A table whose per-sample errors scatter around true_w like a real profile's (cv about 0.45)."""
    hi = 1.0 if kind.is_flow else 14.6
    grid = noise_level_grid(0.03, hi, levels, kind)
    rng = np.random.default_rng(seed)
    level = np.repeat(np.arange(levels), samples)
    mse = true_w(grid)[level] * rng.gamma(5.0, 0.2, size=len(level))
    return ErrorTable.from_samples(kind, grid, level, mse, np.zeros_like(mse)), grid


def test_pooling_leaves_tables_without_spread_alone():
    grid = noise_level_grid(0.03, 14.6, 12, ModelKind.EPS)
    t = ErrorTable.from_mean_error(ModelKind.EPS, grid, np.exp(np.sin(np.arange(12.0))))
    np.testing.assert_array_equal(t.smoothed_mse, t.mean_mse)
    w, _ = t.interpolate(grid)
    np.testing.assert_allclose(w, t.mean_mse, rtol=1e-12)


def test_pooling_moves_toward_the_truth_and_stays_within_the_noise():
    errors_raw, errors_pooled = [], []
    for seed in range(5):
        t, grid = measured(seed=seed)
        truth = true_w(grid)
        errors_raw.append(np.mean(np.log(t.mean_mse / truth) ** 2))
        errors_pooled.append(np.mean(np.log(t.smoothed_mse / truth) ** 2))
        chi2 = np.mean(((t.smoothed_mse - t.mean_mse) / t.standard_error) ** 2)
        assert chi2 < 2.0  # within the measurement noise (the fit allows about one standard error a level)
    assert np.mean(errors_pooled) < 0.5 * np.mean(errors_raw)


def test_smooth_levels_keeps_a_smooth_curve():
    x = np.linspace(0, 1, 20)
    w = np.exp(-3 * x)
    np.testing.assert_allclose(smooth_levels(w, 0.05 * w), w, rtol=1e-3)  # a log-linear curve is unchanged


@pytest.mark.parametrize("kind", [ModelKind.EPS, ModelKind.CONST])
def test_regret_estimate_tracks_the_measured_regret(kind):
    """Few samples per level: larger regret, and a larger estimate; the estimate is in the measured range."""
    t_small, grid = measured(kind, samples=4, seed=1)
    t_big, _ = measured(kind, samples=64, seed=2)
    truth = ErrorTable.from_mean_error(kind, grid, true_w(grid))
    base = default_schedule(truth, 10)
    best = optimize_sigmas(base, truth).cpe_after
    regret = {n: cumulative_error(optimize_sigmas(base, t).sigmas, truth).total / best - 1 for n, t in (("small", t_small), ("big", t_big))}
    est = {n: schedule_regret_estimate(t, base) for n, t in (("small", t_small), ("big", t_big))}
    assert est["small"].mean >= est["big"].mean
    assert est["small"].high >= est["small"].mean >= 0
    assert regret["big"] <= 0.005 and est["big"].mean <= 0.005
    assert est["small"].seconds < 5 and est["small"].draws == 16


def test_regret_estimate_is_deterministic_and_refuses_tables_without_spread():
    t, grid = measured(samples=8)
    a, b = schedule_regret_estimate(t, seed=3), schedule_regret_estimate(t, seed=3)
    assert (a.mean, a.high) == (b.mean, b.high)
    with pytest.raises(VRGError, match="standard errors"):
        schedule_regret_estimate(ErrorTable.from_mean_error(ModelKind.EPS, grid, true_w(grid)))


def test_default_schedule_lies_in_the_table():
    for kind in (ModelKind.EPS, ModelKind.CONST):
        t, _ = measured(kind)
        s = default_schedule(t, 10)
        assert len(s) == 11 and s[-1] == 0 and np.all(np.diff(s) < 0)
        assert t.sigma_min <= s[-2] and s[0] <= t.sigma_max
