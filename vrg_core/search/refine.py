"""Refinement of a schedule on the final-sample error predicted from the teacher alone.

`check` measures how much of a state error the model's prediction follows (j(σ), about 0 at
high σ, about 1 near 0) along the sampler's own deviations. With it the final-sample error of
any schedule (any σ, not only grid points) follows from the Gram matrix (`linearised_error`):
an error made early is carried to the end as the model carries it.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import minimize

from ..error_table import ErrorTable
from .coefficients import step_coefficients
from .samplers import Sampler
from .survival import propagated_variance
from .teacher import Teacher

RESPONSE_WIDTH = 5.0  # grid points over which the model's measured response is pooled
REFINE_EVALUATIONS = 2000  # Nelder–Mead evaluations of the linearised error per refinement


def response_curve(rows: np.ndarray, size: int, width: float = RESPONSE_WIDTH) -> np.ndarray:
    """j at each grid point: the least-squares fit of ΔD ≈ j·Δx to the `check` rows, each weighted
    by a Gaussian `width` grid points wide (the nearest row's own ratio where no row is near).

    It is how much of a state error the model's prediction follows at that noise level: about 0
    at high σ (the prediction ignores it), about 1 near σ = 0 (the state is the image).
    """
    t = np.arange(size)[:, None]
    weight = np.exp(-0.5 * ((t - rows[:, 0]) / width) ** 2)
    num, den = weight @ rows[:, 1], weight @ rows[:, 2]
    nearest = rows[np.abs(t - rows[:, 0]).argmin(axis=1)]
    tiny = 1e-12 * max(float(rows[:, 2].max()), 1e-300)
    return np.where(den > tiny, num / np.maximum(den, tiny), nearest[:, 1] / np.maximum(nearest[:, 2], tiny))


def linearised_error(sigmas: np.ndarray, teacher: Teacher, sampler: Sampler, response: np.ndarray) -> float:
    """Squared error per dimension at the final sample of `sampler` on `sigmas`, from the teacher's Gram matrix alone.

    The sampler runs on coefficient vectors over the teacher's vectors (X_0.., D_0..): the
    model's prediction at a state is the teacher's prediction at that σ plus
    j(σ)·(state − teacher's state) (`response_curve`), which is linear, so the run is exact for
    a model that responds so. Teacher vectors between grid points (a multi-stage sampler's
    in-between calls too) are interpolated linearly in log σ, and held below the grid. The
    start is the teacher's state at σ_0 (exact when σ_0 is the teacher's own start). The run is
    the sampler's own function (`function_run`), or, for a sampler whose step is one of vrg_core's
    own (`Sampler.linear_step`), that step in numpy (`linear_run`: the same to rounding, ~10× faster).
    """
    G = len(teacher.grid)
    run = linear_run if sampler.linear_step else function_run
    final = run(np.asarray(sigmas, dtype=np.float64), teacher, sampler, response)
    final[2 * G - 1] -= 1.0  # against the teacher's final sample D_{G-1}
    return float(final @ teacher.gram @ final / teacher.numel)


def teacher_vectors(i: int, f: float, size: int) -> np.ndarray:
    """[2, 2·size]: the teacher's state and prediction a fraction f of the way from grid point i to i + 1, as
    coefficients of X_0..X_{size−1}, D_0..D_{size−1}."""
    vectors = np.zeros((2, 2 * size))
    vectors[0, i], vectors[0, i + 1], vectors[1, size + i], vectors[1, size + i + 1] = 1 - f, f, 1 - f, f
    return vectors


def function_run(sigmas: np.ndarray, teacher: Teacher, sampler: Sampler, response: np.ndarray) -> np.ndarray:
    """The final state's coefficients after the sampler's own function on `sigmas` (`linearised_error`)."""
    G = len(teacher.grid)

    def model(state: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        (i,), (f,) = teacher.brackets(np.array([float(sigma.reshape(-1)[0])]))
        x, d = torch.from_numpy(teacher_vectors(i, f, G))[:, None]
        return d + float((1 - f) * response[i] + f * response[i + 1]) * (state - x)

    (i,), (f,) = teacher.brackets(sigmas[:1])
    with torch.no_grad():
        return sampler.run(model, torch.from_numpy(teacher_vectors(i, f, G)[:1]), sigmas)[0].numpy().copy()


def linear_run(sigmas: np.ndarray, teacher: Teacher, sampler: Sampler, response: np.ndarray) -> np.ndarray:
    """The final state's coefficients after `sampler.linear_step`'s steps (`coefficients.step_coefficients`) on
    `sigmas` (`linearised_error`)."""
    G = len(teacher.grid)
    c_x, c_d, c_old = step_coefficients(sampler.linear_step, np.r_[np.nan, sigmas[:-2]], sigmas[:-1], sigmas[1:])
    lower, frac = teacher.brackets(sigmas[:-1])
    j = (1 - frac) * response[lower] + frac * response[lower + 1]
    x, old = teacher_vectors(lower[0], frac[0], G)[0], 0.0
    for k in range(len(sigmas) - 1):
        teacher_x, teacher_d = teacher_vectors(lower[k], frac[k], G)
        d = teacher_d + j[k] * (x - teacher_x)
        x, old = c_x[k] * x + c_d[k] * d + c_old[k] * old, d
    return x


def refine(start: np.ndarray, teacher: Teacher, sampler: Sampler, response: np.ndarray, table: ErrorTable | None,
           data_variance: float, variance_weight: float) -> np.ndarray:
    """Nelder–Mead from schedule `start` on `linearised_error` + `propagated_variance`, with no model calls.

    σ_0 is the teacher's start; the levels between it and the final 0 move in log σ within the
    grid's range and stay strictly descending; deterministic.
    """
    top, low = float(teacher.grid[0]), float(teacher.grid[-1])

    def schedule(z: np.ndarray) -> np.ndarray:
        return np.r_[top, np.exp(np.sort(np.clip(z, np.log(low), np.log(top)))[::-1]), 0.0]

    def objective(z: np.ndarray) -> float:
        sigmas = schedule(z)
        if not np.all(np.diff(sigmas) < 0):
            return np.inf
        return (linearised_error(sigmas, teacher, sampler, response)
                + propagated_variance(sigmas, table, data_variance, variance_weight))

    inner = np.clip(start[1:-1], low, top * (1 - 1e-6))
    result = minimize(objective, np.log(inner), method="Nelder-Mead",
                      options={"maxfev": REFINE_EVALUATIONS, "xatol": 1e-3, "fatol": 1e-9})
    return schedule(result.x)
