"""The exact solver's dynamic programmes over the levels of `problem`.

The loss is a chain of pairwise terms (σ_j − σ_{j−1})² · w(σ_j) and the box constrains
consecutive pairs of levels, so a programme over the levels clean→noisy finds the best path
among its candidates. Levels are y = log ᾱ (natural log, y < 0); results are log α.
"""

from __future__ import annotations

import numpy as np

from ..parameterization import sigma_from_alpha_bar
from .problem import Problem, hold_sum


def vertex_programme(p: Problem, hold_start: bool, bins: int, choices: int = 5) -> np.ndarray:
    """Global search over paths whose steps are exact: each α_j at its lower bound, its upper
    bound or `choices` − 2 points between.

    Optimal schedules run along the box's edges for many steps in a row, which a fixed grid of
    ᾱ cannot follow exactly; here every state is an exact log ᾱ reached by such steps, and per
    level the best state of each of `bins` slices of the reachable range is kept. With the
    start held, the last step lands on it exactly. Returns log α of the best path.
    """
    kind, n = p.table.kind, len(p.base_log_alpha)
    lo, hi = p.lower, p.upper
    target = p.log_ab_end + float(np.sum(p.base_log_alpha))
    y_lo, y_hi = p.log_ab_end + np.cumsum(lo), p.log_ab_end + np.cumsum(hi)
    if hold_start:
        y_lo = np.maximum(y_lo, target - np.append(np.cumsum(hi[::-1])[::-1][1:], 0.0))
        y_hi = np.minimum(y_hi, target - np.append(np.cumsum(lo[::-1])[::-1][1:], 0.0))
    fractions = np.linspace(0.0, 1.0, choices)
    y, sigma, value = np.array([p.log_ab_end]), np.array([p.end_sigma]), np.zeros(1)
    levels = []
    tol = 1e-12
    for j in range(n):
        if hold_start and j == n - 1:
            parent = np.arange(len(y))
            cand = np.full(len(y), target)
            ok = (cand - y >= lo[j] - tol) & (cand - y <= hi[j] + tol)
        else:
            parent = np.repeat(np.arange(len(y)), choices)
            cand = (y[:, None] + (lo[j] + (hi[j] - lo[j]) * fractions)[None, :]).ravel()
            ok = (cand >= y_lo[j] - tol) & (cand <= y_hi[j] + tol) & (cand < 0.0)
        cand, parent = cand[ok], parent[ok]
        s = sigma_from_alpha_bar(np.exp(cand), kind)
        total = value[parent] + (s - sigma[parent]) ** 2 * p.table.interpolate(s, p.interp)[0]
        span = max(float(y_hi[j] - y_lo[j]), 1e-300)
        slice_ = np.minimum(((cand - y_lo[j]) / span * bins).astype(np.int64), bins - 1)
        order = np.lexsort((total, slice_))
        first = np.append(True, slice_[order][1:] != slice_[order][:-1])
        keep = order[first]
        y, sigma, value = cand[keep], s[keep], total[keep]
        levels.append((y, parent[keep]))
    value = value + p.penalty * (np.exp(y) - p.start_alpha_bar) ** 2
    k = int(np.argmin(value))
    path = np.empty(n)
    for j in range(n - 1, -1, -1):
        path[j] = levels[j][0][k]
        k = levels[j][1][k]
    return np.clip(np.diff(np.append(p.log_ab_end, path)), lo, hi)


def zoom_programme(p: Problem, x: np.ndarray, hold_start: bool, points: int, radius: np.ndarray) -> np.ndarray:
    """The grid programme again on `points` candidates per level within ±radius (in log ᾱ) of the path of `x`.

    All levels move at once on this product grid (the centre, the current path, is a
    candidate), so it finds moves that change which bounds are active along the whole
    schedule — what a local step cannot. Returns log α, never worse than `x`.
    """
    n = len(x)
    y = p.log_ab_end + np.cumsum(x)
    cand = y[:, None] + radius[:, None] * np.linspace(-1.0, 1.0, points)[None, :]
    cand[:, points // 2] = y
    cand = np.minimum(cand, -1e-12)
    if hold_start:
        cand[-1] = y[-1]
    sigma = sigma_from_alpha_bar(np.exp(cand), p.table.kind)
    w = p.table.interpolate(sigma.ravel(), p.interp)[0].reshape(n, points)
    prev_y = np.vstack([np.full(points, p.log_ab_end), cand[:-1]])
    prev_sigma = np.vstack([np.full(points, p.end_sigma), sigma[:-1]])
    step = cand[:, None, :] - prev_y[:, :, None]
    tol = 1e-12
    allowed = (step >= p.lower[:, None, None] - tol) & (step <= p.upper[:, None, None] + tol)
    cost = np.where(allowed, (sigma[:, None, :] - prev_sigma[:, :, None]) ** 2 * w[:, None, :], np.inf)
    value = cost[0, 0]
    back = np.zeros((n, points), dtype=np.intp)
    columns = np.arange(points)
    for j in range(1, n):
        total = value[:, None] + cost[j]
        back[j] = np.argmin(total, axis=0)
        value = total[back[j], columns]
    value = value + p.penalty * (np.exp(cand[-1]) - p.start_alpha_bar) ** 2
    k = int(np.argmin(value))
    c = points // 2
    current = float(np.sum(cost[:, c, c])) + p.penalty * (np.exp(y[-1]) - p.start_alpha_bar) ** 2
    if not value[k] < current:
        return x
    path = np.empty(n)
    for j in range(n - 1, -1, -1):
        path[j] = cand[j, k]
        k = back[j, k]
    out = np.clip(np.diff(np.append(p.log_ab_end, path)), p.lower, p.upper)
    return hold_sum(out, p, float(x.sum())) if hold_start else out
