"""Scale: profile 10 000 samples of the demo EPS model and optimise a 1000-step schedule.

    python -m benchmarks.scale [--samples 10000] [--steps 1000]

Prints wall time and the process's peak resident memory after each stage (ru_maxrss), to show
both stay bounded: the profiler holds one batch of latents at a time, the optimiser's grid
search one level pair at a time.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch

from vrg_core.demo import load_demo_model
from vrg_core.demo.data import load_digits
from vrg_core.optimize import optimize_sigmas
from vrg_core.parameterization import noise_level_grid
from vrg_core.profile import profile


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=10_000, help="total model evaluations")
    ap.add_argument("--grid", type=int, default=50)
    ap.add_argument("--steps", type=int, default=1000)
    a = ap.parse_args()
    torch.set_num_threads(2)
    model = load_demo_model("eps")
    images, _ = load_digits("train")
    print(f"loaded model and {len(images)} digits: peak RSS {peak_mb():.0f} MB", flush=True)
    grid = noise_level_grid(model.sigma_min, model.sigma_max, a.grid, model.kind)
    t0 = time.perf_counter()
    table = profile(lambda x, s, i: model.denoise(x, s, None), images, model.kind, grid, a.samples // a.grid, 256, seed=0)
    t_profile = time.perf_counter() - t0
    print(f"profile: {int(table.count.sum())} samples over {a.grid} levels in {t_profile:.1f} s "
          f"({table.count.sum() / t_profile:.0f} samples/s); peak RSS {peak_mb():.0f} MB", flush=True)
    base = np.append(np.geomspace(model.sigma_max, model.sigma_min, a.steps), 0.0)
    for start in ("fixed", "paper"):
        t0 = time.perf_counter()
        r = optimize_sigmas(base, table, start=start)
        print(f"optimise {a.steps} steps, start={start}: CPE {r.cpe_before:.5g} -> {r.cpe_after:.5g} in "
              f"{time.perf_counter() - t0:.2f} s; peak RSS {peak_mb():.0f} MB", flush=True)


if __name__ == "__main__":
    main()
