"""Optimise a schedule's noise levels to minimise its cumulative prediction error (CPE).

Variables are the paper's: the VP-equivalent ᾱ_j of the schedule's non-final levels,
ordered clean→noisy (j = 0 is the level next to the end σ_N, j = N−1 the start σ_0), and
α_j = ᾱ_j / ᾱ_{j−1} with ᾱ_{−1} = ᾱ(σ_N) (1 when the schedule ends at 0). Each α_j may
move within ±min(γ, α_j, 1 − α_j) of its base value ("learning portion" γ); σ_N stays.

Start modes:
* ``fixed``: σ_0 is returned bit-exactly (Π α_j held); CPE never rises.
* ``paper``: the official soft penalty λ·(ᾱ_start − ᾱ_start,base)² lets the start move.

Methods:
* ``exact``: a dynamic programme over a grid of ᾱ per level finds the global basin
  (the loss is a chain of pairwise terms and the box constrains consecutive pairs), then
  SLSQP on log α_j with the analytic gradient polishes it; deterministic, milliseconds.
* ``paper``: the official reparameterisation (a 1000→2000→2000→N linear network whose
  tanh output scales the box) trained by SGD with momentum — for reproduction only.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Literal

import numpy as np
import torch
from scipy.optimize import minimize

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
# SLSQP's dense subproblems grow as n³: longer schedules keep the grid optimum.
_MAX_POLISHED = 50
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
            f"use a table profiled on this model ({table.kind.value}) or a schedule from the same model"
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
    return _Problem(
        table, interp, float(s[-1]), float(np.log(ab_end)), log_alpha, lower, upper,
        lam if start == "paper" else 0.0, float(ab[-1]),
    )


def _dynamic_programme(p: _Problem, hold_start: bool, points: int) -> np.ndarray:
    """Global search on a grid: the loss is a chain of terms in (log ᾱ_{j−1}, log ᾱ_j).

    Each level gets `points` candidates of log ᾱ_j spanning what the box allows (from the
    end and, with the start held, from the start), plus its base value, so the base
    schedule is always a candidate path and the result never has a higher loss.
    Returns log α of the best path.
    """
    kind, n = p.table.kind, len(p.base_log_alpha)
    base = p.log_ab_end + np.cumsum(p.base_log_alpha)
    lo = p.log_ab_end + np.cumsum(p.lower)
    hi = p.log_ab_end + np.cumsum(p.upper)
    if hold_start:
        lo = np.maximum(lo, base[-1] - np.append(np.cumsum(p.upper[::-1])[::-1][1:], 0.0))
        hi = np.minimum(hi, base[-1] - np.append(np.cumsum(p.lower[::-1])[::-1][1:], 0.0))
    grids = [np.unique(np.append(np.linspace(a, z, points), b)) for a, z, b in zip(lo, hi, base)]
    if hold_start:
        grids[-1] = base[-1:]
    prev_y, prev_sigma = np.array([p.log_ab_end]), np.array([p.end_sigma])
    value = np.zeros(1)
    back = []
    tol = 1e-12
    for j, y in enumerate(grids):
        sigma = sigma_from_alpha_bar(np.exp(y), kind)
        w, _ = p.table.interpolate(sigma, p.interp)
        step = y[None, :] - prev_y[:, None]
        allowed = (step >= p.lower[j] - tol) & (step <= p.upper[j] + tol)
        cost = (sigma[None, :] - prev_sigma[:, None]) ** 2 * w[None, :]
        total = np.where(allowed, value[:, None] + cost, np.inf)
        best = np.argmin(total, axis=0)
        value = total[best, np.arange(len(y))]
        back.append(best)
        prev_y, prev_sigma = y, sigma
    value = value + p.penalty * (np.exp(prev_y) - p.start_alpha_bar) ** 2
    k = int(np.argmin(value))
    path = np.empty(n)
    for j in range(n - 1, -1, -1):
        path[j] = grids[j][k]
        k = back[j][k]
    return np.clip(np.diff(np.append(p.log_ab_end, path)), p.lower, p.upper)


def _refine(p: _Problem, x0: np.ndarray, hold_start: bool) -> np.ndarray:
    """Local SLSQP polish of log α from `x0` within the box (and Σ log α held); never worse than `x0`."""
    free = p.free
    if not free.any():
        return x0

    def fun(z: np.ndarray) -> tuple[float, np.ndarray]:
        x = x0.copy()
        x[free] = z
        f, g = p.value_and_grad(x)
        return f, g[free]

    constraints = []
    if hold_start:
        total = float(x0[free].sum())
        constraints = [{"type": "eq", "fun": lambda z: np.array([z.sum() - total]), "jac": lambda z: np.ones((1, len(z)))}]
    res = minimize(
        fun, x0[free], jac=True, method="SLSQP", bounds=list(zip(p.lower[free], p.upper[free])),
        constraints=constraints, options={"maxiter": 300, "ftol": 1e-13},
    )
    x = x0.copy()
    x[free] = np.clip(res.x, p.lower[free], p.upper[free])
    if hold_start:
        x[free] += (float(x0[free].sum()) - float(x[free].sum())) / free.sum()
        x = np.clip(x, p.lower, p.upper)
    return x if p.value_and_grad(x)[0] <= p.value_and_grad(x0)[0] else x0


def _solve_exact(p: _Problem, hold_start: bool, points: int) -> tuple[np.ndarray, str]:
    """Grid dynamic programme for the global basin, then (up to `_MAX_POLISHED` levels) SLSQP polish."""
    x = _dynamic_programme(p, hold_start, points)
    status = f"grid search, {points} points a level"
    if len(x) <= _MAX_POLISHED:
        x, status = _refine(p, x, hold_start), status + " + SLSQP polish"
    return x, status


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
    grid_points: int = 200,
    should_stop: Callable[[], bool] | None = None,
) -> OptimizeResult:
    """Minimise CPE over schedules near `sigmas` (descending, σ_0 the start).

    Returns the same number of levels, strictly decreasing, with the last σ kept; with
    `start="fixed"` the first σ is kept bit-exactly and the CPE never rises.
    `grid_points` sets the global grid search of `method="exact"`; `epochs`, `lr` and
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
