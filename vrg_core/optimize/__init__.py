"""Optimise a schedule's noise levels to minimise its cumulative prediction error (CPE).

Schedules are descending σ in the table's model units, σ_0 the start and σ_N the end, which
stays. The problem's variables (the paper's α_j = ᾱ_j / ᾱ_{j−1}, each within its box set by the
learning portion γ) are set up in `problem`.

Start modes:
* ``fixed``: σ_0 is returned bit-exactly (Π α_j held); CPE never rises.
* ``paper``: the official soft penalty λ·(ᾱ_start − ᾱ_start,base)² lets the start move.

Methods:
* ``exact`` (`exact_solver`): dynamic programme over exact steps, Newton polish, kink sweep and
  zoomed grid. Deterministic, milliseconds.
* ``paper`` (`paper_solver`): the official reparameterisation trained by SGD with momentum — for
  reproduction only.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Literal

import numpy as np

from ..errors import VRGError
from ..error_table import INTERPOLATIONS, ErrorTable, Interp
from ..objective import as_schedule, cumulative_error
from .exact_solver import solve_exact
from .paper_solver import solve_paper
from .problem import ALPHA_BAR_FLOOR, set_up

StartMode = Literal["fixed", "paper"]
Method = Literal["exact", "paper"]
START_MODES: tuple[str, ...] = ("fixed", "paper")
METHODS: tuple[str, ...] = ("exact", "paper")

# Relative slack allowed between a schedule's levels and the table's measured range.
_RANGE_SLACK = 0.01


@dataclasses.dataclass(frozen=True)
class OptimizeResult:
    """An optimised schedule (descending σ, same length as the base) and how it was found."""

    sigmas: np.ndarray
    base_sigmas: np.ndarray
    cpe_before: float
    cpe_after: float
    gamma: float
    start: str
    method: str
    interp: str
    status: str
    seconds: float

    @property
    def start_sigma_before(self) -> float:
        return float(self.base_sigmas[0])

    @property
    def start_sigma_after(self) -> float:
        return float(self.sigmas[0])

    @property
    def improvement(self) -> float:
        """Relative CPE change (negative is better)."""
        return self.cpe_after / self.cpe_before - 1.0


def auto_gamma(steps: int) -> float:
    """The paper's learning portion: 0.05 for ≤ 10 steps, else 0.01."""
    return 0.05 if steps <= 10 else 0.01


def check_schedule_in_table(s: np.ndarray, table: ErrorTable) -> None:
    """Refuse a schedule whose noise levels lie outside what the table measured."""
    inner = s[:-1]
    hi, lo = float(inner.max()), float(inner.min())
    if hi > table.sigma_max * (1 + _RANGE_SLACK) or lo < table.sigma_min * (1 - _RANGE_SLACK):
        raise VRGError(
            f"sigmas span [{lo:.4g}, {hi:.4g}] but the error table covers [{table.sigma_min:.4g}, {table.sigma_max:.4g}]; "
            f"use a table profiled on this model ({table.kind.label}) or a schedule from the same model"
        )


def _checked_settings(
    s: np.ndarray, table: ErrorTable, gamma: float | str, start: str, method: str, interp: str, lam: float,
) -> float:
    """Refuse unknown choices and settings out of range; returns γ as a number ("auto" resolved)."""
    if start not in START_MODES:
        raise VRGError(f"start mode {start!r} is unknown; use one of {START_MODES}")
    if method not in METHODS:
        raise VRGError(f"method {method!r} is unknown; use one of {METHODS}")
    if interp not in INTERPOLATIONS:
        raise VRGError(f"interpolation {interp!r} is unknown; use one of {INTERPOLATIONS}")
    if method == "paper" and start == "fixed":
        raise VRGError("method 'paper' is the official optimiser, which lets the start move; use start='paper' with it")
    if gamma == "auto":
        gamma = auto_gamma(len(s) - 1)
    try:
        gamma = float(gamma)
    except (TypeError, ValueError):
        raise VRGError(f"gamma must be a number or 'auto', got {gamma!r}") from None
    if not 0.0 <= gamma <= 1.0:
        raise VRGError(f"gamma {gamma} is outside [0, 1]; the paper uses 0.01–0.05")
    if not (np.isfinite(lam) and lam >= 0):
        raise VRGError(f"lambda {lam} must be a finite number ≥ 0")
    if table.kind.is_flow and s[0] > 1.0:
        raise VRGError(f"sigmas start at {s[0]:.4g} but a flow (CONST) model's noise levels stop at 1; use this model's scheduler")
    check_schedule_in_table(s, table)
    return gamma


def optimize_sigmas(
    sigmas,
    table: ErrorTable,
    gamma: float | str = "auto",
    start: StartMode = "fixed",
    lam: float = 100.0,
    method: Method = "exact",
    interp: Interp = "loglog",
    epochs: int = 3000,
    lr: float = 2e-4,
    seed: int = 0,
    grid_points: int = 128,
    should_stop: Callable[[], bool] | None = None,
) -> OptimizeResult:
    """Minimise CPE over schedules near `sigmas` (descending, σ_0 the start).

    Returns the same number of levels, strictly decreasing, with the last σ kept; with
    `start="fixed"` the first σ is kept bit-exactly and the CPE never rises.
    `grid_points` sets the slices per level of `method="exact"`'s global search; `epochs`, `lr` and
    `seed` apply to `method="paper"` only.
    """
    t0 = time.perf_counter()
    s = as_schedule(sigmas)
    gamma = _checked_settings(s, table, gamma, start, method, interp, lam)
    p = set_up(s, table, gamma, start, lam, interp)
    if method == "exact":
        log_alpha, status = solve_exact(p, start == "fixed", grid_points)
    else:
        log_alpha, status = solve_paper(p, gamma, epochs, lr, seed, should_stop)
    out = p.schedule(log_alpha)
    if start == "fixed" or p.start_alpha_bar <= ALPHA_BAR_FLOOR:
        out[0] = s[0]
    out[-1] = s[-1]
    before = cumulative_error(s, table, interp).total
    if np.any(np.diff(out) >= 0) or not np.all(np.isfinite(out)):
        out, status = s.copy(), status + "; result not strictly decreasing, base kept"
    after = cumulative_error(out, table, interp).total
    if start == "fixed" and after > before:
        out, after, status = s.copy(), before, status + "; no improvement found, base kept"
    return OptimizeResult(out, s, before, after, gamma, start, method, interp, status, time.perf_counter() - t0)
