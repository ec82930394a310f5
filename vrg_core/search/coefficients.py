"""The samplers the search can follow: one noise-free step as a linear combination, and sampling with it.

σ is descending along a schedule (σ_0 the start, σ_N = 0), in the k-diffusion convention.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ..errors import VRGError
from ..profile import Denoise

SAMPLERS = ("euler", "dpmpp_2m", "euler_ancestral")


def noise_free(sampler: str) -> str:
    """The deterministic sampler a stochastic one is searched and checked on (euler_ancestral → euler)."""
    if sampler not in SAMPLERS:
        raise VRGError(f"sampler {sampler!r} cannot be searched; use one of: {', '.join(SAMPLERS)}")
    return "euler" if sampler == "euler_ancestral" else sampler


def step_coefficients(sampler: str, sigma_prev, sigma, sigma_next) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(c_x, c_D, c_old) of one noise-free step x_next = c_x·x + c_D·D(x, σ) + c_old·D_prev.

    ComfyUI's (k-diffusion's) `sample_euler` and `sample_dpmpp_2m`; `euler_ancestral` uses
    Euler's. Arrays broadcast; `sigma_prev` NaN means "no previous step" (the first step,
    where DPM++2M is first order). A step to σ_next = 0 returns D.
    """
    sp, s, sn = (np.asarray(v, dtype=np.float64) for v in (sigma_prev, sigma, sigma_next))
    ratio = sn / s
    c_x, c_d = ratio, 1.0 - ratio
    c_old = np.zeros(np.broadcast_shapes(sp.shape, s.shape, sn.shape))
    if noise_free(sampler) == "dpmpp_2m":
        second_order = np.isfinite(sp) & (sn > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.log(sp / s) / np.log(s / sn)  # h_last / h
            half = np.where(second_order, 1.0 / (2.0 * r), 0.0)
        c_old = -c_d * half
        c_d = c_d * (1.0 + half)
    return np.broadcast_to(c_x, c_old.shape), np.broadcast_to(c_d, c_old.shape), c_old


def sample(denoise: Denoise, x: torch.Tensor, sigmas: np.ndarray, sampler: str, index: torch.Tensor | None = None,
           visit: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None) -> torch.Tensor:
    """The noise-free part of `sampler` on schedule `sigmas` (descending) from states `x` (float64 result).

    The model sees `x`'s dtype and `index` (default 0..B−1); `visit(k, x_k, D_k)` is called
    after each of its evaluations.
    """
    index = torch.arange(x.shape[0]) if index is None else index
    dtype, x, old = x.dtype, x.to(torch.float64), None
    for k in range(len(sigmas) - 1):
        with torch.no_grad():
            d = denoise(x.to(dtype), torch.full((x.shape[0],), float(sigmas[k])), index).to(torch.float64)
        if not torch.isfinite(d).all():
            raise VRGError(f"the model returned NaN or infinity at sigma {sigmas[k]:.4g}; check the model and its inputs")
        if visit is not None:
            visit(k, x, d)
        prev = sigmas[k - 1] if k > 0 else np.nan
        c_x, c_d, c_old = (float(c) for c in step_coefficients(sampler, prev, sigmas[k], sigmas[k + 1]))
        x = c_x * x + c_d * d + (c_old * old if old is not None and c_old else 0.0)
        old = d
    return x
