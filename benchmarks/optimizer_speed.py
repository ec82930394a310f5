"""Optimiser speed and quality: the official algorithm vs `exact`, side by side in one run.

    python -m benchmarks.optimizer_speed [--epochs 3000] [--repeats 5]

The official problem: its CIFAR-10 error table and 10-step quadratic trajectory from
../shared/reference (γ = 0.01, λ = 100, start = paper, official interpolation). Then `exact`
alone on longer Karras schedules over the same table. Times are medians of `--repeats`.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from vrg_core.optimize import optimize_sigmas
from vrg_core.table_io import load_table, official_trajectory_from_text

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference"


def timed(fn, repeats: int):
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def karras(n: int, lo: float, hi: float, rho: float = 7.0) -> np.ndarray:
    r = np.linspace(0, 1, n)
    return np.append((hi ** (1 / rho) + r * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho, 0.0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=3000)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(2)
    table = load_table(REFERENCE / "vrg_official_mse_vs_alpha_bar_cifar10.tsv")
    base = official_trajectory_from_text((REFERENCE / "vrg_official_trajectory_1-010-time_quadratic.txt").read_text())
    official = official_trajectory_from_text((REFERENCE / "vrg_official_optimized_1-010-time_quadratic.txt").read_text())
    common = dict(gamma=0.01, lam=100.0, interp="paper")

    t_paper, paper = timed(lambda: optimize_sigmas(base, table, start="paper", method="paper", epochs=a.epochs, **common), 1)
    t_exact, exact = timed(lambda: optimize_sigmas(base, table, start="paper", **common), a.repeats)
    t_fixed, fixed = timed(lambda: optimize_sigmas(base, table, start="fixed", **common), a.repeats)
    from vrg_core.objective import cumulative_error

    print("official problem: CIFAR-10 table, 10-step time-quadratic trajectory, gamma 0.01, lambda 100, interp paper")
    print(f"  {'method':<34} {'CPE':>10} {'start sigma':>12} {'seconds':>10}")
    print(f"  {'base trajectory':<34} {paper.cpe_before:10.7f} {base[0]:12.5g} {'':>10}")
    print(f"  {'official output file':<34} {cumulative_error(official, table, 'paper').total:10.7f} {official[0]:12.5g} {'(168 s)':>10}")
    print(f"  {f'paper (SGD, {a.epochs} epochs, ours)':<34} {paper.cpe_after:10.7f} {paper.start_sigma_after:12.5g} {t_paper:10.3f}")
    print(f"  {'exact, start=paper':<34} {exact.cpe_after:10.7f} {exact.start_sigma_after:12.5g} {t_exact:10.4f}")
    print(f"  {'exact, start=fixed':<34} {fixed.cpe_after:10.7f} {fixed.start_sigma_after:12.5g} {t_fixed:10.4f}")
    print(f"  speed-up exact vs paper: {t_paper / t_exact:.0f}x; CPE exact {exact.cpe_after:.6f} vs paper {paper.cpe_after:.6f}")
    print()
    print("exact on Karras schedules over the same table (sigma 0.02..150), median of", a.repeats)
    print(f"  {'steps':>6} {'start':>6} {'CPE before':>12} {'CPE after':>12} {'change':>8} {'seconds':>9}")
    for steps in (5, 10, 20, 50, 100, 1000):
        s = karras(steps, 0.02, 150.0)
        for start in ("fixed", "paper"):
            t, r = timed(lambda s=s, start=start: optimize_sigmas(s, table, start=start), a.repeats if steps <= 100 else 1)
            print(f"  {steps:6d} {start:>6} {r.cpe_before:12.6g} {r.cpe_after:12.6g} {100 * r.improvement:+7.2f}% {t:9.4f}")


if __name__ == "__main__":
    main()
