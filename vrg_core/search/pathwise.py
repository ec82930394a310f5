"""The Brownian paths a pathwise (SDE) sampler is judged on: one per noise, shared by every schedule.

Given its Brownian path, an SDE sampler such as DPM++ 2M SDE is deterministic, and the same SDE
solved on a fine grid with the same path is its pathwise limit, as the converged ODE solution is
a noise-free sampler's. The search gives each of its noises its own seeded path over one σ
interval that holds every schedule it runs (`Paths`), so every candidate and the fine-grid
reference see the same path. The host draws the paths (`Sampler.brownian`: ComfyUI's
`BrownianTreeNoiseSampler`); the path of a noise depends on its seed and the interval only, not
on the batch it runs in.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from .samplers import NoiseSampler, Sampler

LOW_MARGIN = 0.5  # the interval reaches down to half the least σ run, and
HIGH_MARGIN = 1e-5  # a little above the greatest (the host's tree may query σ in float32, rounded up)


@dataclasses.dataclass(frozen=True)
class Paths:
    """The search's Brownian paths for `sampler`: over σ in [`low`, `high`], noise number i's seeded with
    `seeds(i)` (from the search's `seed`)."""

    sampler: Sampler
    low: float
    high: float
    seed: int

    def seeds(self, index: torch.Tensor) -> list[int]:
        """The path seed of each sample number in `index` (a stream of its own for each search seed)."""
        return [int(np.random.SeedSequence([self.seed, int(i)]).generate_state(1)[0]) for i in index]

    def noise(self, x: torch.Tensor, index: torch.Tensor) -> NoiseSampler:
        """The noise sampler of sample numbers `index` (the rows of `x`): each row's own path, its increments on
        `x`'s device whatever the device of the σ it is asked at."""
        path = self.sampler.brownian(x, self.low, self.high, self.seeds(index))
        return lambda sigma, sigma_next: path(sigma, sigma_next).to(x.device)


def paths_for(sampler: Sampler, schedules, seed: int) -> Paths:
    """`Paths` over an interval holding every schedule in `schedules` (σ descending, ending at 0), with margins
    (`LOW_MARGIN`, `HIGH_MARGIN`) so that no run queries a path outside it."""
    levels = np.concatenate([np.asarray(s, dtype=np.float64) for s in schedules])
    return Paths(sampler, LOW_MARGIN * float(levels[levels > 0].min()), (1 + HIGH_MARGIN) * float(levels.max()), seed)
