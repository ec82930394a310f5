"""The demo models as a host without ComfyUI, for the command line and the benchmarks' k-diffusion backend.

It offers what ComfyUI offers a user of the same model, as far as vrg_core can say it without
ComfyUI: the demo's own schedulers (karras, exponential, simple), the published tables ComfyUI ships for
the model's noise process (`vrg_core.published`, under the node's names), vrg_core's own samplers, and the
KSampler's starting noise for an empty latent (the seed's standard-normal noise, scaled as
ComfyUI's `noise_scaling` does at full denoise). σ is descending everywhere.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from ..error_table import ErrorTable
from ..published import published_schedules
from ..search import DEFAULT_EVALUATIONS, DEFAULT_VARIANCE_WEIGHT, Run, SearchRequest, Start, as_sampler
from .models import DemoModel, make_context
from .sampling import exponential_sigmas, karras_sigmas, simple_sigmas

LATENT_SHAPE = (1, 16, 16)  # one demo latent [C, H, W]: a 16×16 grey digit
BATCH = 64  # samples per model call: a 16×16 latent is cheap, calls are not (the node's default is 4)


def demo_schedules(model: DemoModel, steps: int) -> dict[str, np.ndarray]:
    """Every schedule the demo offers at `steps`, as ComfyUI hands them (float32 levels), σ descending, float64:
    its own schedulers (ComfyUI's karras, exponential and simple) and the published tables for the model's
    noise process (ays_sd1, ays_sdxl and gits for EPS; oss_flux and oss_wan for flow). A table that does not
    fit the model (starting above its σ_max) is still offered: the search leaves it out (`usable`)."""
    own = {name: make(model, steps).double().numpy() for name, make in
           (("karras", karras_sigmas), ("exponential", exponential_sigmas), ("simple", simple_sigmas))}
    tables = {name: sigmas.astype(np.float32).astype(np.float64)
              for name, sigmas in published_schedules(model.kind, steps).items()}
    return {**own, **tables}


def base_scheduler(model: DemoModel) -> str:
    """The scheduler a demo search starts from: karras for EPS, simple for flow."""
    return "simple" if model.kind.is_flow else "karras"


def ksampler_start(model: DemoModel, seed: int) -> Start:
    """`start(count, σ)`: ComfyUI's KSampler's first latent for an empty demo latent — the seed's noise
    (as `comfy.sample.prepare_noise` draws it) times σ, or times √(1 + σ²) for an EPS-process model at its
    σ_max (full denoise, as KSAMPLER.max_denoise decides: within a relative 1e-5, or above); flow: σ·ε."""

    def start(count: int, sigma: float) -> torch.Tensor:
        noise = torch.randn((count, *LATENT_SHAPE), generator=torch.Generator().manual_seed(seed))
        full = math.isclose(model.sigma_max, sigma, rel_tol=1e-5) or sigma > model.sigma_max
        at = torch.tensor([sigma], dtype=torch.float32)  # in float32, as the host computes it
        return noise * (torch.sqrt(1.0 + at**2.0) if full and not model.kind.is_flow else at)

    return start


@dataclasses.dataclass(frozen=True)
class DemoHost:
    """A demo model with one prompt: `digit` 0–9 for every sample, or None for digit = sample number mod 10."""

    model: DemoModel
    digit: int | None = None

    def denoise(self, x: torch.Tensor, sigma: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        labels = index % 10 if self.digit is None else torch.full_like(index, self.digit)
        return self.model.denoise(x, sigma, make_context(labels))

    def request(self, base: np.ndarray, sampler: str, seed: int, evaluations: int = DEFAULT_EVALUATIONS,
                table: ErrorTable | None = None, variance_weight: float = DEFAULT_VARIANCE_WEIGHT,
                batch_size: int = BATCH) -> SearchRequest:
        """The search of `sampler` from `base` (σ descending, ending at 0) against the demo's schedulers."""
        return SearchRequest(np.asarray(base, dtype=np.float64), as_sampler(sampler),
                             demo_schedules(self.model, len(base) - 1), self.model.kind, self.model.sigma_min,
                             self.model.fingerprint, LATENT_SHAPE, seed, 1.0, evaluations, batch_size, table,
                             variance_weight)

    def run(self, seed: int) -> Run:
        """The `Run` for `cached_search`: the model without gradients, the KSampler's start for `seed`."""

        def run(search):
            with torch.inference_mode():
                return search(self.denoise, ksampler_start(self.model, seed), None)

        return run
