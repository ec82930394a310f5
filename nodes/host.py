"""What the host offers, said once: the model kind, the schedules a user could pick at a step count,
the sigmas the KSampler hands a sampler, the sampler functions and the starting noise.

The VRG nodes and the benchmarks (`benchmarks.backend`) both read the host through this module,
so a benchmark measures exactly what a user runs. It needs ComfyUI importable (`comfy` on
sys.path) but no running server. σ is descending everywhere (the SIGMAS convention).
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
from types import SimpleNamespace

import numpy as np
import torch

import comfy.model_sampling as sampling
import comfy.sample
import comfy.samplers
from comfy.k_diffusion.sampling import BrownianTreeNoiseSampler

from ..vrg_core.errors import VRGError
from ..vrg_core.parameterization import ModelKind
from ..vrg_core.search import Sampler
from ..vrg_core.search.samplers import HOST_SAMPLERS, host_sampler

VRG_SCHEDULER = "vrg"  # this pack's own scheduler: never a candidate, never a base

# --- the model kind -------------------------------------------------------------------------------------------

# VRG needs how the sampler forms a noisy latent from a clean one (`noise_scaling`) and the σ range;
# it classifies by that noise process, not by the prediction class. Most specific first: EDM derives
# from V_PREDICTION, which derives from EPS (so do X0 and LCM, whose noise process is EPS's).
_KINDS = (("CONST", ModelKind.CONST), ("EDM", ModelKind.EDM), ("V_PREDICTION", ModelKind.V_PREDICTION),
          ("EPS", ModelKind.EPS))
# Prediction types whose noise process VRG does not model, by class name (some exist only in newer ComfyUI).
_REFUSED = {
    "IMG_TO_IMG": "an image-to-image model (the latent is an input image, not noise)",
    "IMG_TO_IMG_FLOW": "an image-to-image flow model (the latent is an input image, not noise)",
    "IMG_TO_IMG_VELOCITY": "an image-to-image velocity model (the latent is an input image, not noise)",
    "COSMOS_RFLOW": "a Cosmos rectified-flow model (its noise level is remapped as sigma / (sigma + 1))",
    "V_PREDICTION_DDPM": "a DDPM v-prediction model (CogVideoX style: unscaled input)",
}
SUPPORTED = ("VRG supports models whose noisy latent is x0 + sigma * noise (EPS, v-prediction, EDM, X0 and LCM: "
             "SD1.x, SD2.x, SDXL, Playground 2.5) or (1 - sigma) * x0 + sigma * noise (flow/CONST with noise scale 1: "
             "SD3, Flux, Wan)")


def _refuse(model_sampling, type_name: str, why: str) -> VRGError:
    return VRGError(f"VRG does not support this model's prediction type {type_name} (model_sampling "
                    f"{type(model_sampling).__name__}): it is {why}. {SUPPORTED}; sample this model with ComfyUI's "
                    "own schedulers instead")


def _forms(model_sampling, kind: ModelKind) -> bool:
    """Whether the host's `noise_scaling` forms x as `kind`'s formula does (probed on two levels)."""
    sigma = torch.tensor([0.25, 0.75])
    noise, clean = torch.full((2, 1, 1, 1), 0.5), torch.full((2, 1, 1, 1), 2.0)
    try:
        x = model_sampling.noise_scaling(sigma, noise.clone(), clean.clone(), max_denoise=False)
    except Exception:  # noqa: BLE001 - an unknown host class: refused below with the reason
        return False
    s = sigma.view(2, 1, 1, 1)
    expected = (1.0 - s) * clean + s * noise if kind.is_flow else clean + s * noise
    return isinstance(x, torch.Tensor) and x.shape == expected.shape and bool(torch.allclose(x.float(), expected))


def model_kind(model_sampling) -> ModelKind:
    """The VRG model kind of a host `model_sampling`; a VRGError naming the type when VRG cannot model it."""
    classes = {c.__name__ for c in type(model_sampling).__mro__}
    for name, why in _REFUSED.items():
        if name in classes:
            raise _refuse(model_sampling, name, why)
    for name, kind in _KINDS:
        family = getattr(sampling, name)
        if isinstance(model_sampling, family):
            if kind.is_flow and float(getattr(model_sampling, "noise_scale", 1.0)) != 1.0:
                raise _refuse(model_sampling, name, f"a flow model with noise scale {model_sampling.noise_scale:g} "
                                                    "(x = (1 - sigma) * x0 + sigma * scale * noise); set its noise "
                                                    "scale to 1 for VRG")
            if not _forms(model_sampling, kind):
                raise _refuse(model_sampling, name, f"derived from {name} but its noise_scaling does not form x "
                                                    f"as {name} does")
            return kind
    raise _refuse(model_sampling, type(model_sampling).__name__,
                  "not derived from ComfyUI's EPS, V_PREDICTION, EDM or CONST")


def sigma_range(model_sampling) -> tuple[float, float]:
    """The model's (σ_min, σ_max)."""
    return float(model_sampling.sigma_min), float(model_sampling.sigma_max)


# --- schedulers and the KSampler's sigmas ------------------------------------------------------------------------

def base_scheduler_names() -> list[str]:
    """Every registered scheduler (other packs' too) but `vrg` itself."""
    return [n for n in comfy.samplers.SCHEDULER_NAMES if n != VRG_SCHEDULER]


def discards_penultimate(sampler_name: str) -> bool:
    """ComfyUI's KSampler asks the scheduler for steps + 1 and drops the penultimate sigma for this sampler."""
    return sampler_name in comfy.samplers.KSampler.DISCARD_PENULTIMATE_SIGMA_SAMPLERS


def ksampler_sigmas(model_sampling, scheduler: str, steps: int, sampler_name: str) -> torch.Tensor:
    """The sigmas the stock KSampler samples with `sampler_name` at `steps` (ComfyUI's `KSampler.calculate_sigmas`)."""
    discard = discards_penultimate(sampler_name)
    sigmas = comfy.samplers.calculate_sigmas(model_sampling, scheduler, steps + discard)
    return torch.cat([sigmas[:-2], sigmas[-1:]]) if discard else sigmas


def scheduler_output(sigmas: torch.Tensor, sampler_name: str) -> tuple[int, torch.Tensor]:
    """(steps the KSampler asks the scheduler for, what the scheduler returns) so it samples exactly `sigmas`.

    For a sampler that drops the penultimate sigma, a level halfway (in σ) to the last is put there to be dropped.
    """
    steps = len(sigmas) - 1
    if not discards_penultimate(sampler_name):
        return steps, sigmas
    return steps + 1, torch.cat([sigmas[:-1], sigmas[-2:-1] / 2, sigmas[-1:]])


# (name, module in comfy_extras, node class, arguments before steps) per noise process
SHIPPED_TABLES = {
    "eps": (("ays_sd1", "nodes_align_your_steps", "AlignYourStepsScheduler", ("SD1",)),
            ("ays_sdxl", "nodes_align_your_steps", "AlignYourStepsScheduler", ("SDXL",)),
            ("gits", "nodes_gits", "GITSScheduler", (1.20,))),
    "flow": (("oss_flux", "nodes_optimalsteps", "OptimalStepsScheduler", ("FLUX",)),
             ("oss_wan", "nodes_optimalsteps", "OptimalStepsScheduler", ("Wan",))),
}


def shipped_table(module: str, node: str, arguments: tuple, steps: int) -> torch.Tensor:
    """The SIGMAS a ComfyUI scheduler node gives at full denoise (V3 `execute` or V1 `get_sigmas`)."""
    cls = getattr(importlib.import_module(f"comfy_extras.{module}"), node)
    out = cls.execute(*arguments, steps, 1.0) if hasattr(cls, "execute") else cls().get_sigmas(*arguments, steps, 1.0)
    return (out.result if hasattr(out, "result") else out)[0]


def candidate_schedules(model_sampling, steps: int, sampler_name: str) -> tuple[dict[str, np.ndarray], list[str]]:
    """Every schedule a user could pick: {name: σ descending, float64} for every registered scheduler (as the
    KSampler hands it to `sampler_name`) and every shipped table for this noise process, and a note per one
    that failed on this model (another pack's scheduler, a ComfyUI without that node)."""
    out, failed = {}, []
    for name in base_scheduler_names():
        try:
            out[name] = ksampler_sigmas(model_sampling, name, steps, sampler_name).double().cpu().numpy()
        except Exception as e:  # noqa: BLE001 - another pack's scheduler may fail on this model; go on without it
            failed.append(f"{name} ({type(e).__name__})")
    process = "flow" if model_kind(model_sampling).is_flow else "eps"
    for name, module, node, arguments in SHIPPED_TABLES[process]:
        try:
            out[name] = shipped_table(module, node, arguments, steps).double().cpu().numpy()
        except Exception as e:  # noqa: BLE001 - a ComfyUI without that node
            failed.append(f"{name} ({type(e).__name__})")
    if failed:
        logging.info("[VRG] candidates left out: %s", ", ".join(failed))
    return out, failed


# --- samplers ---------------------------------------------------------------------------------------------------

def covered_samplers() -> list[str]:
    """ComfyUI's samplers the search covers, in ComfyUI's order."""
    return [n for n in comfy.samplers.SAMPLER_NAMES if n in HOST_SAMPLERS]


def comfy_sampler(name: str, host=None) -> Sampler:
    """Sampler `name` with ComfyUI's own sampler function; `host` — the guider the function may read. An SDE
    sampler's Brownian paths are ComfyUI's own (`brownian_paths`), so it is judged against its own limit."""
    return host_sampler(name, lambda runs: comfy.samplers.sampler_object(runs).sampler_function, host,
                        brownian_paths)


def brownian_paths(x: torch.Tensor, low: float, high: float, seeds: list[int]):
    """ComfyUI's `BrownianTreeNoiseSampler` over σ in [low, high] with one tree per row of `x`, each seeded with
    its seed (on the CPU, as the KSampler's SDE samplers draw it)."""
    return BrownianTreeNoiseSampler(x, torch.tensor(low), torch.tensor(high), seed=seeds, cpu=True)


def searched_alike(function, searched: str) -> bool:
    """Whether ComfyUI's sampler `function` is searched exactly as `searched` is (the sampler itself, the same
    function under another name such as ddim for euler, or its *_cfg_pp variant)."""
    spec = HOST_SAMPLERS[searched]
    return any(comfy.samplers.sampler_object(name).sampler_function is function
               and dataclasses.replace(other, runs="") == dataclasses.replace(spec, runs="")
               and comfy.samplers.sampler_object(other.runs).sampler_function
               is comfy.samplers.sampler_object(spec.runs).sampler_function
               for name, other in HOST_SAMPLERS.items())


def sampler_name(function) -> str:
    """ComfyUI's name of sampler `function` (the first registered name that runs it), else the function's own."""
    for name in comfy.samplers.KSampler.SAMPLERS:
        if getattr(comfy.samplers.sampler_object(name), "sampler_function", None) is function:
            return name
    return getattr(function, "__name__", "an unknown sampler")


# --- the starting noise -----------------------------------------------------------------------------------------

def start_states(base_model, latent_shape: tuple[int, ...], seed: int):
    """`start(count, σ)` for the search: the KSampler's first latent for an empty latent of `latent_shape`
    ([C, H, W, …], one sample) — the seed's noise (`comfy.sample.prepare_noise`) scaled at σ by the model's
    own `noise_scaling` around the processed empty latent, at full denoise when KSAMPLER would say so
    (for EPS at σ_max: √(1 + σ²)·ε). `base_model` — a BaseModel (`ModelPatcher.model`). float32, CPU."""
    model_sampling = base_model.model_sampling
    wrap = SimpleNamespace(inner_model=SimpleNamespace(model_sampling=model_sampling))  # what max_denoise reads
    max_denoise = comfy.samplers.KSAMPLER(None).max_denoise

    def start(count: int, sigma: float) -> torch.Tensor:
        empty = base_model.process_latent_in(torch.zeros((count, *latent_shape))).float()
        unit = comfy.sample.prepare_noise(empty, seed).float()
        at = torch.tensor([sigma], dtype=torch.float32)
        return model_sampling.noise_scaling(at, unit, empty, max_denoise(wrap, at))

    return start
