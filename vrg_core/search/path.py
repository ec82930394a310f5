"""The dynamic programme: the best path of exactly N steps through the teacher's grid.

One step of the sampler from grid point a to b (previous point p) is
x̂_b = c_x·X_a + c_D·D_a + c_old·D_p; its error against the teacher's X_b, per dimension and
sample, is a quadratic form in the teacher's Gram matrix, so no model call is needed.
"""

from __future__ import annotations

import numpy as np

from ..errors import VRGError
from .coefficients import step_coefficients
from .teacher import Teacher


def step_errors(teacher: Teacher, proxy: str) -> np.ndarray:
    """E[p, a, b]: squared error per dimension of one `proxy` step a → b after p, against the teacher's state at b.

    Indices are grid points 0..G−1; p = G means "no previous step" (allowed only at a = 0)
    and b = G means σ = 0. Entries breaking p < a < b are +inf.
    """
    G, M = len(teacher.grid), teacher.gram
    sig = np.append(teacher.grid, 0.0)
    p, a, b = np.meshgrid(np.arange(G + 1), np.arange(G), np.arange(G + 1), indexing="ij")
    valid = (a < b) & ((p < a) | ((p == G) & (a == 0)))
    prev_sigma = np.where(p < G, sig[np.minimum(p, G - 1)], np.nan)
    c_x, c_d, c_old = step_coefficients(proxy, prev_sigma, sig[a], sig[b])
    # vector indices: X_m -> m, D_m -> G + m; target X_b, or the teacher's final sample D_{G-1} at b = G
    ix, id_, iold = a, G + a, G + np.minimum(p, G - 1)
    it = np.where(b < G, np.minimum(b, G - 1), 2 * G - 1)
    c_old = np.where(p < G, c_old, 0.0)
    coef = (c_x, c_d, c_old, -np.ones_like(c_x))
    idx = (ix, id_, iold, it)
    err = np.zeros(a.shape)
    with np.errstate(invalid="ignore", over="ignore"):  # invalid entries are masked below
        for i in range(4):
            for j in range(4):
                err += coef[i] * coef[j] * M[idx[i], idx[j]]
    err = np.maximum(err / teacher.numel, 0.0)
    return np.where(valid, err, np.inf)


def best_path(costs: np.ndarray, steps: int) -> list[int]:
    """Grid indices 0 = i_0 < … < i_{steps} = G minimising Σ costs[i_{k−1}, i_k, i_{k+1}] (dynamic programme)."""
    G = costs.shape[1]
    if steps > G:
        raise VRGError(f"{steps} steps need a finer search grid than {G} points")
    f = np.full((G, G + 1), np.inf)  # f[current, previous]: least cost so far
    f[0, G] = 0.0
    back = []
    for k in range(1, steps + 1):
        targets = np.arange(G) if k < steps else np.array([G])
        total = f.T[:, :, None] + costs[:, :, targets]  # [previous, current, next]
        arg = np.argmin(total, axis=0)
        best = np.take_along_axis(total, arg[None], axis=0)[0]  # [current, next]
        f = np.full((G, G + 1), np.inf)
        f[: len(targets), :G] = best.T
        back.append(arg)
    current = int(np.argmin(f[0, :G]))
    if not np.isfinite(f[0, current]):
        raise VRGError(f"no {steps}-step path through the search grid; lower the steps")
    path, nxt = [G, current], 0
    for k in range(steps - 1, 0, -1):
        prev = int(back[k][current, nxt])
        path.append(prev)
        current, nxt = prev, current
    return path[::-1]
