"""Plain samplers for the demo models (ComfyUI's "simple" scheduler and Euler sampler)."""

from __future__ import annotations

import math

import torch

from ..parameterization import add_noise
from .models import DemoModel, make_context
from .nets import NO_DIGIT


def simple_sigmas(model: DemoModel, steps: int) -> torch.Tensor:
    """ComfyUI's "simple" scheduler: `steps` evenly spaced entries of the σ table, then 0.

    Returns a descending float32 tensor of length steps + 1 starting at σ_max.
    """
    stride = len(model.sigmas) / steps
    picks = [model.sigmas[-(1 + int(i * stride))] for i in range(steps)]
    return torch.stack(picks + [torch.zeros(())]).float()


def guided_denoise(model: DemoModel, x: torch.Tensor, sigma: torch.Tensor,
                   labels: torch.Tensor | None, cfg: float) -> torch.Tensor:
    """D with classifier-free guidance: D_u + cfg·(D_c − D_u); cfg 1 (or no labels) skips D_u."""
    if labels is None:
        return model.denoise(x, sigma, None)
    if cfg == 1.0:
        return model.denoise(x, sigma, make_context(labels))
    both = make_context(torch.cat([labels, torch.full_like(labels, NO_DIGIT)]))
    cond, uncond = model.denoise(torch.cat([x, x]), sigma, both).chunk(2)
    return uncond + cfg * (cond - uncond)


@torch.no_grad()
def sample_demo_euler(model: DemoModel, noise: torch.Tensor, sigmas: torch.Tensor,
                 labels: torch.Tensor | None = None, cfg: float = 1.0) -> torch.Tensor:
    """Euler sampling (k-diffusion convention) from standard-normal `noise` [B, 1, 16, 16].

    The start is the model's noising of a zero latent at σ_0 (`add_noise`: σ_0·ε for EPS,
    where ComfyUI's KSampler uses sqrt(1 + σ_0²)·ε at full denoise; ε for flow at σ_0 = 1),
    and each step is x ← x + (σ_{k+1} − σ_k)·(x − D(x, σ_k))/σ_k. `labels` [B] are
    digits 0–9 (or None for unconditional). Returns the final x (images in about [-1, 1] when σ_N = 0).
    """
    x = add_noise(torch.zeros_like(noise), noise, sigmas[:1].expand(noise.shape[0]), model.kind)
    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:]):
        denoised = guided_denoise(model, x, sigma, labels, cfg)
        x = x + (sigma_next - sigma) * (x - denoised) / sigma
    return x


def exponential_sigmas(model: DemoModel, steps: int) -> torch.Tensor:
    """k-diffusion's exponential schedule over the model's [σ_min, σ_max], then 0 (descending, float32)."""
    levels = torch.linspace(math.log(model.sigma_max), math.log(model.sigma_min), steps, dtype=torch.float64).exp()
    return torch.cat([levels, torch.zeros(1, dtype=torch.float64)]).float()


def karras_sigmas(model: DemoModel, steps: int, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. (2022) schedule over the model's [σ_min, σ_max], then 0 (descending, float32)."""
    ramp = torch.linspace(0, 1, steps, dtype=torch.float64)
    lo, hi = model.sigma_min ** (1 / rho), model.sigma_max ** (1 / rho)
    return torch.cat([(hi + ramp * (lo - hi)) ** rho, torch.zeros(1, dtype=torch.float64)]).float()
