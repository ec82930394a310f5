"""Compare schedules on a model: how close each one's samples come to the model's own converged ones.

The check a user runs on their own model (VRG Compare Schedules, `python -m vrg_core compare`).
From `noises` seeded noises, every schedule (σ descending, ending at 0) is sampled with the same
noise-free sampler, each from its own σ_0 (the same noise, formed at its σ_0 as the host forms
it: `start(count, σ)`). The converged result of each noise is DPM++2M on `REFERENCE_STEPS` steps
spaced as the search's teacher grid (uniform in log-SNR from the largest σ_0 down to the
model's σ_min, then 0). A schedule's figure is the mean squared distance per dimension of its
samples to those, with a bootstrap interval; beside it, how much closer the best schedule is,
paired on the same noises (`selection.gain_interval`). Noises are sample numbers 0…noises−1
for `denoise(x, σ, index)`, so a host's per-sample conditioning is the same for every schedule.
A pathwise (SDE) sampler with the host's Brownian paths runs with its noise, each noise on its own
path (`search.pathwise`), against its own limit: the same SDE on those steps on the same path.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import torch

from .errors import VRGError
from .objective import as_schedule
from .parameterization import ModelKind, noise_level_grid
from .profile import Denoise
from .search.pathwise import paths_for
from .search.request import Start
from .search.samplers import Sampler, as_sampler
from .search.schedule_search import Budget
from .search.selection import INTERVAL, gain_interval, mean_interval, solve
from .search.teacher import per_noise_distance

# Steps of the converged result. On the demo models 100 steps are within 1.2e-7 (EPS) and 5.4e-7 (flow) per
# dimension of 800 steps: under 1e-4 of a 6-step Euler's distance, 0.2-1 % of a 20-step DPM++2M's.
# Cost: 100 evaluations per noise (1 600 for the default 16 noises), most of a comparison's.
REFERENCE_STEPS = 100
MIN_NOISES = 4  # fewer give no usable interval


@dataclasses.dataclass(frozen=True)
class Measured:
    """One schedule on the compared noises. `distance` — per noise, the squared distance per dimension of its
    sample to the converged one; `mean`, `low`–`high` — their mean and its `INTERVAL` bootstrap interval;
    `gain`, `gain_low`–`gain_high` — how much closer the best schedule is: 1 − Σ best's distances / Σ this
    one's, paired, with its interval (0 for the best itself); `steps`; `evaluations` — model evaluations
    its samples cost (summed over noises)."""

    distance: np.ndarray
    mean: float
    low: float
    high: float
    gain: float
    gain_low: float
    gain_high: float
    steps: int
    evaluations: int


@dataclasses.dataclass(frozen=True)
class Comparison:
    """Every schedule's `Measured`, in the order given; `samples` — each one's final samples [noises, …] and
    `reference` the converged ones (float64, the host's model space); `sigma0` — where the converged
    result starts (the largest σ_0); `evaluations` — all model evaluations, the converged result's included."""

    sampler: Sampler
    measured: dict[str, Measured]
    samples: dict[str, torch.Tensor]
    reference: torch.Tensor
    sigma0: float
    reference_steps: int
    evaluations: int

    @property
    def best(self) -> str:
        return min(self.measured, key=lambda k: self.measured[k].mean)

    @property
    def noises(self) -> int:
        return len(self.reference)

    def images_worth(self) -> float:
        """All evaluations in images of the first schedule (its model evaluations for one image)."""
        first = next(iter(self.measured.values()))
        return self.evaluations * self.noises / first.evaluations

    def lines(self) -> list[str]:
        """The table in words: per schedule the distance with its interval and how much closer the best is."""
        first = next(iter(self.measured.values()))
        distance = {k: f"{m.mean:.3g} ({m.low:.3g} to {m.high:.3g})" for k, m in self.measured.items()}
        width, column = max(8, *map(len, self.measured)), max(map(len, distance.values()))
        target = (f"{self.sampler.name}'s own limit ({self.reference_steps} steps from sigma {self.sigma0:.4g} on "
                  "each noise's Brownian path, the schedules on the same path)" if self.sampler.pathwise else
                  f"this model's converged samples (DPM++2M, {self.reference_steps} steps from sigma {self.sigma0:.4g})")
        out = [f"{self.sampler.name} on {self.noises} noises: mean squared distance per dimension to {target}, "
               f"{INTERVAL:.0%} intervals",
               f"  {'schedule':<{width}} {'steps':>5}  {'distance (interval)':<{column}}  the best is closer by"]
        for label, m in self.measured.items():
            closer = "best" if label == self.best else \
                f"{100 * m.gain:.0f} % ({100 * m.gain_low:.0f} to {100 * m.gain_high:.0f} %)"
            out.append(f"  {label:<{width}} {m.steps:>5}  {distance[label]:<{column}}  {closer}")
        out.append(f"cost: {self.evaluations} model evaluations, {self.images_worth():.0f} images' worth at "
                   f"{first.steps} steps ({self.noises * self.reference_steps * reference_calls(self.sampler)} of them for the "
                   "converged samples)")
        if self.sampler.stochastic and not self.sampler.pathwise:
            out.append(f"{self.sampler.name} adds noise when it samples: compared here on its noise-free part")
        return out


def reference_calls(sampler: Sampler) -> int:
    """Model calls a reference step costs: a pathwise sampler's limit is that sampler's run, else DPM++2M."""
    return sampler.calls_per_step if sampler.pathwise else 1


def compared_schedule(sigmas, name: str) -> np.ndarray:
    """`sigmas` as a schedule to compare (σ descending, ending at 0, float64); VRGError naming `name` if not."""
    s = as_schedule(sigmas, name)
    if s[-1] != 0:
        raise VRGError(f"{name} ends at sigma {s[-1]:.4g}, not 0: compare full schedules (a scheduler's whole output, "
                       "denoise 1), whose samples are finished images")
    return s


def compare_schedules(denoise: Denoise, start: Start, schedules: dict[str, object], sampler: str | Sampler,
                      kind: ModelKind, sigma_min: float, noises: int = 16, *, batch_size: int = 16,
                      reference_steps: int = REFERENCE_STEPS, progress: Callable[[int, int], None] | None = None,
                      should_stop: Callable[[], bool] | None = None) -> Comparison:
    """Sample every schedule of `schedules` ({label: σ descending, ending at 0}; step counts may differ) with the
    noise-free `sampler` from the same `noises` noises and measure it against the converged samples (a pathwise
    sampler: with its noise on each noise's path, against its own limit on the same paths).

    `start(count, σ)` — the host's first `count` starting states at σ, from the same noise whatever σ;
    `kind`, `sigma_min` — the model's noise process and least σ (the converged result's grid). Model
    calls take at most `batch_size` samples. `progress(done, total)` counts evaluations; `should_stop()`
    true stops with `Cancelled`. Deterministic for deterministic `denoise` and `start`.
    """
    sampler = as_sampler(sampler)
    checked = {label: compared_schedule(sigmas, label) for label, sigmas in schedules.items()}
    if len(checked) < 2:
        raise VRGError(f"{len(checked)} schedule(s) given; compare at least 2")
    if noises < MIN_NOISES:
        raise VRGError(f"{noises} noises are too few to compare on; use at least {MIN_NOISES} (16 or more for a "
                       "narrow interval)")
    if batch_size < 1:
        raise VRGError(f"batch size must be at least 1, got {batch_size}")
    sigma0 = max(float(s[0]) for s in checked.values())
    grid = noise_level_grid(sigma_min, sigma0, reference_steps, kind)[::-1]  # also refuses σ_min ≥ σ_0
    limit = np.append(grid, 0.0)
    paths = paths_for(sampler, [limit, *checked.values()], 0) if sampler.pathwise else None
    planned = noises * (reference_steps * reference_calls(sampler)
                        + sum(len(s) - 1 for s in checked.values()) * sampler.calls_per_step)
    budget = Budget(planned, progress, should_stop, "comparison")
    starts: dict[float, torch.Tensor] = {}

    def run(sigmas: np.ndarray, with_sampler: str | Sampler) -> tuple[torch.Tensor, int]:
        """(final samples from every noise, the evaluations they cost)."""
        if float(sigmas[0]) not in starts:
            starts[float(sigmas[0])] = start(noises, float(sigmas[0]))
        states, before = starts[float(sigmas[0])], budget.done
        if states.shape[0] != noises:
            raise VRGError(f"the start function gave {states.shape[0]} starting states for {noises}")
        return solve(denoise, states, sigmas, with_sampler, 0, batch_size, budget.spend, paths), budget.done - before

    reference, _ = run(limit, "dpmpp_2m" if paths is None else sampler)
    samples, distances, spent = {}, {}, {}
    for label, sigmas in checked.items():
        samples[label], spent[label] = run(sigmas, sampler)
        distances[label] = per_noise_distance(samples[label], reference)
    best = min(distances, key=lambda k: distances[k].mean())
    measured = {label: Measured(d, *mean_interval(d), *gain_interval(distances[best], d), len(checked[label]) - 1,
                                spent[label])
                for label, d in distances.items()}
    if progress is not None:
        progress(budget.done, budget.done)  # fewer than planned when a sampler's last step makes fewer calls
    return Comparison(sampler, measured, samples, reference, sigma0, reference_steps, budget.done)
