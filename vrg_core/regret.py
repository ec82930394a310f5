"""What a profile's sampling noise costs the user: the regret of the schedule optimised from it.

Regret: how much higher the true cumulative prediction error (CPE) of the schedule optimised
from a measured table is than that of the schedule optimised from the true error curve,
relative. `schedule_regret_estimate` estimates it from the table alone by parametric
resampling: the table's own (pooled) curve stands for the truth, each draw re-measures every
level with its standard error, the schedule is re-optimised from the draw and judged under
the truth.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from .error_table import ErrorTable
from .errors import VRGError
from .objective import as_schedule, cumulative_error
from .optimize import optimize_sigmas
from .parameterization import flow_shift_sigma


@dataclasses.dataclass(frozen=True)
class RegretEstimate:
    """Expected relative CPE excess of the schedule optimised from the table (`mean`), its 90th percentile (`high`)."""

    mean: float
    high: float
    draws: int
    steps: int
    seconds: float


def default_schedule(table: ErrorTable, steps: int = 10) -> np.ndarray:
    """The schedule the estimate is made for: Karras (ρ 7) over the table's range, or for a flow
    table the shift-3 "simple" schedule within it; ending at 0."""
    if table.kind.is_flow:
        sigma = np.clip(flow_shift_sigma(np.linspace(1.0, 0.0, steps + 1)[:-1], 3.0), table.sigma_min, table.sigma_max)
    else:
        ramp = np.linspace(0.0, 1.0, steps)
        lo, hi = table.sigma_min ** (1 / 7), table.sigma_max ** (1 / 7)
        sigma = (hi + ramp * (lo - hi)) ** 7
    return np.append(sigma, 0.0)


def _redrawn(table: ErrorTable, w: np.ndarray) -> ErrorTable:
    """`table` with level means `w` and the same counts and standard errors."""
    n, se = table.count, table.standard_error
    total = n * w
    return ErrorTable(table.kind, table.sigmas, n, total, se**2 * n * (n - 1) + total**2 / n,
                      np.zeros_like(w), table.info)


def schedule_regret_estimate(table: ErrorTable, sigmas=None, steps: int = 10, draws: int = 16, seed: int = 0,
                             start: str = "fixed", interp: str = "loglog") -> RegretEstimate:
    """Regret of the VRG schedule (γ auto, `start`) optimised from `table`, estimated from its standard errors.

    `sigmas` is the base schedule (default: `default_schedule(table, steps)`). Deterministic for
    a given `seed`; `draws` optimisations of milliseconds each.
    """
    t0 = time.perf_counter()
    se = table.standard_error
    if np.any(table.count < 2) or not np.any(se > 0):
        raise VRGError("the table has no standard errors (levels with fewer than 2 samples); "
                       "profile with at least 2 samples per level to estimate its regret")
    base = default_schedule(table, steps) if sigmas is None else as_schedule(sigmas)
    best = cumulative_error(optimize_sigmas(base, table, start=start, interp=interp).sigmas, table, interp).total
    truth = table.smoothed_mse
    spread = se / table.mean_mse  # relative standard error of each level's mean
    rng = np.random.default_rng(seed)
    regrets = []
    for _ in range(draws):
        w = truth * np.exp(spread * rng.standard_normal(len(truth)) - 0.5 * spread**2)
        schedule = optimize_sigmas(base, _redrawn(table, w), start=start, interp=interp).sigmas
        regrets.append(cumulative_error(schedule, table, interp).total / best - 1.0)
    regrets = np.maximum(np.array(regrets), 0.0)
    return RegretEstimate(float(np.mean(regrets)), float(np.quantile(regrets, 0.9)), draws, len(base) - 1,
                          time.perf_counter() - t0)
