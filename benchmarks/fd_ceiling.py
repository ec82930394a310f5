"""How low can FD go at a few steps? Nelder–Mead on the FD itself, from given schedules.

    COMFYUI_PATH=<ComfyUI> python -m benchmarks.fd_ceiling [--sampler euler] [--model eps]
        [--start 2.845,1.242,0.595,0.251 ...] [--evaluations 80] [--objective fd|teacher]

Each start lists the interior σ of a schedule (σ_0 = the model's σ_max and the final 0 are
added; the step count follows). The search moves the interior log σ to lower the FD of 1 000
samples of seed 0 (paired noise, as `benchmarks.quality`) and reports the FD of the start and
of the best schedule on seed 0 and on an unseen seed 1. The default starts are GITS, AYS-SD1
and a low-ending schedule at 5 steps (EPS). It tells whether a target such as "20 % below the
best shipped table" is reachable by any nearby schedule, whatever the method.

`--objective teacher` minimises instead the squared error to a converged teacher on 64
held-out noises (`benchmarks.search_candidates.HeldOutTeacher`, the measure VRG+ searches on)
and reports that error and the FD before and after: what the best schedule *by that measure*
scores.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from scipy.optimize import minimize

from .backend import load_backend
from .search_candidates import HeldOutTeacher
from .subjects import demo_subject

STARTS = ("2.845,1.242,0.595,0.251", "3.864,1.884,0.964,0.398", "1.5,0.6,0.2,0.06")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.fd_ceiling", description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="eps", choices=("eps", "flow"))
    ap.add_argument("--sampler", default="euler")
    ap.add_argument("--start", nargs="+", default=list(STARTS), help="interior sigmas, comma-separated")
    ap.add_argument("--evaluations", type=int, default=80, help="objective evaluations per start")
    ap.add_argument("--objective", default="fd", choices=("fd", "teacher"))
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    backend, subject = load_backend(), demo_subject(a.model)
    model = subject.extra["model"]
    top, low = model.sigma_max, model.sigma_min
    sets = [(b, subject.make_denoise(b)) for b in (subject.batch(0, 1000), subject.batch(1, 1000))]

    def fd(sigmas: np.ndarray, seed: int) -> float:
        batch, denoise = sets[seed]
        with torch.inference_mode():
            out = backend.sample(a.sampler, denoise, batch.noise, torch.tensor(sigmas, dtype=torch.float32),
                                 subject.sampling, seed=batch.seed)
        return subject.metric(out)

    def schedule(z: np.ndarray) -> np.ndarray:
        inner = np.exp(np.sort(np.clip(z, np.log(low), np.log(top * 0.99)))[::-1])
        return np.r_[top, inner, 0.0]

    if a.objective == "fd":
        objective, tolerance = (lambda s: fd(s, 0)), 0.05
    else:
        teacher = HeldOutTeacher.make(subject, top, low)
        objective, tolerance = (lambda s: teacher.score(s, a.sampler)[0]), 1e-7
    for text in a.start:
        z0 = np.log([float(v) for v in text.split(",")])
        result = minimize(lambda z: objective(schedule(z)), z0, method="Nelder-Mead",
                          options={"maxfev": a.evaluations, "xatol": 0.02, "fatol": tolerance})
        start, best = schedule(z0), schedule(result.x)
        measured = "" if a.objective == "fd" else f"teacher error {objective(start):.5f} -> {result.fun:.5f}, "
        print(f"{a.model} {a.sampler} {len(z0) + 1} steps from [{text}]: {measured}FD seed 0 {fd(start, 0):.2f} -> "
              f"{fd(best, 0):.2f}, unseen seed 1 {fd(start, 1):.2f} -> {fd(best, 1):.2f} "
              f"({result.nfev} {a.objective} evaluations); best sigmas {np.round(best, 3).tolist()}", flush=True)


if __name__ == "__main__":
    main()
