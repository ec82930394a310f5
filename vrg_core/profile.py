"""Measure a model's prediction error per noise level (the error table).

The model is seen only through `denoise(x, sigma, index) -> D`: x a batch of noisy latents,
sigma their per-sample noise levels (shape [B]), index the positions of their clean latents
in `x0` (so a host can pick per-sample conditioning); D the denoised estimate, exactly as
a sampler calls the model.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import torch

from .errors import Cancelled, VRGError
from .error_table import ErrorTable, TableInfo
from .parameterization import ModelKind, add_noise

Denoise = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
AddNoise = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def job_noise(seed: int, job: int, shape: tuple[int, ...]) -> torch.Tensor:
    """The fixed noise of one (level, sample) job: independent of batch size and order."""
    # 0x9E37…: 2^64 / golden ratio (Fibonacci hashing), so nearby (seed, job) pairs get unrelated generator seeds
    g = torch.Generator().manual_seed((seed * 0x9E3779B97F4A7C15 + job) % (2**63))
    return torch.randn(shape, generator=g, dtype=torch.float32)


def profile(
    denoise: Denoise,
    x0: torch.Tensor,
    kind: ModelKind,
    sigma_grid: np.ndarray,
    samples_per_level: int,
    batch_size: int = 64,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    noisy: AddNoise | None = None,
    info: TableInfo | None = None,
) -> ErrorTable:
    """Error table of `denoise` on clean latents `x0` ([M, ...]) at every level of `sigma_grid` (ascending).

    Job j measures level j mod G on latent (j div G) mod M with noise `job_noise(seed, j)`,
    so consecutive jobs — and each batch — mix noise levels, and every level sees the same
    latents. `noisy(x0, noise, sigma)` forms x (default: the kind's formula; a host passes its
    own `noise_scaling`). `progress(done, total)` is called after each batch; when
    `should_stop()` is true the run raises `Cancelled` and returns nothing. Pure: the same
    inputs and seed give a bit-identical table (callers stamp `info.created` when saving).
    """
    grid = np.asarray(sigma_grid, dtype=np.float64)
    if x0.ndim < 2 or x0.shape[0] == 0:
        raise VRGError("the image set is empty; give at least one clean latent to profile on")
    if not torch.isfinite(x0).all():
        raise VRGError("the clean latents contain NaN or infinity; check the images and the VAE encode")
    if samples_per_level < 1:
        raise VRGError(f"samples per level must be at least 1, got {samples_per_level}")
    if batch_size < 1:
        raise VRGError(f"batch size must be at least 1, got {batch_size}")
    if grid.ndim != 1 or len(grid) < 2 or np.any(np.diff(grid) <= 0) or grid[0] <= 0:
        raise VRGError("the noise-level grid must be ascending, positive and have at least 2 levels")
    make_noisy = noisy or (lambda clean, noise, sigma: add_noise(clean, noise, sigma, kind))
    levels, count = len(grid), x0.shape[0]
    total = levels * samples_per_level
    level_of = np.arange(total) % levels
    mse = np.empty(total)
    mean_error = np.empty(total)
    sigma_t = torch.tensor(grid, dtype=torch.float32)
    for start in range(0, total, batch_size):
        if should_stop is not None and should_stop():
            raise Cancelled("profiling cancelled; nothing was saved")
        jobs = np.arange(start, min(start + batch_size, total))
        index = torch.as_tensor((jobs // levels) % count)
        clean = x0[index].to(torch.float32)
        noise = torch.stack([job_noise(seed, int(j), tuple(x0.shape[1:])) for j in jobs])
        sigma = sigma_t[torch.as_tensor(level_of[jobs])]
        with torch.no_grad():
            denoised = denoise(make_noisy(clean, noise, sigma).to(x0.dtype), sigma, index)
        err = (denoised.to(torch.float64) - clean.to(torch.float64)).flatten(1)
        if not torch.isfinite(err).all():
            raise VRGError("the model returned NaN or infinity while profiling; check the model and its inputs")
        s = sigma.to(torch.float64)
        mse[jobs] = (err.pow(2).mean(1) / s**2).numpy()
        mean_error[jobs] = (err.mean(1) / s).numpy()
        if progress is not None:
            progress(int(jobs[-1]) + 1, total)
    info = dataclasses.replace(info or TableInfo(), seed=seed, dataset_size=count)
    return ErrorTable.from_samples(kind, grid, level_of, mse, mean_error, info)
