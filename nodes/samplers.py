"""ComfyUI's samplers as the VRG+ search runs them, and the sigmas a KSampler hands them."""

from __future__ import annotations

import dataclasses

import torch

import comfy.samplers

from ..vrg_core.search import Sampler
from ..vrg_core.search.samplers import HOST_SAMPLERS, host_sampler


def covered_samplers() -> list[str]:
    """ComfyUI's samplers the search covers, in ComfyUI's order."""
    return [n for n in comfy.samplers.SAMPLER_NAMES if n in HOST_SAMPLERS]


def comfy_sampler(name: str, host=None) -> Sampler:
    """Sampler `name` with ComfyUI's own sampler function; `host` — the guider the function may read."""
    return host_sampler(name, lambda runs: comfy.samplers.sampler_object(runs).sampler_function, host)


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


def searched_alike(function, searched: str) -> bool:
    """Whether ComfyUI's sampler `function` is searched exactly as `searched` is (the sampler itself, the same
    function under another name such as ddim for euler, or its *_cfg_pp variant)."""
    spec = HOST_SAMPLERS[searched]
    return any(comfy.samplers.sampler_object(name).sampler_function is function
               and dataclasses.replace(other, runs="") == dataclasses.replace(spec, runs="")
               and comfy.samplers.sampler_object(other.runs).sampler_function
               is comfy.samplers.sampler_object(spec.runs).sampler_function
               for name, other in HOST_SAMPLERS.items())
