"""Local projected Newton polish of the exact solver, in the variables of `problem`.

The loss is a chain in the levels y = log ᾱ (clean→noisy): term j is
(σ(y_j) − σ(y_{j−1}))² · w(σ(y_j)) with σ(y_{−1}) the end, so its Hessian is tridiagonal and,
within each piece of the table's interpolation, exact. σ is in the table's model units; steps
are taken in x = log α inside the box, with the start's Σ x held when asked.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import LinAlgError, solveh_banded

from ..parameterization import sigma_from_alpha_bar
from .problem import Problem, hold_sum

# The polish stops when a step gains less than this fraction of the loss.
_POLISH_TOL = 1e-8


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


def _interpolated(p: Problem, y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The table's interpolation (as ErrorTable.interpolate) at levels y with σ = s: abscissa q,
    value v (w for "paper", log w for "loglog") and slope m in q (0 outside the table)."""
    q = np.exp(y) if p.interp == "paper" else np.log(s)
    i = np.clip(np.searchsorted(p.knots, q, side="right") - 1, 0, len(p.knots) - 2)
    inside = (q >= p.knots[0]) & (q <= p.knots[-1])
    m = np.where(inside, p.slopes[i], 0.0)
    v = np.where(inside, p.values[i] + p.slopes[i] * (q - p.knots[i]), np.where(q < p.knots[0], p.values[0], p.values[-1]))
    return q, v, m


def _loss(p: Problem, y: np.ndarray) -> float:
    """The loss alone at levels y (the line search's trial points)."""
    s = sigma_from_alpha_bar(np.exp(y), p.table.kind)
    v = _interpolated(p, y, s)[1]
    w = v if p.interp == "paper" else np.exp(v)
    d = np.diff(s, prepend=p.end_sigma)
    return float(np.sum(d * d * w)) + p.penalty * (float(np.exp(y[-1])) - p.start_alpha_bar) ** 2


def _chain_terms(p: Problem, y: np.ndarray):
    """Loss at levels y = log ᾱ (clean→noisy), its gradient in y and its tridiagonal Hessian.

    Term j is (σ(y_j) − σ(y_{j−1}))² · w(σ(y_j)) with σ(y_{−1}) the end; so the Hessian couples
    neighbours only. Returns (loss, gradient, diagonal, off-diagonal); within one piece of the
    table's interpolation the derivatives are exact.
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
    loss = float(np.sum(d * d * w)) + p.penalty * gap**2
    grad = 2.0 * d * s1 * w + d * d * w1
    grad[:-1] -= (2.0 * d * sb1 * w)[1:]
    grad[-1] += 2.0 * p.penalty * gap * ab
    diag = 2.0 * s1**2 * w + 2.0 * d * s2 * w + 4.0 * d * s1 * w1 + d * d * w2
    diag[:-1] += (2.0 * sb1**2 * w - 2.0 * d * sb2 * w)[1:]
    diag[-1] += 2.0 * p.penalty * ab * (2.0 * ab - p.start_alpha_bar)
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


def polish(p: Problem, x: np.ndarray, hold_start: bool, iterations: int = 200) -> np.ndarray:
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
        x = hold_sum(x, p, total)
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
