"""Optimise a schedule's noise levels to minimise its cumulative prediction error (CPE).

Variables are the paper's: the VP-equivalent ᾱ_j of the schedule's non-final levels,
ordered clean→noisy (j = 0 is the level next to the end σ_N, j = N−1 the start σ_0), and
α_j = ᾱ_j / ᾱ_{j−1} with ᾱ_{−1} = ᾱ(σ_N) (1 when the schedule ends at 0). Each α_j may
move within ±min(γ, α_j, 1 − α_j) of its base value ("learning portion" γ); σ_N stays.

Start modes:
* ``fixed``: σ_0 is returned bit-exactly (Π α_j held); CPE never rises.
* ``paper``: the official soft penalty λ·(ᾱ_start − ᾱ_start,base)² lets the start move.

Methods:
* ``exact``: the loss is a chain of pairwise terms and the box constrains consecutive pairs,
  so a dynamic programme over paths of exact steps (each α_j at a bound or between) finds
  the global basin; a projected Newton method on the chain (tridiagonal Hessian, analytic
  within each piece of the table's interpolation) polishes it; a sweep across the
  interpolation's kinks (free start) and a finer grid programme around the result, each
  followed by the polish, finish it. Deterministic, milliseconds.
* ``paper``: the official reparameterisation (a 1000→2000→2000→N linear network whose
  tanh output scales the box) trained by SGD with momentum — for reproduction only.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Literal

import numpy as np
import torch
from scipy.linalg import LinAlgError, solveh_banded

from .errors import Cancelled, VRGError
from .error_table import INTERPOLATIONS, ErrorTable, Interp
from .objective import as_schedule, cumulative_error, cumulative_error_grad
from .parameterization import alpha_bar_from_sigma, dsigma_dalpha_bar, sigma_from_alpha_bar

StartMode = Literal["fixed", "paper"]
Method = Literal["exact", "paper"]
START_MODES: tuple[str, ...] = ("fixed", "paper")
METHODS: tuple[str, ...] = ("exact", "paper")

# Keep each α_j strictly inside (0, 1) so the result stays strictly decreasing.
_BOX_SHRINK = 1.0 - 1e-6
# A flow model's σ = 1 has ᾱ = 0; it enters the problem as this ᾱ and is returned as given.
_ALPHA_BAR_FLOOR = 1e-12
# The kink sweep costs O(N²) a swept level: longer schedules skip it.
_MAX_SWEPT = 250
# The polish stops when a step gains less than this fraction of the loss.
_POLISH_TOL = 1e-8
# Zoomed grid programmes: rounds of passes within ± this many of the widest box (in log ᾱ) around the path, halved each pass.
_ZOOM_ROUNDS, _ZOOM_PASSES, _ZOOM_POINTS, _ZOOM_RADIUS = 2, 2, 25, 2.0
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


@dataclasses.dataclass(frozen=True)
class _Problem:
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

    @property
    def free(self) -> np.ndarray:
        return self.upper > self.lower

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


def _problem(s: np.ndarray, table: ErrorTable, gamma: float, start: str, lam: float, interp: Interp) -> _Problem:
    kind = table.kind
    ab = np.maximum(alpha_bar_from_sigma(s[:-1][::-1], kind), _ALPHA_BAR_FLOOR)
    ab_end = float(alpha_bar_from_sigma(s[-1], kind))
    log_alpha = np.diff(np.log(np.append(ab_end, ab)))
    alpha = np.exp(log_alpha)
    radius = np.minimum(gamma, np.minimum(alpha, 1.0 - alpha)) * _BOX_SHRINK
    lower, upper = np.log(alpha - radius), np.log(alpha + radius)
    if interp == "paper":
        knots, values = alpha_bar_from_sigma(table.sigmas, kind)[::-1], table.smoothed_mse[::-1]
    else:
        knots, values = np.log(table.sigmas), np.log(table.smoothed_mse)
    return _Problem(
        table, interp, float(s[-1]), float(np.log(ab_end)), log_alpha, lower, upper,
        lam if start == "paper" else 0.0, float(ab[-1]), knots, values, np.diff(values) / np.diff(knots),
    )


def _vertex_programme(p: _Problem, hold_start: bool, bins: int, choices: int = 5) -> np.ndarray:
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


def _zoom_programme(p: _Problem, x: np.ndarray, hold_start: bool, points: int, radius: np.ndarray) -> np.ndarray:
    """The grid programme again on `points` candidates per level within ±radius of the path of `x`.

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
    return _hold_sum(out, p, float(x.sum())) if hold_start else out


def _sigma_derivatives(y: np.ndarray, kind) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """σ and its first two derivatives with respect to y = log ᾱ (y < 0)."""
    e = np.exp(-y)
    r = np.sqrt(e - 1.0)  # noise/signal amplitude
    r1 = -e / (2.0 * r)
    r2 = (e - 2.0 * r1**2) / (2.0 * r)
    if not kind.is_flow:
        return r, r1, r2
    q = 1.0 + r
    return r / q, r1 / q**2, r2 / q**2 - 2.0 * r1**2 / q**3


def _interpolated(p: _Problem, y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The table's interpolation (as ErrorTable.interpolate) at levels y with σ = s: abscissa q,
    value v (w for "paper", log w for "loglog") and slope m in q (0 outside the table)."""
    q = np.exp(y) if p.interp == "paper" else np.log(s)
    i = np.clip(np.searchsorted(p.knots, q, side="right") - 1, 0, len(p.knots) - 2)
    inside = (q >= p.knots[0]) & (q <= p.knots[-1])
    m = np.where(inside, p.slopes[i], 0.0)
    v = np.where(inside, p.values[i] + p.slopes[i] * (q - p.knots[i]), np.where(q < p.knots[0], p.values[0], p.values[-1]))
    return q, v, m


def _loss(p: _Problem, y: np.ndarray) -> float:
    """The loss alone at levels y (the line search's trial points)."""
    s = sigma_from_alpha_bar(np.exp(y), p.table.kind)
    v = _interpolated(p, y, s)[1]
    w = v if p.interp == "paper" else np.exp(v)
    d = np.diff(s, prepend=p.end_sigma)
    return float(np.sum(d * d * w)) + p.penalty * (float(np.exp(y[-1])) - p.start_alpha_bar) ** 2


def _chain_terms(p: _Problem, y: np.ndarray, hessian: bool = True, pin: tuple[float, float] = (0.0, 0.0)):
    """Loss at levels y = log ᾱ (clean→noisy), its gradient in y and its tridiagonal Hessian.

    Term j is (σ(y_j) − σ(y_{j−1}))² · w(σ(y_j)) with σ(y_{−1}) the end; so the Hessian couples
    neighbours only. `pin = (y0, ρ)` adds ρ·(y_{N−1} − y0)², which holds the start.
    Returns (loss, gradient) or (loss, gradient, diagonal, off-diagonal); within one piece of
    the table's interpolation the derivatives are exact.
    """
    s, s1, s2 = _sigma_derivatives(y, p.table.kind)
    q, v, m = _interpolated(p, y, s)
    if p.interp == "paper":
        w = v
        w1 = w2 = m * q
    else:
        w = np.exp(v)
        w1 = m * w * s1 / s
        w2 = m * (w1 * s1 / s + w * (s2 / s - (s1 / s) ** 2))
    sb, sb1, sb2 = np.append(p.end_sigma, s[:-1]), np.append(0.0, s1[:-1]), np.append(0.0, s2[:-1])
    d = s - sb
    ab = float(np.exp(y[-1]))
    gap = ab - p.start_alpha_bar
    held, rho = pin
    loss = float(np.sum(d * d * w)) + p.penalty * gap**2 + rho * (y[-1] - held) ** 2
    grad = 2.0 * d * s1 * w + d * d * w1
    grad[:-1] -= (2.0 * d * sb1 * w)[1:]
    grad[-1] += 2.0 * p.penalty * gap * ab + 2.0 * rho * (y[-1] - held)
    if not hessian:
        return loss, grad
    diag = 2.0 * s1**2 * w + 2.0 * d * s2 * w + 4.0 * d * s1 * w1 + d * d * w2
    diag[:-1] += (2.0 * sb1**2 * w - 2.0 * d * sb2 * w)[1:]
    diag[-1] += 2.0 * p.penalty * ab * (2.0 * ab - p.start_alpha_bar) + 2.0 * rho
    off = (-2.0 * s1 * sb1 * w - 2.0 * d * sb1 * w1)[1:]
    return loss, grad, diag, off


def _block_newton_step(gy, diag, off, active: np.ndarray, hold_start: bool, damping: float):
    """Newton step in y for levels tied into blocks by the active bounds (None if no descent).

    An active bound on x_j = y_j − y_{j−1} moves levels j−1 and j together; the first block is
    tied to the fixed end when x_0 is active and, with the start held, the last block to the start.
    The reduced Hessian stays tridiagonal, so the step costs O(N).
    """
    free = ~active
    block = np.cumsum(free) - 1  # −1: tied to the end
    blocks = int(free.sum())
    solved = blocks - 1 if hold_start and blocks and block[-1] >= 0 else blocks
    if solved <= 0:
        return None
    moving = block >= 0
    grad = np.bincount(block[moving], weights=gy[moving], minlength=blocks)[:solved]
    hdiag = np.bincount(block[moving], weights=diag[moving], minlength=blocks)
    inner = ~free[1:] & (block[1:] >= 0)
    hdiag += 2.0 * np.bincount(block[1:][inner], weights=off[inner], minlength=blocks)
    edge = free[1:] & (block[:-1] >= 0)
    hoff = np.zeros(blocks)
    hoff[block[1:][edge]] = off[edge]
    hdiag, hoff = hdiag[:solved], hoff[:solved]
    scale = float(np.max(np.abs(hdiag))) or 1.0
    for _ in range(40):
        try:
            z = solveh_banded(np.vstack([hoff, hdiag + damping * scale]), -grad, check_finite=False)
            if np.all(np.isfinite(z)) and grad @ z < 0:
                dy = np.zeros(len(gy))
                keep = moving & (block < solved)
                dy[keep] = z[block[keep]]
                return dy, damping
        except (LinAlgError, ValueError):
            pass
        damping = max(1e-12, 10.0 * damping)
    return None


def _project(v: np.ndarray, lo: np.ndarray, hi: np.ndarray, total: float | None) -> np.ndarray:
    """Nearest point of the box (and, if `total` is given, of Σ = total) to `v`.

    With the sum, the answer is clip(v − μ, lo, hi): S(μ) = Σ clip(v − μ, lo, hi) is piecewise
    linear and falls through its breakpoints v − hi (a level leaves its upper bound) and
    v − lo (it reaches its lower bound); μ is read off between the two that bracket `total`.
    """
    x = np.clip(v, lo, hi)
    if total is None:
        return x
    points = np.concatenate([v - hi, v - lo])
    order = np.argsort(points, kind="stable")
    points = points[order]
    turn = np.where(order < len(v), -1.0, 1.0)  # change of slope at each breakpoint
    slope = np.cumsum(turn)[:-1]
    level = np.concatenate([[float(hi.sum())], float(hi.sum()) + np.cumsum(slope * np.diff(points))])
    k = int(np.clip(np.searchsorted(-level, -total, side="left"), 1, len(points) - 1))
    drop = level[k - 1] - level[k]
    mu = points[k - 1] + ((level[k - 1] - total) / drop * (points[k] - points[k - 1]) if drop > 0 else 0.0)
    return np.clip(v - mu, lo, hi)


def _polish(p: _Problem, x: np.ndarray, hold_start: bool, iterations: int = 200) -> np.ndarray:
    """Local projected Newton on log α from `x` within the box; every accepted step lowers the loss.

    The loss is a chain in y = log ᾱ, so the Newton system over the levels left free by the
    active bounds is tridiagonal (exact within each piece of the table's interpolation). A bound
    is active when the gradient (net of the held start's multiplier) pushes out of the box.
    """
    lo, hi = p.lower, p.upper
    width = hi - lo
    total = float(x.sum()) if hold_start else None
    x = np.where(x - lo <= 1e-10 * width, lo, np.where(hi - x <= 1e-10 * width, hi, x))
    if hold_start:
        x = _hold_sum(x, p, total)
    y = p.log_ab_end + np.cumsum(x)
    f, gy, diag, off = _chain_terms(p, y)
    damping = 0.0
    for _ in range(iterations):
        gx = np.cumsum(gy[::-1])[::-1]  # dloss/dx_i: levels i..N−1 move together
        at_lo, at_hi = (x <= lo) & (width > 0), (x >= hi) & (width > 0)
        if hold_start:  # only moves with Σ dx = 0: gx counts up to a multiplier
            inside = ~(at_lo | at_hi) & (width > 0)
            if inside.any():
                gx = gx - float(np.mean(gx[inside]))
            elif at_lo.any() and at_hi.any():
                gx = gx - 0.5 * (float(np.min(gx[at_lo])) + float(np.max(gx[at_hi])))
        active = (width <= 0) | (at_lo & (gx >= 0)) | (at_hi & (gx <= 0))
        found = _block_newton_step(gy, diag, off, active, hold_start, damping)
        if found is None:
            break
        dy, damping = found
        step = np.diff(np.append(0.0, dy))
        move = ~active
        t = 1.0
        for _ in range(12):
            xn = x.copy()  # the active levels stay; the moving ones are projected (with the held sum)
            xn[move] = _project(x[move] + t * step[move], lo[move], hi[move],
                                None if total is None else total - float(x[~move].sum()))
            yn = p.log_ab_end + np.cumsum(xn)
            fn = _loss(p, yn)
            if fn < f and fn <= f + 1e-4 * min(0.0, float(gx @ (xn - x))):
                break
            t *= 0.3
        else:
            break
        damping = damping * 0.1 if t == 1.0 else max(1e-12, damping * 4.0)
        if damping < 1e-12:
            damping = 0.0
        converged = f - fn <= _POLISH_TOL * abs(f)
        x, y = xn, yn
        f, gy, diag, off = _chain_terms(p, y)
        if converged:
            break
    return x


def _hold_sum(x: np.ndarray, p: _Problem, total: float) -> np.ndarray:
    """Spread the residual of Σ log α against `total` over the levels with room, most room first."""
    x = x.copy()
    for k in np.argsort(-np.minimum(x - p.lower, p.upper - x), kind="stable"):
        residual = total - float(x.sum())
        if residual == 0.0:
            break
        x[k] = np.clip(x[k] + residual, p.lower[k], p.upper[k])
    return x


def _losses(p: _Problem, y: np.ndarray) -> np.ndarray:
    """The loss of each row of levels `y` (rows of log ᾱ, clean→noisy)."""
    sigma = sigma_from_alpha_bar(np.exp(y), p.table.kind)
    w = p.table.interpolate(sigma.ravel(), p.interp)[0].reshape(sigma.shape)
    step = np.diff(sigma, axis=1, prepend=p.end_sigma)
    return np.sum(step**2 * w, axis=1) + p.penalty * (np.exp(y[:, -1]) - p.start_alpha_bar) ** 2


def _sweep(p: _Problem, x: np.ndarray, hold_start: bool, points: int = 33) -> np.ndarray:
    """Each α_j strictly inside its box tried at `points` values across the box (with the start held,
    against the next such α_j); the best kept. Crosses the kinks of the table's interpolation, where
    the Newton polish stops."""
    x = x.copy()
    inside = np.flatnonzero((x > p.lower) & (x < p.upper))
    for m, i in enumerate(inside):
        partner = -1
        if hold_start:
            if len(inside) < 2:
                break
            partner = int(inside[m + 1] if m + 1 < len(inside) else inside[m - 1])
        lo, hi = p.lower[i] - x[i], p.upper[i] - x[i]
        if partner >= 0:
            lo, hi = max(lo, x[partner] - p.upper[partner]), min(hi, x[partner] - p.lower[partner])
        shift = np.append(np.linspace(lo, hi, points), 0.0)
        trial = np.repeat(x[None, :], len(shift), axis=0)
        trial[:, i] += shift
        if partner >= 0:
            trial[:, partner] -= shift
        trial[:, i] = np.clip(trial[:, i], p.lower[i], p.upper[i])
        if partner >= 0:
            trial[:, partner] = np.clip(trial[:, partner], p.lower[partner], p.upper[partner])
        best = int(np.argmin(_losses(p, p.log_ab_end + np.cumsum(trial, axis=1))))
        x = trial[best]
    return x


def _zoom(p: _Problem, x: np.ndarray, hold_start: bool) -> np.ndarray:
    """Rounds of zoomed grid programmes around `x`, each followed by the polish, while they gain."""
    width = np.full(len(x), float(np.max(p.upper - p.lower)))  # one spacing for all: coherent shifts are on the grid
    for _ in range(_ZOOM_ROUNDS):
        start = x
        for k in range(_ZOOM_PASSES):
            x = _zoom_programme(p, x, hold_start, _ZOOM_POINTS, _ZOOM_RADIUS * 0.5**k * width)
        if x is start:
            break
        x = _polish(p, x, hold_start)
    return x


def _solve_exact(p: _Problem, hold_start: bool, slices: int) -> tuple[np.ndarray, str]:
    """Exact-step programme for the global basin, Newton polish, kink sweep (free start), zoomed re-search."""
    x = _polish(p, _vertex_programme(p, hold_start, slices), hold_start)
    if not hold_start and len(x) <= _MAX_SWEPT:  # with the start held the zoomed grid below also crosses the kinks
        x = _polish(p, _sweep(p, x, hold_start), hold_start)
    return _zoom(p, x, hold_start), f"exact-step programme, {slices} slices a level + Newton polish + zoomed grid"


class _PaperReparam(torch.nn.Module):
    """The official network: a fixed input of 0.5s through three linear layers, tanh-scaled box."""

    def __init__(self, base_alpha: np.ndarray, radius: np.ndarray):
        super().__init__()
        self.register_buffer("base", torch.tensor(base_alpha, dtype=torch.float64))
        self.register_buffer("radius", torch.tensor(radius, dtype=torch.float64))
        self.register_buffer("seed_input", torch.full((1000,), 0.5, dtype=torch.float64))
        n = len(base_alpha)
        self.layers = torch.nn.Sequential(
            torch.nn.Linear(1000, 2000, dtype=torch.float64),
            torch.nn.Linear(2000, 2000, dtype=torch.float64),
            torch.nn.Linear(2000, n, dtype=torch.float64),
        )

    def forward(self) -> torch.Tensor:
        return self.base + torch.tanh(self.layers(self.seed_input)) * self.radius

    def squash_weight_grads(self) -> None:
        """The official gradient clip: tanh applied twice to each weight gradient."""
        for layer in self.layers:
            if layer.weight.grad is not None:
                layer.weight.grad = torch.tanh(torch.tanh(layer.weight.grad))


class _LossOfAlpha(torch.autograd.Function):
    """Bridges the numpy objective into autograd: loss(α) with its analytic gradient."""

    @staticmethod
    def forward(ctx, alpha: torch.Tensor, problem: _Problem) -> torch.Tensor:  # type: ignore[override]
        a = alpha.detach().numpy()
        loss, grad_log = problem.value_and_grad(np.log(a))
        ctx.save_for_backward(torch.from_numpy(grad_log / a))
        return torch.tensor(loss, dtype=torch.float64)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        (grad,) = ctx.saved_tensors
        return grad_out * grad, None


def _solve_paper(
    p: _Problem, gamma: float, epochs: int, lr: float, seed: int, should_stop: Callable[[], bool] | None,
) -> tuple[np.ndarray, str]:
    alpha = np.exp(p.base_log_alpha)
    radius = np.minimum(gamma, np.minimum(alpha, 1.0 - alpha))
    torch.manual_seed(seed)
    net = _PaperReparam(alpha, radius)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    best_loss, best = np.inf, alpha
    for epoch in range(1, epochs + 1):
        if should_stop is not None and should_stop():
            raise Cancelled("optimisation cancelled")
        opt.zero_grad()
        a = net()
        loss = _LossOfAlpha.apply(a, p)
        loss.backward()
        net.squash_weight_grads()
        opt.step()
        if (epoch % 100 == 0 or epoch == epochs) and loss.item() < best_loss:
            best_loss, best = loss.item(), a.detach().numpy().copy()
    return np.log(best), f"paper SGD: {epochs} epochs, best loss {best_loss:.7g}"


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

    p = _problem(s, table, gamma, start, lam, interp)
    if method == "exact":
        log_alpha, status = _solve_exact(p, start == "fixed", grid_points)
    else:
        log_alpha, status = _solve_paper(p, gamma, epochs, lr, seed, should_stop)
    out = p.schedule(log_alpha)
    if start == "fixed" or p.start_alpha_bar <= _ALPHA_BAR_FLOOR:
        out[0] = s[0]
    out[-1] = s[-1]
    before = cumulative_error(s, table, interp).total
    if np.any(np.diff(out) >= 0) or not np.all(np.isfinite(out)):
        out, status = s.copy(), status + "; result not strictly decreasing, base kept"
    after = cumulative_error(out, table, interp).total
    if start == "fixed" and after > before:
        out, after, status = s.copy(), before, status + "; no improvement found, base kept"
    return OptimizeResult(out, s, before, after, gamma, start, method, interp, status, time.perf_counter() - t0)
