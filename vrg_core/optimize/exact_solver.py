"""Method ``exact``: the deterministic solver (milliseconds).

The loss is a chain of pairwise terms and the box constrains consecutive pairs, so a dynamic
programme over paths of exact steps (each α_j at a bound or between; `programme`) finds the
global basin; a projected Newton method on the chain (tridiagonal Hessian, analytic within each
piece of the table's interpolation; `polish`) polishes it; a sweep across the interpolation's
kinks (free start) and a finer grid programme around the result, each followed by the polish,
finish it. Works in log α (natural log), as `problem` sets it up.
"""

from __future__ import annotations

import numpy as np

from ..parameterization import sigma_from_alpha_bar
from .polish import polish
from .problem import Problem
from .programme import vertex_programme, zoom_programme

# The kink sweep costs O(N²) a swept level: longer schedules skip it.
_MAX_SWEPT = 250
# Zoomed grid programmes: rounds of passes within ± this many of the widest box (in log ᾱ) around the path, halved each pass.
_ZOOM_ROUNDS, _ZOOM_PASSES, _ZOOM_POINTS, _ZOOM_RADIUS = 2, 2, 25, 2.0


def _losses(p: Problem, y: np.ndarray) -> np.ndarray:
    """The loss of each row of levels `y` (rows of log ᾱ, clean→noisy)."""
    sigma = sigma_from_alpha_bar(np.exp(y), p.table.kind)
    w = p.table.interpolate(sigma.ravel(), p.interp)[0].reshape(sigma.shape)
    step = np.diff(sigma, axis=1, prepend=p.end_sigma)
    return np.sum(step**2 * w, axis=1) + p.penalty * (np.exp(y[:, -1]) - p.start_alpha_bar) ** 2


def _sweep(p: Problem, x: np.ndarray, points: int = 33) -> np.ndarray:
    """Each α_j strictly inside its box tried at `points` values across the box, one at a time; the
    best kept. Crosses the kinks of the table's interpolation, where the Newton polish stops."""
    x = x.copy()
    for i in np.flatnonzero((x > p.lower) & (x < p.upper)):
        shift = np.append(np.linspace(p.lower[i] - x[i], p.upper[i] - x[i], points), 0.0)
        trial = np.repeat(x[None, :], len(shift), axis=0)
        trial[:, i] = np.clip(trial[:, i] + shift, p.lower[i], p.upper[i])
        best = int(np.argmin(_losses(p, p.log_ab_end + np.cumsum(trial, axis=1))))
        x = trial[best]
    return x


def _zoom(p: Problem, x: np.ndarray, hold_start: bool) -> np.ndarray:
    """Rounds of zoomed grid programmes around `x`, each followed by the polish, while they gain."""
    width = np.full(len(x), float(np.max(p.upper - p.lower)))  # one spacing for all: coherent shifts are on the grid
    for _ in range(_ZOOM_ROUNDS):
        start = x
        for k in range(_ZOOM_PASSES):
            x = zoom_programme(p, x, hold_start, _ZOOM_POINTS, _ZOOM_RADIUS * 0.5**k * width)
        if x is start:
            break
        x = polish(p, x, hold_start)
    return x


def solve_exact(p: Problem, hold_start: bool, slices: int) -> tuple[np.ndarray, str]:
    """Exact-step programme for the global basin, Newton polish, kink sweep (free start), zoomed re-search.

    `slices` are the programme's slices a level. Returns log α and a status line."""
    x = polish(p, vertex_programme(p, hold_start, slices), hold_start)
    if not hold_start and len(x) <= _MAX_SWEPT:  # with the start held the zoomed grid below also crosses the kinks
        x = polish(p, _sweep(p, x), hold_start)
    return _zoom(p, x, hold_start), f"exact-step programme, {slices} slices a level + Newton polish + zoomed grid"
