"""How close `exact` comes to the optimum: official-format trajectories, every official spacing.

    python -m benchmarks.optimality [--steps 5,10,20,50,100,200] [--starts 8] [--repeats 5]

Problem: the official CIFAR-10 error table (../shared/reference), trajectories made as the
official code makes its inputs (`benchmarks.official`: DPM-Solver's `time_uniform`,
`time_quadratic` and `logSNR` spacings of the DDPM linear-β schedule), γ 0.01, λ 100, the
official interpolation; start `fixed` and `paper`.

Reference ("independent"; written here, none of `vrg_core.optimize`'s machinery):
scipy's SLSQP on the same loss, box and held start from the base schedule, from the path of a
plain 400-point grid programme and from `--starts` seeded random points of the box, plus
differential evolution (polished by SLSQP) up to 10 steps; the least loss found. The gap is
exact's loss over that reference, minus 1 (negative: exact found a lower loss than the
reference). Milliseconds: median of `--repeats` wall-clock runs of `optimize_sigmas`; the
machine's load average is printed with them (a shared machine slows them).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
from pathlib import Path

import numpy as np
from scipy.optimize import LinearConstraint, differential_evolution, minimize

from vrg_core.error_table import ErrorTable
from vrg_core.optimize import optimize_sigmas
from vrg_core.table_io import load_table

from .official import SPACINGS, official_trajectory

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference"
GAMMA, LAM, INTERP = 0.01, 100.0, "paper"


class Loss:
    """CPE + the paper start penalty as a function of log α_j (clean→noisy), from first principles."""

    def __init__(self, sigmas: np.ndarray, table: ErrorTable, start: str):
        ab = 1.0 / (1.0 + sigmas[:-1][::-1] ** 2)  # EPS: ᾱ = 1/(1+σ²); the end σ is 0, ᾱ 1
        self.log_alpha = np.diff(np.log(np.append(1.0, ab)))
        alpha = np.exp(self.log_alpha)
        radius = np.minimum(GAMMA, np.minimum(alpha, 1.0 - alpha)) * (1.0 - 1e-6)
        self.lower, self.upper = np.log(alpha - radius), np.log(alpha + radius)
        self.start_ab, self.total = float(ab[-1]), float(self.log_alpha.sum())
        self.penalty = LAM if start == "paper" else 0.0
        self.hold = start == "fixed"
        knots = 1.0 / (1.0 + table.sigmas**2)
        self.knots, self.w = knots[::-1], table.mean_mse[::-1]  # official rule: linear in ᾱ

    def __call__(self, x: np.ndarray) -> float:
        ab = np.exp(np.cumsum(x))
        sigma = np.sqrt((1.0 - ab) / ab)
        w = np.interp(ab, self.knots, self.w)
        step = sigma - np.append(0.0, sigma[:-1])
        return float(np.sum(step**2 * w) + self.penalty * (ab[-1] - self.start_ab) ** 2)

    def grad(self, x: np.ndarray) -> np.ndarray:
        """d loss / d log α_i, derived here by hand (not exact's code)."""
        ab = np.exp(np.cumsum(x))
        sigma = np.sqrt((1.0 - ab) / ab)
        dsigma = -0.5 / (sigma * ab**2)
        i = np.clip(np.searchsorted(self.knots, ab, side="right") - 1, 0, len(self.knots) - 2)
        inside = (ab >= self.knots[0]) & (ab <= self.knots[-1])  # np.interp clamps outside
        slope = np.where(inside, (self.w[i + 1] - self.w[i]) / (self.knots[i + 1] - self.knots[i]), 0.0)
        w = np.interp(ab, self.knots, self.w)
        step = sigma - np.append(0.0, sigma[:-1])
        g = 2 * step * dsigma * w + step**2 * slope
        g[:-1] -= 2 * step[1:] * dsigma[:-1] * w[1:]
        g[-1] += 2 * self.penalty * (ab[-1] - self.start_ab)
        return np.cumsum((g * ab)[::-1])[::-1]

    def feasible(self, x: np.ndarray) -> np.ndarray:
        x = np.clip(x, self.lower, self.upper)
        if self.hold:  # shift toward Σ = total within the box (bisection on the shift)
            a, b = float(np.min(x - self.upper)), float(np.max(x - self.lower))
            for _ in range(100):
                mu = 0.5 * (a + b)
                a, b = (mu, b) if np.clip(x - mu, self.lower, self.upper).sum() > self.total else (a, mu)
            x = np.clip(x - 0.5 * (a + b), self.lower, self.upper)
        return x

    def slsqp(self, x0: np.ndarray, restarts: int = 20) -> tuple[float, np.ndarray]:
        """SLSQP, restarted from where it stops (at the table's kinks it often stops early) while it gains."""
        cons = []
        if self.hold:
            cons = [{"type": "eq", "fun": lambda z: np.array([z.sum() - self.total]), "jac": lambda z: np.ones((1, len(z)))}]
        x, f = self.feasible(x0), self(self.feasible(x0))
        for _ in range(restarts):
            r = minimize(self, x, jac=self.grad, method="SLSQP", bounds=list(zip(self.lower, self.upper)), constraints=cons,
                         options={"maxiter": 1000, "ftol": 1e-15})
            xn = self.feasible(r.x)
            fn = self(xn)
            if not fn < f * (1 - 1e-12):
                break
            x, f = xn, fn
        return f, x

    def grid_programme(self, points: int) -> np.ndarray:
        """A plain dynamic programme over `points` values of log ᾱ per level (the loss is a chain)."""
        n = len(self.lower)
        lo, hi = np.cumsum(self.lower), np.cumsum(self.upper)
        if self.hold:
            lo = np.maximum(lo, self.total - np.append(np.cumsum(self.upper[::-1])[::-1][1:], 0.0))
            hi = np.minimum(hi, self.total - np.append(np.cumsum(self.lower[::-1])[::-1][1:], 0.0))
        grids = [np.linspace(a, b, points) for a, b in zip(lo, hi)]
        if self.hold:
            grids[-1] = np.array([self.total])
        prev_y, prev_s, value, back = np.zeros(1), np.zeros(1), np.zeros(1), []
        for j, y in enumerate(grids):
            ab = np.exp(y)
            s = np.sqrt((1.0 - ab) / ab)
            step = y[None, :] - prev_y[:, None]
            ok = (step >= self.lower[j] - 1e-12) & (step <= self.upper[j] + 1e-12)
            cost = (s[None, :] - prev_s[:, None]) ** 2 * np.interp(ab, self.knots, self.w)[None, :]
            total = np.where(ok, value[:, None] + cost, np.inf)
            back.append(np.argmin(total, axis=0))
            value = total[back[-1], np.arange(len(y))]
            prev_y, prev_s = y, s
        value = value + self.penalty * (np.exp(prev_y) - self.start_ab) ** 2
        k, path = int(np.argmin(value)), np.empty(n)
        for j in range(n - 1, -1, -1):
            path[j] = grids[j][k]
            k = back[j][k]
        return self.feasible(np.diff(np.append(0.0, path)))


def one_blas_thread():
    """SLSQP's small dense algebra on one BLAS thread: several times faster on a shared machine, and reproducible."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(1)


def reference_loss(loss: Loss, starts: int, seed: int, grid: int = 400, evolution_steps: int = 10) -> tuple[float, str]:
    """Best of SLSQP from the base, from a fine grid programme's path and from random starts; DE for short schedules."""
    with one_blas_thread():
        return _reference_loss(loss, starts, seed, grid, evolution_steps)


def _reference_loss(loss: Loss, starts: int, seed: int, grid: int, evolution_steps: int) -> tuple[float, str]:
    best, how = loss.slsqp(loss.log_alpha)[0], "SLSQP from base"
    f = loss.slsqp(loss.grid_programme(grid))[0]
    if f < best:
        best, how = f, f"SLSQP from a {grid}-point grid programme"
    rng = np.random.default_rng(seed)
    for k in range(starts):
        x0 = loss.feasible(loss.lower + rng.uniform(size=len(loss.lower)) * (loss.upper - loss.lower))
        f = loss.slsqp(x0)[0]
        if f < best:
            best, how = f, f"SLSQP from random start {k}"
    if len(loss.lower) <= evolution_steps:
        cons = LinearConstraint(np.ones((1, len(loss.lower))), loss.total, loss.total) if loss.hold else ()
        r = differential_evolution(loss, list(zip(loss.lower, loss.upper)), constraints=cons, seed=seed, tol=1e-10,
                                   maxiter=300, polish=False)
        f = loss.slsqp(loss.feasible(r.x))[0]
        if f < best:
            best, how = f, "differential evolution + SLSQP"
    return best, how


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.optimality", description=__doc__.splitlines()[0])
    ap.add_argument("--steps", default="5,10,20,50,100,200")
    ap.add_argument("--starts", type=int, default=8, help="random starts of the reference SLSQP")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    table = load_table(REFERENCE / "vrg_official_mse_vs_alpha_bar_cifar10.tsv")
    print(f"optimality of exact: official CIFAR-10 table, gamma {GAMMA}, lambda {LAM}, interp {INTERP}; reference = best of "
          f"SLSQP from base, from a 400-point grid programme, from {a.starts} random starts (+ differential evolution up to 10 steps)")
    print(f"{'spacing':<15} {'steps':>5} {'start':>6} {'CPE base':>10} {'reference':>11} {'exact':>11} {'gap':>9} {'ms':>7}"
          "  reference found by")
    gaps, ms100 = [], []
    for spacing in SPACINGS:
        for steps in (int(v) for v in a.steps.split(",")):
            sigmas = official_trajectory(steps, spacing)
            for start in ("fixed", "paper"):
                loss = Loss(sigmas, table, start)
                ref, how = reference_loss(loss, a.starts, a.seed)
                times, r = [], None
                for _ in range(a.repeats):
                    t0 = time.perf_counter()
                    r = optimize_sigmas(sigmas, table, gamma=GAMMA, start=start, lam=LAM, interp=INTERP)
                    times.append(time.perf_counter() - t0)
                ours = Loss(r.sigmas, table, start)  # the returned schedule's own log α
                ab_out = np.exp(np.cumsum(ours.log_alpha))
                value = r.cpe_after + loss.penalty * (ab_out[-1] - loss.start_ab) ** 2
                gap = value / ref - 1.0
                ms = 1000 * statistics.median(times)
                gaps.append(gap)
                if steps == 100:
                    ms100.append(ms)
                print(f"{spacing:<15} {steps:>5} {start:>6} {r.cpe_before:10.6f} {ref:11.7f} {value:11.7f} {100 * gap:+8.4f}% "
                      f"{ms:7.1f}  {how}", flush=True)
    print(f"worst gap {100 * max(gaps):+.4f} %; median ms at 100 steps {statistics.median(ms100):.1f} "
          f"(max {max(ms100):.1f}); {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
