"""Teacher trajectories of the model itself, and sampling a schedule against them.

The teacher solves B trajectories from noise with DPM-Solver++(2M) on a fine grid
g_0 > g_1 > … > g_{G−1} > 0 (σ descending, the start first). Every grid state X_m and its
prediction D_m = D(X_m, g_m) are kept only through their Gram matrix, so memory does not grow
with the number of samples.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import torch

from ..profile import Denoise
from .samplers import Sampler, sample

Spend = Callable[[int], None]  # told how many model evaluations (samples) were just made


def batches(count: int, size: int):
    """Sample index ranges of at most `size`, covering 0..count−1 in order."""
    for lo in range(0, count, size):
        yield torch.arange(lo, min(lo + size, count))


def per_noise_distance(samples: torch.Tensor, reference: torch.Tensor) -> np.ndarray:
    """Squared distance per dimension of each sample to its reference, [B] float64."""
    return (samples - reference).pow(2).reshape(len(samples), -1).mean(dim=1).numpy()


@dataclasses.dataclass(frozen=True)
class Teacher:
    """What the search keeps of the teacher trajectories.

    `grid` — σ of the grid points, descending from σ_0, without the final 0 (length G).
    `gram` — [2G, 2G] sums over samples of dot products of the vectors X_0..X_{G−1},
    D_0..D_{G−1} (the teacher's final sample is D_{G−1}). `numel` — samples × dimensions.
    `start` — the B starting states; `final` — the teacher's B final samples (float64).
    `probe` — the first batch's vectors themselves [2G, its samples × dimensions] (float64),
    to compare a checked schedule's states with the teacher's (`check`).
    """

    grid: np.ndarray
    gram: np.ndarray
    numel: int
    start: torch.Tensor
    final: torch.Tensor
    probe: torch.Tensor

    def brackets(self, sigma) -> tuple[np.ndarray, np.ndarray]:
        """(i, f) per σ: it lies a fraction f of the way from grid point i to i + 1, linearly in log σ (held at
        the grid's ends; σ 0 is below it)."""
        position = np.interp(-np.log(np.maximum(sigma, 1e-300)), -np.log(self.grid), np.arange(len(self.grid)))
        lower = np.minimum(position.astype(int), len(self.grid) - 2)
        return lower, position - lower


def run_teacher(denoise: Denoise, start: torch.Tensor, grid: np.ndarray, batch_size: int, spend: Spend) -> Teacher:
    """Solve trajectories from `start` on `grid` (σ descending, then 0) with DPM++2M, `batch_size` at a time.

    Only the Gram matrix of each batch's states and predictions is kept, and the first batch's
    vectors (`Teacher.probe`), so memory is at most 2 × 2G × batch_size latents whatever the
    number of samples.
    """
    G = len(grid)
    gram, finals, probe = np.zeros((2 * G, 2 * G)), [], None
    for index in batches(len(start), batch_size):
        count = len(index)
        vectors = torch.empty((2 * G, count * start[0].numel()), dtype=torch.float64)

        calls = []

        def keep(sigma: float, x: torch.Tensor, d: torch.Tensor, vectors=vectors, count=count, calls=calls) -> None:
            k = len(calls)
            vectors[k], vectors[G + k] = x.reshape(-1), d.reshape(-1)
            calls.append(sigma)
            spend(count)

        finals.append(sample(denoise, start[index], np.append(grid, 0.0), "dpmpp_2m", index, keep))
        gram += (vectors @ vectors.T).numpy()
        probe = vectors if probe is None else probe
    return Teacher(grid, gram, start.numel(), start, torch.cat(finals), probe)


def check(denoise: Denoise, teacher: Teacher, sigmas: np.ndarray, sampler: Sampler, start: torch.Tensor,
          batch_size: int, spend: Spend) -> tuple[np.ndarray, np.ndarray]:
    """Sample `sigmas` with the noise-free `sampler` from `start` (the teacher's noise, formed at `sigmas[0]`).

    Returns each noise's squared error per dimension against its teacher's final sample ([B]), and the
    model's response along the sampler's own deviations, measured on the teacher's first batch
    (`Teacher.probe`): one row (grid position, ⟨ΔD, Δx⟩, |Δx|², |ΔD|²) per model call inside the
    grid after the first (a multi-stage sampler's calls between levels too), where Δx is the
    state's distance to the teacher's state at that σ and ΔD its prediction's
    (`refine.response_curve`, `refine.mismatch_curve`).
    """
    G, errors, rows = len(teacher.grid), [], []
    for n, index in enumerate(batches(len(start), batch_size)):
        count, calls = len(index), []

        def visit(sigma: float, x: torch.Tensor, d: torch.Tensor, count=count, first=n == 0, calls=calls) -> None:
            spend(count)
            calls.append(sigma)
            if first and len(calls) > 1 and teacher.grid[-1] <= sigma <= teacher.grid[0]:
                lower, frac = teacher.brackets(np.array([sigma]))
                i, f = int(lower[0]), float(frac[0])
                dx = x.reshape(-1) - ((1 - f) * teacher.probe[i] + f * teacher.probe[i + 1])
                dd = d.reshape(-1) - ((1 - f) * teacher.probe[G + i] + f * teacher.probe[G + i + 1])
                if float(dx @ dx) > 0:
                    rows.append((i + f, float(dd @ dx), float(dx @ dx), float(dd @ dd)))

        final = sample(denoise, start[index], sigmas, sampler, index, visit)
        errors.append(per_noise_distance(final, teacher.final[index]))
    return np.concatenate(errors), np.array(rows, dtype=np.float64).reshape(-1, 4)
