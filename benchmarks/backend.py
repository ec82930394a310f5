"""The samplers and schedulers users run, imported from where they live — never copied here.

* ``comfyui`` (when ``COMFYUI_PATH`` points at a ComfyUI checkout): ComfyUI's own
  ``comfy.samplers.sampler_object(name)`` (a KSAMPLER wrapping ``comfy.k_diffusion.sampling``,
  including its initial-noise scaling), its ``comfy.samplers.calculate_sigmas`` schedulers on a real
  ``comfy.model_sampling`` object, and the AlignYourSteps, GITS (coefficient 1.20) and
  OptimalSteps (FLUX) nodes for AYS-SD1, GITS and OSS-Flux.
* ``k-diffusion`` (otherwise; benchmark-only extra): the ``k_diffusion`` package's samplers and its
  Karras / exponential / DiscreteSchedule ("normal") schedules. ComfyUI-only schedulers (beta,
  AYS-SD1, GITS, OSS-Flux) and the ancestral sampler on flow models (k-diffusion's is variance-exploding only)
  are reported as unavailable; "simple" for flow models uses ``vrg_core.demo.sampling``.

A model is given as ``denoise(x, sigma_batch) -> D`` (sigma_batch of shape [B]).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from types import SimpleNamespace
from typing import Callable

import torch

from vrg_core.parameterization import ModelKind

SAMPLERS = ("euler", "dpmpp_2m", "euler_ancestral")
EPS_SCHEDULERS = ("normal", "karras", "exponential", "ays_sd1", "beta")
FLOW_SCHEDULERS = ("simple", "beta")
Denoise = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Unavailable(Exception):
    """This backend has no such sampler or scheduler for this model kind."""


@dataclasses.dataclass(frozen=True)
class Sampling:
    """How a model's noise levels are defined (ComfyUI's ModelSamplingDiscrete / DiscreteFlow settings)."""

    kind: ModelKind
    flow_shift: float = 3.0

    @property
    def type(self) -> str:
        return "discrete_flow" if self.kind.is_flow else "discrete"


SD15 = Sampling(ModelKind.EPS)
FLOW3 = Sampling(ModelKind.CONST, 3.0)


def load_backend(prefer: str | None = None):
    """ComfyUI's when COMFYUI_PATH is set (or `prefer == "comfyui"`), else the k-diffusion package."""
    path = os.environ.get("COMFYUI_PATH")
    if prefer == "k-diffusion" or (prefer is None and not path):
        return KDiffusionBackend()
    if not path:
        raise RuntimeError("COMFYUI_PATH is not set; point it at a ComfyUI checkout")
    return ComfyBackend(path)


class ComfyBackend:
    name = "comfyui"

    def __init__(self, path: str):
        if path not in sys.path:
            sys.path.insert(0, path)
        from comfy.cli_args import args

        args.cpu = True
        import comfy.k_diffusion.sampling  # noqa: F401  (the samplers' home)
        import comfy.model_sampling as ms
        import comfy.samplers as samplers
        from comfy_extras.nodes_align_your_steps import AlignYourStepsScheduler
        from comfy_extras.nodes_gits import GITSScheduler
        from comfy_extras.nodes_optimalsteps import OptimalStepsScheduler

        self._ms, self._samplers, self._ays = ms, samplers, AlignYourStepsScheduler
        self._gits, self._oss = GITSScheduler, OptimalStepsScheduler
        self._cache: dict = {}
        import comfyui_version

        self.version = f"ComfyUI {comfyui_version.__version__}"

    def model_sampling(self, sampling: Sampling):
        if sampling not in self._cache:
            ms = self._ms
            if sampling.kind.is_flow:
                class MS(ms.ModelSamplingDiscreteFlow, ms.CONST):
                    pass
                settings = {"shift": sampling.flow_shift, "multiplier": 1000}
            else:
                class MS(ms.ModelSamplingDiscrete, ms.EPS):
                    pass
                settings = {"beta_schedule": "linear", "linear_start": 0.00085, "linear_end": 0.012, "timesteps": 1000}
            self._cache[sampling] = MS(SimpleNamespace(sampling_settings=settings))
        return self._cache[sampling]

    def scheduler_names(self) -> list[str]:
        """Every scheduler registered in ComfyUI (other packs' too)."""
        return list(self._samplers.SCHEDULER_NAMES)

    def sigmas(self, sampling: Sampling, scheduler: str, steps: int) -> torch.Tensor:
        if scheduler == "ays_sd1":
            if sampling.kind.is_flow:
                raise Unavailable("AYS-SD1 is for SD1.x (EPS) models")
            return self._ays.execute("SD1", steps, 1.0).result[0].float()
        if scheduler == "gits":  # the GITS node's default coefficient, 1.20
            if sampling.kind.is_flow:
                raise Unavailable("GITS is for SD1.x-range (EPS) models")
            return self._gits.execute(1.20, steps, 1.0).result[0].float()
        if scheduler == "oss_flux":
            if not sampling.kind.is_flow:
                raise Unavailable("OSS-Flux is for flow models")
            return self._oss.execute("FLUX", steps, 1.0).result[0].float()
        return self._samplers.calculate_sigmas(self.model_sampling(sampling), scheduler, steps).float()

    def guider(self, sampling: Sampling) -> SimpleNamespace:
        """What a sampler function reads of CFGGuider: `.inner_model.model_sampling`, `.model_patcher`."""
        ms = self.model_sampling(sampling)
        return SimpleNamespace(inner_model=SimpleNamespace(model_sampling=ms),
                               model_patcher=SimpleNamespace(get_model_object=lambda name: ms))

    def search_sampler(self, name: str, sampling: Sampling):
        """The VRG+ search's `Sampler` for ComfyUI's sampler `name` (its own function)."""
        from vrg_core.search.samplers import host_sampler

        return host_sampler(name, lambda runs: self._samplers.sampler_object(runs).sampler_function,
                            self.guider(sampling))

    def ksampler_sigmas(self, sampling: Sampling, scheduler: str, steps: int, sampler: str) -> torch.Tensor:
        """`sigmas` as the stock KSampler hands them to `sampler` (steps + 1, the penultimate dropped, for some)."""
        if sampler not in self._samplers.KSampler.DISCARD_PENULTIMATE_SIGMA_SAMPLERS:
            return self.sigmas(sampling, scheduler, steps)
        s = self.sigmas(sampling, scheduler, steps + 1)
        return torch.cat([s[:-2], s[-1:]])

    def sample(self, sampler: str, denoise: Denoise, noise: torch.Tensor, sigmas: torch.Tensor,
               sampling: Sampling, seed: int) -> torch.Tensor:
        """ComfyUI's KSAMPLER.sample for `sampler` on an empty latent (its own noise scaling and seeding)."""
        guider = self.guider(sampling)

        class ModelWrap:  # what CFGGuider hands KSAMPLER: a callable with .inner_model.model_sampling
            inner_model, model_patcher = guider.inner_model, guider.model_patcher

            def __call__(self, x, sigma, model_options=None, seed=None, **kwargs):
                return denoise(x, sigma)

        k = self._samplers.sampler_object(sampler)
        with torch.no_grad():
            return k.sample(ModelWrap(), sigmas, {"seed": seed}, None, noise, latent_image=torch.zeros_like(noise),
                            disable_pbar=True)


class KDiffusionBackend:
    name = "k-diffusion"

    def __init__(self):
        try:
            import k_diffusion
        except ImportError as e:
            raise RuntimeError(
                f"without COMFYUI_PATH the benchmark needs the k-diffusion package ({e}); "
                "see benchmarks/README or set COMFYUI_PATH") from None
        self._k = k_diffusion
        self.version = f"k-diffusion {getattr(k_diffusion, '__version__', '?')}"
        self._tables: dict = {}

    def _table(self, sampling: Sampling) -> torch.Tensor:
        from vrg_core.demo.models import eps_sigma_table, flow_sigma_table

        if sampling not in self._tables:
            self._tables[sampling] = flow_sigma_table(sampling.flow_shift) if sampling.kind.is_flow else eps_sigma_table()
        return self._tables[sampling]

    def sigmas(self, sampling: Sampling, scheduler: str, steps: int) -> torch.Tensor:
        table = self._table(sampling)
        lo, hi = float(table[0]), float(table[-1])
        ks = self._k.sampling
        if scheduler == "karras":
            return ks.get_sigmas_karras(steps, lo, hi).float()
        if scheduler == "exponential":
            return ks.get_sigmas_exponential(steps, lo, hi).float()
        if scheduler == "normal" and not sampling.kind.is_flow:
            return self._k.external.DiscreteSchedule(table, quantize=True).get_sigmas(steps).float()
        if scheduler == "simple" and sampling.kind.is_flow:
            from vrg_core.demo.sampling import simple_sigmas

            return simple_sigmas(SimpleNamespace(sigmas=table), steps)
        raise Unavailable(f"scheduler {scheduler!r} for {sampling.kind.value} needs ComfyUI (set COMFYUI_PATH)")

    def sample(self, sampler: str, denoise: Denoise, noise: torch.Tensor, sigmas: torch.Tensor,
               sampling: Sampling, seed: int) -> torch.Tensor:
        ks = self._k.sampling
        model = lambda x, sigma, **kw: denoise(x, sigma)  # noqa: E731
        x = noise * sigmas[0]  # k-diffusion's convention; the flow start x = σ0·ε for an empty latent too
        with torch.no_grad():
            if sampler == "euler":
                return ks.sample_euler(model, x, sigmas, disable=True)
            if sampler == "dpmpp_2m":
                return ks.sample_dpmpp_2m(model, x, sigmas, disable=True)
            if sampler == "euler_ancestral":
                if sampling.kind.is_flow:
                    raise Unavailable("k-diffusion's euler_ancestral is for variance-exploding (EPS) models only")
                g = torch.Generator().manual_seed(seed)
                noise_sampler = lambda s, s_next: torch.randn(x.shape, generator=g, dtype=x.dtype)  # noqa: E731
                return ks.sample_euler_ancestral(model, x, sigmas, disable=True, noise_sampler=noise_sampler)
        raise Unavailable(f"sampler {sampler!r} is not in this benchmark")
