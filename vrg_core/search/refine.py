"""Refinement of a schedule on the final-sample error predicted from the teacher alone.

`check` measures how much of a state error the model's prediction follows (j(σ), about 0 at
high σ, about 1 near 0) along the sampler's own deviations, and how much of the prediction's
change j does not explain (ρ(σ)). With them the final-sample error of any schedule (any σ, not
only grid points) follows from the Gram matrix (`linearised_error`): an error made early is
carried to the end as the model carries it, and the unexplained part is carried as the sampler
carries a change in the model's prediction. Without that part the refinement found schedules
whose linearised error is tiny only because the sampler magnifies the model's prediction there
(a multistep sampler's nearly coinciding levels): their real error was up to thousands of times
the predicted one (uni_pc, ipndm, DPM++2M on the demo model).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import minimize

from ..error_table import ErrorTable
from ..errors import VRGError
from .coefficients import step_coefficients
from .samplers import Sampler
from .survival import propagated_variance
from .teacher import Teacher

RESPONSE_WIDTH = 5.0  # grid points over which the model's measured response is pooled
REFINE_EVALUATIONS = 2000  # Nelder–Mead evaluations of the linearised error per refinement


def pooled(rows: np.ndarray, size: int, width: float) -> tuple[np.ndarray, ...]:
    """Per grid point: the `check` rows' columns 1.. summed with Gaussian weights `width` grid points wide, the
    nearest row's own columns, and the least |Δx|² sum taken as nonzero."""
    t = np.arange(size)[:, None]
    weight = np.exp(-0.5 * ((t - rows[:, 0]) / width) ** 2)
    nearest = rows[np.abs(t - rows[:, 0]).argmin(axis=1)]
    tiny = 1e-12 * max(float(rows[:, 2].max()), 1e-300)
    return weight @ rows[:, 1:], nearest[:, 1:], tiny


def response_curve(rows: np.ndarray, size: int, width: float = RESPONSE_WIDTH) -> np.ndarray:
    """j at each grid point: the least-squares fit of ΔD ≈ j·Δx to the `check` rows, each weighted
    by a Gaussian `width` grid points wide (the nearest row's own ratio where no row is near).

    It is how much of a state error the model's prediction follows at that noise level: about 0
    at high σ (the prediction ignores it), about 1 near σ = 0 (the state is the image).
    """
    sums, nearest, tiny = pooled(rows, size, width)
    num, den = sums[:, 0], sums[:, 1]
    return np.where(den > tiny, num / np.maximum(den, tiny), nearest[:, 0] / np.maximum(nearest[:, 1], tiny))


def mismatch_curve(rows: np.ndarray, size: int, width: float = RESPONSE_WIDTH) -> np.ndarray:
    """ρ at each grid point: what the fit of `response_curve` leaves, |ΔD − j·Δx|² per |Δx|², pooled alike from
    the `check` rows (their fourth column |ΔD|²).

    It is the part of the model's response that no single factor j explains (the model answers
    a state error along other directions too): on the demo EPS model up to about 0.9 of |Δx|²
    around σ ≈ 1 in 5-step searches, a few hundredths in 10-step ones.
    """
    sums, nearest, tiny = pooled(rows, size, width)
    num, den, square = sums[:, 0], sums[:, 1], sums[:, 2]
    own = (nearest[:, 2] - nearest[:, 0] ** 2 / np.maximum(nearest[:, 1], tiny)) / np.maximum(nearest[:, 1], tiny)
    rho = np.where(den > tiny, (square - num ** 2 / np.maximum(den, tiny)) / np.maximum(den, tiny), own)
    return np.maximum(rho, 0.0)


def linearised_error(sigmas: np.ndarray, teacher: Teacher, sampler: Sampler, response: np.ndarray,
                     mismatch: np.ndarray | None = None) -> float:
    """Squared error per dimension at the final sample of `sampler` on `sigmas`, from the teacher's Gram matrix alone.

    The sampler runs on coefficient vectors over the teacher's vectors (X_0.., D_0..): the
    model's prediction at a state is the teacher's prediction at that σ plus
    j(σ)·(state − teacher's state) (`response_curve`), which is linear, so the run is exact for
    a model that responds so. Teacher vectors between grid points (a multi-stage sampler's
    in-between calls too) are interpolated linearly in log σ, and held below the grid. The
    start is the teacher's state at σ_0 (exact when σ_0 is the teacher's own start). The run is
    the sampler's own function (`function_run`), or, for a sampler whose step is one of vrg_core's
    own (`Sampler.linear_step`), that step in numpy (`linear_run`: the same to rounding, ~10× faster).

    With `mismatch` (ρ per grid point, `mismatch_curve`) the model's unexplained response is
    added: at each call a change of the prediction of squared size ρ(σ)·|state − teacher's state|²,
    independent from call to call, that reaches the final sample as the sampler (and the model's
    j-response after it) carries a change of that call's prediction: Σ_k g_k²·ρ_k·|Δx_k|², g_k
    from the same run. A schedule the sampler is ill-conditioned on (large g_k, large detours
    Δx_k) is predicted as bad as it samples.
    """
    G = len(teacher.grid)
    run = linear_run if sampler.linear_step else function_run
    final, unexplained = run(np.asarray(sigmas, dtype=np.float64), teacher, sampler, response, mismatch)
    final[2 * G - 1] -= 1.0  # against the teacher's final sample D_{G-1}
    return float(final @ teacher.gram @ final / teacher.numel) + unexplained


def teacher_vectors(i: int, f: float, size: int, extra: int = 0) -> np.ndarray:
    """[2, 2·size + extra]: the teacher's state and prediction a fraction f of the way from grid point i to i + 1, as
    coefficients of X_0..X_{size−1}, D_0..D_{size−1} (and `extra` zeros)."""
    vectors = np.zeros((2, 2 * size + extra))
    vectors[0, i], vectors[0, i + 1], vectors[1, size + i], vectors[1, size + i + 1] = 1 - f, f, 1 - f, f
    return vectors


class Unexplained:
    """The mismatch term of one run (`linearised_error`): each model call gets its own coefficient after the
    teacher's 2G, a unit change of that call's prediction, whose final coefficient is the call's gain g_k."""

    def __init__(self, teacher: Teacher, mismatch: np.ndarray | None, calls: int):
        self.teacher, self.mismatch = teacher, mismatch
        self.extra = 0 if mismatch is None else calls
        self.size: list[float] = []  # ρ_k·|Δx_k|² summed over the samples

    def add(self, deviation: np.ndarray, i: int, f: float) -> int:
        """Note a call whose state is `deviation` from the teacher's (first 2G coefficients) at (i, f); the
        coefficient its prediction's change goes to (only with a mismatch)."""
        k = len(self.size)
        if k == self.extra:
            raise VRGError(f"the sampler made more than the {self.extra} model calls its calls per step allow")
        G = len(self.teacher.grid)
        rho = (1 - f) * self.mismatch[i] + f * self.mismatch[i + 1]
        self.size.append(float(rho * (deviation[:2 * G] @ self.teacher.gram @ deviation[:2 * G])))
        return 2 * G + k

    def total(self, final: np.ndarray) -> float:
        """Σ_k g_k²·ρ_k·|Δx_k|² per dimension, from the run's `final` coefficients."""
        G = len(self.teacher.grid)
        gain = final[2 * G:2 * G + len(self.size)]
        return float(gain ** 2 @ np.array(self.size)) / self.teacher.numel if self.size else 0.0


def function_run(sigmas: np.ndarray, teacher: Teacher, sampler: Sampler, response: np.ndarray,
                 mismatch: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """The final state's coefficients after the sampler's own function on `sigmas`, and the mismatch term
    (`linearised_error`)."""
    G = len(teacher.grid)
    unexplained = Unexplained(teacher, mismatch, sampler.calls_per_step * (len(sigmas) - 1))

    def model(state: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        (i,), (f,) = teacher.brackets(np.array([float(sigma.reshape(-1)[0])]))
        x, d = torch.from_numpy(teacher_vectors(i, f, G, unexplained.extra))[:, None]
        deviation = state - x
        prediction = d + float((1 - f) * response[i] + f * response[i + 1]) * deviation
        if unexplained.extra:
            prediction[0, unexplained.add(deviation[0].double().numpy(), i, f)] += 1.0
        return prediction

    (i,), (f,) = teacher.brackets(sigmas[:1])
    with torch.no_grad():
        final = sampler.run(model, torch.from_numpy(teacher_vectors(i, f, G, unexplained.extra)[:1]), sigmas)
    final = final[0].numpy().copy()
    return final[:2 * G], unexplained.total(final)


def linear_run(sigmas: np.ndarray, teacher: Teacher, sampler: Sampler, response: np.ndarray,
               mismatch: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """The final state's coefficients after `sampler.linear_step`'s steps (`coefficients.step_coefficients`) on
    `sigmas`, and the mismatch term (`linearised_error`)."""
    G = len(teacher.grid)
    unexplained = Unexplained(teacher, mismatch, len(sigmas) - 1)
    c_x, c_d, c_old = step_coefficients(sampler.linear_step, np.r_[np.nan, sigmas[:-2]], sigmas[:-1], sigmas[1:])
    lower, frac = teacher.brackets(sigmas[:-1])
    j = (1 - frac) * response[lower] + frac * response[lower + 1]
    x, old = teacher_vectors(lower[0], frac[0], G, unexplained.extra)[0], 0.0
    for k in range(len(sigmas) - 1):
        teacher_x, teacher_d = teacher_vectors(lower[k], frac[k], G, unexplained.extra)
        d = teacher_d + j[k] * (x - teacher_x)
        if unexplained.extra:
            d[unexplained.add(x - teacher_x, lower[k], frac[k])] += 1.0
        x, old = c_x[k] * x + c_d[k] * d + c_old[k] * old, d
    return x[:2 * G], unexplained.total(x)


def refine(start: np.ndarray, teacher: Teacher, sampler: Sampler, response: np.ndarray, table: ErrorTable | None,
           data_variance: float, variance_weight: float, mismatch: np.ndarray | None = None) -> np.ndarray:
    """Nelder–Mead from schedule `start` on `linearised_error` (with `mismatch`) + `propagated_variance`, with no
    model calls.

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
        return (linearised_error(sigmas, teacher, sampler, response, mismatch)
                + propagated_variance(sigmas, table, data_variance, variance_weight))

    inner = np.clip(start[1:-1], low, top * (1 - 1e-6))
    result = minimize(objective, np.log(inner), method="Nelder-Mead",
                      options={"maxfev": REFINE_EVALUATIONS, "xatol": 1e-3, "fatol": 1e-9})
    return schedule(result.x)
