"""Noise levels in ComfyUI's (k-diffusion) convention and their VP-equivalent ᾱ.

Conventions used throughout `vrg_core`:

* σ is the model's own noise level as ComfyUI passes it to the model (SIGMAS entries).
* A sampling schedule is a 1-D float tensor σ_0 > σ_1 > … > σ_N; σ_0 is the start
  (noisiest), σ_N the end (usually 0).
* ᾱ is the VP-equivalent signal fraction (1 = clean, 0 = pure noise).

Model kinds and how a noisy latent x is formed from a clean latent x0 and noise ε:

* EPS, V_PREDICTION, EDM (SD1.x, SD2.x, SDXL): x = x0 + σ ε, ᾱ = 1 / (1 + σ²).
* CONST (rectified flow: SD3, Flux): x = (1 − σ) x0 + σ ε, σ ∈ [0, 1],
  ᾱ = (1 − σ)² / ((1 − σ)² + σ²).
"""

from __future__ import annotations

import enum

import numpy as np
import torch

from .errors import VRGError


class ModelKind(str, enum.Enum):
    """The host's `model_sampling` family, named as ComfyUI's model_type."""

    EPS = "eps"
    V_PREDICTION = "v_prediction"
    EDM = "edm"
    CONST = "const"

    @classmethod
    def parse(cls, value: "str | ModelKind") -> "ModelKind":
        """Accept a kind or its name in any case (`"EPS"`, `"const"`, or `"flow"` for const)."""
        if isinstance(value, cls):
            return value
        try:
            name = str(value).lower()
            return cls.CONST if name == "flow" else cls(name)
        except ValueError:
            names = ", ".join(k.value for k in cls)
            raise VRGError(f"model kind {value!r} is unknown; use one of: {names}") from None

    @property
    def is_flow(self) -> bool:
        return self is ModelKind.CONST

    @property
    def label(self) -> str:
        """The name users know: "flow (const)" for rectified-flow models (SD3, Flux, Wan), else the value."""
        return "flow (const)" if self is ModelKind.CONST else self.value


def alpha_bar_from_sigma(sigma: np.ndarray, kind: ModelKind) -> np.ndarray:
    """VP-equivalent ᾱ of noise levels σ (any shape, float64)."""
    sigma = np.asarray(sigma, dtype=np.float64)
    if kind.is_flow:
        signal = (1.0 - sigma) ** 2
        return signal / (signal + sigma**2)
    return 1.0 / (1.0 + sigma**2)


def dalpha_bar_dsigma(sigma: np.ndarray, kind: ModelKind) -> np.ndarray:
    """dᾱ/dσ of `alpha_bar_from_sigma` (float64): the chain rule from a table's ᾱ axis to σ."""
    if kind.is_flow:
        u, v = (1.0 - sigma) ** 2, sigma**2
        return (-2.0 * (1.0 - sigma) * (u + v) - u * (-2.0 * (1.0 - sigma) + 2.0 * sigma)) / (u + v) ** 2
    return -2.0 * sigma / (1.0 + sigma**2) ** 2


def sigma_from_alpha_bar(alpha_bar: np.ndarray, kind: ModelKind) -> np.ndarray:
    """Inverse of `alpha_bar_from_sigma`."""
    alpha_bar = np.asarray(alpha_bar, dtype=np.float64)
    ratio = np.sqrt((1.0 - alpha_bar) / alpha_bar)  # noise/signal amplitude
    return ratio / (1.0 + ratio) if kind.is_flow else ratio


def dsigma_dalpha_bar(alpha_bar: np.ndarray, kind: ModelKind) -> np.ndarray:
    """Derivative dσ/dᾱ of `sigma_from_alpha_bar` (negative: σ falls as ᾱ rises)."""
    alpha_bar = np.asarray(alpha_bar, dtype=np.float64)
    ratio = np.sqrt((1.0 - alpha_bar) / alpha_bar)
    dratio = -0.5 / (ratio * alpha_bar**2)
    return dratio / (1.0 + ratio) ** 2 if kind.is_flow else dratio


def log_snr(sigma: np.ndarray, kind: ModelKind) -> np.ndarray:
    """log(ᾱ / (1 − ᾱ)); −inf at a flow model's σ = 1."""
    sigma = np.asarray(sigma, dtype=np.float64)
    with np.errstate(divide="ignore"):
        if kind.is_flow:
            return 2.0 * (np.log1p(-sigma) - np.log(sigma))
        return -2.0 * np.log(sigma)


def sigma_from_log_snr(lam: np.ndarray, kind: ModelKind) -> np.ndarray:
    """Inverse of `log_snr`."""
    ratio = np.exp(-0.5 * np.asarray(lam, dtype=np.float64))
    return ratio / (1.0 + ratio) if kind.is_flow else ratio


def add_noise(x0: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor, kind: ModelKind) -> torch.Tensor:
    """Noisy latent x at per-sample levels `sigma` (shape [B]); the kind's formula above."""
    s = sigma.reshape((-1,) + (1,) * (x0.ndim - 1)).to(x0.dtype)
    if kind.is_flow:
        return (1.0 - s) * x0 + s * noise
    return x0 + s * noise


# A flow model's σ = 1 has log-SNR −inf; the grid's uniform part stops at this σ.
FLOW_GRID_TOP = 0.995


def noise_level_grid(sigma_min: float, sigma_max: float, size: int, kind: ModelKind) -> np.ndarray:
    """`size` noise levels, ascending, uniform in log-SNR over [σ_min, σ_max].

    σ_max itself is always the last level (the first sampling step dominates the
    cumulative error). For a flow model whose σ_max is 1 (log-SNR −inf) the uniform
    part ends at `FLOW_GRID_TOP` and σ_max = 1 is added as the last level.
    """
    if size < 2:
        raise VRGError(f"grid size {size} is too small; use at least 2 noise levels")
    if not (np.isfinite(sigma_min) and np.isfinite(sigma_max) and 0 < sigma_min < sigma_max):
        raise VRGError(f"noise range [{sigma_min}, {sigma_max}] is invalid; need 0 < sigma_min < sigma_max")
    if kind.is_flow and sigma_max > 1.0:
        raise VRGError(f"sigma_max {sigma_max} is above 1, impossible for a flow (CONST) model")
    top = min(sigma_max, FLOW_GRID_TOP) if kind.is_flow and sigma_max > FLOW_GRID_TOP else sigma_max
    if top <= sigma_min:
        raise VRGError(f"noise range [{sigma_min}, {sigma_max}] is too narrow for a grid")
    if top == sigma_max:
        lam = np.linspace(log_snr(sigma_min, kind), log_snr(sigma_max, kind), size)
        grid = sigma_from_log_snr(lam, kind)
    else:
        lam = np.linspace(log_snr(sigma_min, kind), log_snr(top, kind), size - 1)
        grid = np.append(sigma_from_log_snr(lam, kind), sigma_max)
    grid[0], grid[-1] = sigma_min, sigma_max
    return grid


SD15_BETAS = (0.00085, 0.012, 1000)  # SD1.x's scaled-linear β: start, end, timesteps (ComfyUI's "linear" schedule)


def discrete_vp_sigmas(beta_start: float = SD15_BETAS[0], beta_end: float = SD15_BETAS[1],
                       steps: int = SD15_BETAS[2]) -> np.ndarray:
    """σ of each training timestep (ascending) for a scaled-linear β schedule.

    Defaults are Stable Diffusion 1.x's, as ComfyUI's ModelSamplingDiscrete builds them.
    """
    betas = np.linspace(beta_start**0.5, beta_end**0.5, steps, dtype=np.float64) ** 2
    alpha_bar = np.cumprod(1.0 - betas)
    return np.sqrt((1.0 - alpha_bar) / alpha_bar)


def flow_shift_sigma(t: np.ndarray, shift: float) -> np.ndarray:
    """σ of flow time t ∈ [0, 1] under an SD3/Flux-style shift: shift·t / (1 + (shift − 1)·t)."""
    t = np.asarray(t, dtype=np.float64)
    return shift * t / (1.0 + (shift - 1.0) * t)
