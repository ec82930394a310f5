"""What profiling costs: evaluations for ≤ 2 % relative standard error per level, profiler overhead,
and what a budget costs the user (the schedule's regret).

    python -m benchmarks.profile_cost [--models eps,flow,gmm] [--grid 48] [--pilot 256] [--target 0.02]
    python -m benchmarks.profile_cost --regret [--models eps,flow] [--regret-budgets 8,32,128] [--seeds 1,2,3]

1. A pilot profile (`--pilot` samples per level on `--grid` levels, held-out data) gives each
   level's coefficient of variation cv = std(mse)/mean(mse); a level needs (cv / target)² samples
   for a relative standard error of `target`. The most demanding level sets the samples per level
   (the profiler measures every level equally); total = grid × that. A second profile at that size
   checks the claim.
2. Overhead: wall time of `vrg_core.profile.profile` (noise per job, mixing levels, the error
   sums) against the bare model forward on the same number of inputs at the same batch size.
   Target ≤ 5 %.
3. `--regret` (instead of 1–2): the VRG schedule (10 steps, Karras for EPS / the shift-3 simple
   schedule for flow, γ auto, start held) optimised from a table of `--regret-budgets` samples
   per level (3 seeds) has a CPE, under a `--regret-reference`-sample table (another seed), above
   that table's own optimum by its regret. Shown with the levels used as measured ("as measured",
   the old behaviour) and pooled by their standard errors (`ErrorTable.smoothed_mse`, what
   interpolation now uses), beside `vrg_core.regret.schedule_regret_estimate` made from the small
   table alone (mean / 90th percentile over 16 draws).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from vrg_core.error_table import ErrorTable
from vrg_core.parameterization import add_noise, noise_level_grid
from vrg_core.profile import job_noise, profile


def cv_per_level(table: ErrorTable) -> np.ndarray:
    """std(mse)/mean(mse) per level (from the table's sums)."""
    return table.standard_error * np.sqrt(table.count) / table.mean_mse


def model_under_test(name: str, quick: bool):
    """(denoise(x, σ, index), clean x0, kind, σ_min, σ_max) for a demo model or the GMM testbed."""
    if name == "gmm":
        from .gmm import SD15_SIGMA_MAX, SD15_SIGMA_MIN, build_testbed
        from vrg_core.parameterization import ModelKind

        tb = build_testbed(quick)
        return (lambda x, s, i: tb.model.denoise(x, s)), tb.heldout.float(), ModelKind.EPS, SD15_SIGMA_MIN, SD15_SIGMA_MAX
    from vrg_core.demo import load_demo_model, make_context
    from vrg_core.demo.data import load_digits

    model = load_demo_model(name)
    x, y = load_digits("heldout")
    return (lambda xb, s, i: model.denoise(xb, s, make_context(y[i]))), x, model.kind, model.sigma_min, model.sigma_max


def timed_profile(denoise, x0, kind, grid, samples, batch, seed: int = 1) -> tuple[ErrorTable, float]:
    t0 = time.perf_counter()
    with torch.inference_mode():
        table = profile(denoise, x0, kind, grid, samples, batch_size=batch, seed=seed)
    return table, time.perf_counter() - t0


def bare_forward_seconds(denoise, x0, kind, grid, total, batch) -> float:
    """The same number of model calls on precomputed inputs (no noise generation, no bookkeeping)."""
    g = torch.Generator().manual_seed(0)
    index = torch.arange(batch) % len(x0)
    sigma = torch.as_tensor(grid, dtype=torch.float32)[torch.arange(batch) % len(grid)]
    x = add_noise(x0[index], torch.randn(x0[index].shape, generator=g), sigma, kind)
    t0 = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, total, batch):
            n = min(batch, total - start)
            denoise(x[:n], sigma[:n], index[:n])
    return time.perf_counter() - t0


def regret_study(name: str, grid_size: int, budgets: list[int], seeds: list[int], reference: int, batch: int,
                 steps: int = 10) -> None:
    from vrg_core.objective import cumulative_error
    from vrg_core.optimize import optimize_sigmas
    from vrg_core.regret import default_schedule, schedule_regret_estimate

    denoise, x0, kind, lo, hi = model_under_test(name, False)
    grid = noise_level_grid(lo, hi, grid_size, kind)
    big, t_big = timed_profile(denoise, x0, kind, grid, reference, batch, seed=1000)
    base = default_schedule(big, steps)
    best = optimize_sigmas(base, big)
    print(f"\n[{name}] regret of the {steps}-step VRG schedule (start held); reference table {grid_size} x {reference} = "
          f"{grid_size * reference} evaluations ({t_big:.0f} s), seed 1000; VRG gain under it {100 * best.improvement:+.2f} %")
    print(f"  {'samples/level':>13} {'evaluations':>11} {'seed':>4} {'regret as measured':>18} {'regret pooled':>13} "
          f"{'estimate (mean / p90)':>21} {'estimate s':>10}")
    for samples in budgets:
        for seed in seeds:
            table, _ = timed_profile(denoise, x0, kind, grid, samples, batch, seed=seed)
            as_measured = ErrorTable.from_mean_error(kind, grid, table.mean_mse)  # no spread: levels used as measured
            regret = [cumulative_error(optimize_sigmas(base, t).sigmas, big).total / best.cpe_after - 1
                      for t in (as_measured, table)]
            est = schedule_regret_estimate(table, base)
            print(f"  {samples:>13} {grid_size * samples:>11} {seed:>4} {100 * regret[0]:>17.2f}% {100 * regret[1]:>12.2f}% "
                  f"{100 * est.mean:>12.2f}% / {100 * est.high:.2f}% {est.seconds:>10.2f}", flush=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.profile_cost", description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="eps,flow,gmm")
    ap.add_argument("--grid", type=int, default=48)
    ap.add_argument("--pilot", type=int, default=256, help="pilot samples per level")
    ap.add_argument("--target", type=float, default=0.02, help="relative standard error wanted at every level")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3, help="overhead timing: best of this many")
    ap.add_argument("--quick", action="store_true", help="small pilot, no check run")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--regret", action="store_true", help="only the regret study (section 3)")
    ap.add_argument("--regret-budgets", default="8,32,128", help="samples per level of the tables under test")
    ap.add_argument("--regret-reference", type=int, default=800, help="samples per level of the reference table")
    ap.add_argument("--seeds", default="1,2,3")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.regret:
        models = "eps,flow" if a.models == ap.get_default("models") else a.models
        for name in models.split(","):
            regret_study(name, a.grid, [int(v) for v in a.regret_budgets.split(",")], [int(v) for v in a.seeds.split(",")],
                         a.regret_reference, a.batch)
        return
    pilot = 32 if a.quick else a.pilot
    print(f"profile cost: grid {a.grid} levels, pilot {pilot} samples/level, target rel. s.e. {100 * a.target:g} %, "
          f"batch {a.batch}, {a.threads} thread(s)")
    for name in a.models.split(","):
        denoise, x0, kind, lo, hi = model_under_test(name, a.quick)
        grid = noise_level_grid(lo, hi, a.grid, kind)
        table, t_pilot = timed_profile(denoise, x0, kind, grid, pilot, a.batch)
        cv = cv_per_level(table)
        need = int(math.ceil((cv.max() / a.target) ** 2))
        worst = int(np.argmax(cv))
        rate = a.grid * pilot / t_pilot
        print(f"\n[{name}] ({kind.value}) σ {lo:.4g}..{hi:.4g}; pilot {a.grid * pilot} evals in {t_pilot:.1f} s "
              f"({rate:.0f} evals/s)")
        print("  σ         w(σ)       cv     samples for target")
        for i in list(range(0, a.grid, max(1, a.grid // 8))) + [a.grid - 1]:
            print(f"  {grid[i]:<9.4g} {table.mean_mse[i]:<10.4g} {cv[i]:<6.3f} {int(math.ceil((cv[i] / a.target) ** 2))}")
        print(f"  worst level σ = {grid[worst]:.4g} (cv {cv[worst]:.3f}) needs {need} samples per level "
              f"→ {a.grid} × {need} = {a.grid * need} model evaluations (~{a.grid * need / rate / 60:.1f} min here)")
        if not a.quick:
            # The pilot's cv are estimates and the maximum over many levels is biased low: check, and
            # scale up once more if the check misses the target.
            for _ in range(4):
                check, _ = timed_profile(denoise, x0, kind, grid, need, a.batch)
                rel = check.standard_error / check.mean_mse
                print(f"  check at {need}/level ({a.grid * need} evaluations): max rel. s.e. {100 * rel.max():.2f} % "
                      f"(median {100 * np.median(rel):.2f} %)")
                if rel.max() <= a.target:
                    break
                need = int(math.ceil(need * (rel.max() / a.target) ** 2 * 1.1))
        # overhead: profiler vs bare forward, same number of evaluations and batch size
        total = a.grid * (pilot if a.quick else max(pilot, 128))
        samples = total // a.grid
        t_prof = min(timed_profile(denoise, x0, kind, grid, samples, a.batch)[1] for _ in range(a.repeats))
        t_bare = min(bare_forward_seconds(denoise, x0, kind, grid, total, a.batch) for _ in range(a.repeats))
        t_null = min(timed_profile(lambda x, s, i: x, x0, kind, grid, samples, a.batch)[1] for _ in range(a.repeats))
        t0 = time.perf_counter()
        for j in range(total):
            job_noise(1, j, tuple(x0.shape[1:]))
        t_noise = time.perf_counter() - t0
        print(f"  overhead: profile {t_prof:.2f} s vs bare forward {t_bare:.2f} s for {total} evaluations "
              f"at batch {a.batch}: {100 * (t_prof / t_bare - 1):+.1f} % (target ≤ 5 %)")
        print(f"    the profiler alone (a model that costs nothing): {t_null:.2f} s = {100 * t_null / t_bare:.1f} % of the "
              f"forward time, of which per-job seeded noise {t_noise:.2f} s ({100 * t_noise / t_bare:.1f} %)")


if __name__ == "__main__":
    main()
