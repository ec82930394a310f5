"""The optimisation problem: variables, their box and the loss, for one base schedule and table.

Variables are the paper's: the VP-equivalent ᾱ_j of the schedule's non-final levels,
ordered clean→noisy (j = 0 is the level next to the end σ_N, j = N−1 the start σ_0), and
α_j = ᾱ_j / ᾱ_{j−1} with ᾱ_{−1} = ᾱ(σ_N) (1 when the schedule ends at 0). The solvers work on
x_j = log α_j (natural log) or on the levels y_j = log ᾱ_j = log ᾱ_{−1} + Σ_{i≤j} x_i. Each α_j may
move within ±min(γ, α_j, 1 − α_j) of its base value ("learning portion" γ); σ_N stays.

The loss is the CPE (see `objective`) plus, in the paper start mode, the official soft penalty
λ·(ᾱ_start − ᾱ_start,base)²; σ is in the table's model units.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..error_table import ErrorTable, Interp
from ..objective import cumulative_error_grad
from ..parameterization import alpha_bar_from_sigma, dsigma_dalpha_bar, sigma_from_alpha_bar

# Keep each α_j strictly inside (0, 1) so the result stays strictly decreasing.
_BOX_SHRINK = 1.0 - 1e-6
# A flow model's σ = 1 has ᾱ = 0; it enters the problem as this ᾱ and is returned as given.
ALPHA_BAR_FLOOR = 1e-12


@dataclasses.dataclass(frozen=True)
class Problem:
    """The optimisation in log α variables, for one base schedule and table."""

    table: ErrorTable
    interp: Interp
    end_sigma: float
    log_ab_end: float  # log ᾱ_{−1}
    base_log_alpha: np.ndarray  # clean→noisy, length N
    lower: np.ndarray
    upper: np.ndarray
    penalty: float  # λ of the paper start mode, 0 for fixed
    start_alpha_bar: float
    knots: np.ndarray  # the interpolation's abscissae, ascending: ᾱ ("paper") or log σ ("loglog")
    values: np.ndarray  # w ("paper") or log w ("loglog") at the knots
    slopes: np.ndarray  # per segment

    def alpha_bars(self, log_alpha: np.ndarray) -> np.ndarray:
        return np.exp(self.log_ab_end + np.cumsum(log_alpha))

    def schedule(self, log_alpha: np.ndarray) -> np.ndarray:
        sigma = sigma_from_alpha_bar(self.alpha_bars(log_alpha), self.table.kind)
        return np.append(sigma[::-1], self.end_sigma)

    def value_and_grad(self, log_alpha: np.ndarray) -> tuple[float, np.ndarray]:
        """Loss (CPE + start penalty) and its gradient with respect to log α."""
        ab = self.alpha_bars(log_alpha)
        cpe, g_sigma = cumulative_error_grad(self.schedule(log_alpha), self.table, self.interp)
        g_ab = g_sigma[:-1][::-1] * dsigma_dalpha_bar(ab, self.table.kind)
        gap = ab[-1] - self.start_alpha_bar
        loss = cpe + self.penalty * gap**2
        g_ab[-1] += 2.0 * self.penalty * gap
        # dᾱ_j / dlog α_i = ᾱ_j for i ≤ j: a reverse cumulative sum.
        grad = np.cumsum((g_ab * ab)[::-1])[::-1]
        return float(loss), grad


def set_up(s: np.ndarray, table: ErrorTable, gamma: float, start: str, lam: float, interp: Interp) -> Problem:
    """The problem around schedule `s` (descending σ, end included) with learning portion `gamma`;
    `lam` is λ of the paper start mode, ignored with `start="fixed"`."""
    kind = table.kind
    ab = np.maximum(alpha_bar_from_sigma(s[:-1][::-1], kind), ALPHA_BAR_FLOOR)
    ab_end = float(alpha_bar_from_sigma(s[-1], kind))
    log_alpha = np.diff(np.log(np.append(ab_end, ab)))
    alpha = np.exp(log_alpha)
    radius = np.minimum(gamma, np.minimum(alpha, 1.0 - alpha)) * _BOX_SHRINK
    lower, upper = np.log(alpha - radius), np.log(alpha + radius)
    if interp == "paper":
        knots, values = alpha_bar_from_sigma(table.sigmas, kind)[::-1], table.smoothed_mse[::-1]
    else:
        knots, values = np.log(table.sigmas), np.log(table.smoothed_mse)
    return Problem(
        table, interp, float(s[-1]), float(np.log(ab_end)), log_alpha, lower, upper,
        lam if start == "paper" else 0.0, float(ab[-1]), knots, values, np.diff(values) / np.diff(knots),
    )


def hold_sum(x: np.ndarray, p: Problem, total: float) -> np.ndarray:
    """Spread the residual of Σ log α against `total` over the levels with room, most room first."""
    x = x.copy()
    for k in np.argsort(-np.minimum(x - p.lower, p.upper - x), kind="stable"):
        residual = total - float(x.sum())
        if residual == 0.0:
            break
        x[k] = np.clip(x[k] + residual, p.lower[k], p.upper[k])
    return x
