"""What the VRG+ check sees, candidate by candidate, next to the FD.

    COMFYUI_PATH=<ComfyUI> python -m benchmarks.search_candidates [--subjects eps,flow]
        [--samplers euler dpmpp_2m] [--steps 5 10]

For each cell it runs the search as `benchmarks.vrg_plus` does (2 000 evaluations, noise seed
0), then prints one line per candidate (the searched schedule per damping exponent, VRG alone,
the base; `*` marks the one the check chose) and per shipped table:

* FD of seed 0's 1 000 samples (paired noise, as `benchmarks.quality`);
* `teacher`: squared error per dimension to a converged teacher (DPM++2M on a 100-point grid)
  from 64 held-out starting noises — the search's own measure, on noise it never saw;
* `spread`: the variance of those 64 samples over the teacher's (below 1: less varied than the
  converged samples);
* `check`: the check's measured total (final-sample error + propagated variance) on its own
  teacher noise.

It shows whether the measures the search can make on the model rank schedules as the FD does.
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import torch

from vrg_core.demo import make_context
from vrg_core.demo.sampling import start_noise
from vrg_core.parameterization import noise_level_grid
from vrg_core.search import DEFAULT_GRID, Teacher, run_teacher, sample

from .backend import Unavailable, load_backend
from .quality import log
from .subjects import Subject, demo_subject
from .vrg_plus import BASE, SHIPPED, searched

HELD_OUT_SAMPLES = 64
HELD_OUT_SEED = 1


@dataclasses.dataclass(frozen=True)
class HeldOutTeacher:
    """Converged samples from held-out noise, to score any schedule against (demo models, class-conditional)."""

    denoise: object
    teacher: Teacher

    @classmethod
    def make(cls, subject: Subject, sigma0: float, sigma_min: float) -> "HeldOutTeacher":
        model = subject.extra["model"]
        grid = noise_level_grid(sigma_min, sigma0, DEFAULT_GRID, model.kind)[::-1].copy()
        start = start_noise(model, sigma0, HELD_OUT_SEED)(HELD_OUT_SAMPLES)  # the search's own noise is seed 0
        denoise = lambda x, s, i: model.denoise(x, s, make_context(i % 10))  # noqa: E731
        with torch.inference_mode():
            return cls(denoise, run_teacher(denoise, start, grid, HELD_OUT_SAMPLES, lambda n: None))

    def score(self, sigmas: np.ndarray, sampler: str) -> tuple[float, float]:
        """(squared error per dimension, sample variance over the teacher's) of the noise-free `sampler` on `sigmas`."""
        proxy = "euler" if sampler == "euler_ancestral" else sampler
        with torch.inference_mode():
            final = sample(self.denoise, self.teacher.start, sigmas, proxy)
        spread = float(final.var(dim=0).mean() / self.teacher.final.var(dim=0).mean())
        return float((final - self.teacher.final).pow(2).mean()), spread


def fd_of(backend, subject: Subject, sampler: str, sigmas, batch, denoise) -> float:
    with torch.inference_mode():
        out = backend.sample(sampler, denoise, batch.noise, torch.as_tensor(sigmas, dtype=torch.float32),
                             subject.sampling, seed=batch.seed)
    return subject.metric(out)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.search_candidates", description=__doc__.splitlines()[0])
    ap.add_argument("--subjects", default="eps,flow")
    ap.add_argument("--samplers", nargs="+", default=["euler", "dpmpp_2m"])
    ap.add_argument("--steps", nargs="+", type=int, default=[5, 10])
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    backend = load_backend()
    for name in a.subjects.split(","):
        subject = demo_subject(name)
        table = subject.table("heldout", 48, 128)
        batch = subject.batch(0, 1000)
        denoise = subject.make_denoise(batch)
        for sampler in a.samplers:
            for steps in a.steps:
                base = backend.sigmas(subject.sampling, BASE[name], steps)
                held_out = HeldOutTeacher.make(subject, float(base[0]), table.sigma_min)
                plus = searched(subject, base, table, sampler, 2000)
                schedules = dict(plus.candidates)
                for shipped in SHIPPED[name]:
                    try:
                        schedules[shipped] = backend.sigmas(subject.sampling, shipped, steps).double().numpy()
                    except Unavailable as e:
                        log(f"{shipped}: {e}")
                for label, sigmas in schedules.items():
                    error, spread = held_out.score(sigmas, sampler)
                    check = plus.objectives.get(label)
                    print(f"{name} {sampler}/{steps} {'*' if label == plus.chosen else ' '}{label:<12} "
                          f"FD {fd_of(backend, subject, sampler, sigmas, batch, denoise):6.2f}  teacher {error:.5f}  "
                          f"spread {spread:.3f}  check " + (f"{check.total:.5f}" if check else "   –   ")
                          + f"  sigmas {np.round(sigmas, 3).tolist()}", flush=True)


if __name__ == "__main__":
    main()
