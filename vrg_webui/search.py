"""VRG+ searched in the webui, on the loaded checkpoint, through the webui's own sampler and CFG denoiser.

Both webuis ask a k-diffusion sampler for its schedule in `KDiffusionSampler.get_sigmas(p, steps)`, which
returns `p.sampler_noise_scheduler_override(steps)` when that is set, then drops the next-to-last σ for
the samplers that discard it. The VRG+ script sets it to `override`. On the txt2img pass, `schedule_for`
states a `SearchRequest` from what the webui would run (the user's schedule type as the base, every other
schedule type as a candidate, each through `get_sigmas`), and `cached_search` reuses a search made with the
same settings (cache `models/vrg/vrg_search_cache.json`: the checkpoint's fingerprint, sampler, steps, CFG
scale, base and candidates) or runs one:

- the model is `p.sampler.model_wrap_cfg`, the webui's CFG denoiser with the generation's prompt, negative
  prompt and CFG scale (extensions' callbacks included), called with `p.batch_size` rows as it expects;
- the sampler is the function the webui calls (`p.sampler.func`, k-diffusion's or Forge's), noise-free;
- the starting states are the webui's: σ·noise (A1111), or Forge's predictor's `noise_scaling`.

The search's progress is the webui's progress bar (`state.sampling_step` of `state.sampling_steps`), and
Interrupt or Skip stop it: nothing is cached, and the user's own schedule is returned so that the webui's
sampler stops at once as it always does. Other passes (hires fix) sample the user's schedule type.
`WebuiParts` is what of the webui this reads, passed in, so that nothing here imports its `modules`.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from vrg_core.errors import Cancelled, VRGError
from vrg_core.search import SearchCache, SearchRequest, SearchResult, Start, cached_search
from vrg_core.search.request import Search
from vrg_core.search.samplers import HOST_SAMPLERS, Brownian, Sampler, host_sampler
from . import PLUS_PREFIX, PREFIX
from .model import loaded_fingerprint, model_kind

SEED = 0  # of the search's own noise: the same checkpoint and settings give the same schedule


@dataclasses.dataclass(frozen=True)
class WebuiParts:
    """What of the webui a search reads: `state` (`shared.state`: interrupted, skipped, the progress bar's
    sampling_step / sampling_steps, textinfo), `opts` (`shared.opts`), `schedulers` (`sd_schedulers.schedulers`),
    `samplers` (`sd_samplers_kdiffusion.samplers_k_diffusion`), `device` (where the denoiser runs,
    `devices.device`), `models_path` (`shared.models_path`), `say`, where console lines go, and `brownian`, the
    Brownian paths of its k-diffusion (`k_diffusion_paths`; without them the SDE samplers are searched on their
    noise-free part)."""

    state: Any
    opts: Any
    schedulers: list
    samplers: list
    device: torch.device
    models_path: Path
    say: Callable[[str], None] = print
    brownian: Brownian | None = None


def k_diffusion_paths(tree: type) -> Brownian:
    """The search's Brownian paths from the webui's k-diffusion `BrownianTreeNoiseSampler` class `tree`: one tree per
    sample, each seeded with its seed, kept on the CPU (A1111's has no `cpu` option)."""

    def paths(x: torch.Tensor, low: float, high: float, seeds: list[int]):
        noise = tree(x.cpu(), torch.tensor(low), torch.tensor(high), seed=seeds)
        return lambda sigma, sigma_next: noise(torch.as_tensor(sigma).cpu(), torch.as_tensor(sigma_next).cpu())

    return paths


def sampler_name(funcname, options: dict) -> str | None:
    """The search's name for a webui k-diffusion sampler (`samplers_k_diffusion`: its function name and options),
    None when it cannot be searched (adaptive or fast ones, Restart, or one the search does not cover)."""
    if not isinstance(funcname, str) or not funcname.startswith("sample_"):
        return None
    name = funcname[len("sample_"):] + ("_heun" if options.get("solver_type") == "heun" else "")
    return name if name in HOST_SAMPLERS else None


def searchable(samplers_k_diffusion) -> dict[str, str]:
    """{the webui's sampler label: the search's name} for each of its k-diffusion samplers the search covers
    (`samplers_k_diffusion`: (label, function name, aliases, options) as both webuis list them)."""
    found = {label: sampler_name(funcname, options) for label, funcname, _, options in samplers_k_diffusion}
    return {label: name for label, name in found.items() if name is not None}


def refusal(label: str, labels: dict[str, str]) -> str | None:
    """Why VRG+ cannot search for the sampler `label`, or None when it can."""
    if label in labels:
        return None
    return (f"VRG+ cannot search a schedule for the sampler '{label}' (adaptive, DDIM/PLMS/UniPC or Restart: "
            f"not a fixed-step k-diffusion sampler it covers); pick one of: {', '.join(labels)}, or turn VRG+ off")


def discards(p, opts) -> bool:
    """Whether the webui drops the next-to-last σ of this sampler's schedule (`get_sigmas`)."""
    return bool(p.sampler.config.options.get("discard_next_to_last_sigma", False)
                or getattr(opts, "always_discard_next_to_last_sigma", False))


def webui_sigmas(p, steps: int, scheduler: str | None = None) -> np.ndarray:
    """The schedule the webui's sampler runs for `steps` steps with schedule type `scheduler` (a label; None:
    the user's), without VRG+'s override: `get_sigmas` itself, its infotext entries left as they were."""
    saved = p.sampler_noise_scheduler_override, p.scheduler, dict(p.extra_generation_params)
    p.sampler_noise_scheduler_override = None
    if scheduler is not None:
        p.scheduler = scheduler
    try:
        return p.sampler.get_sigmas(p, steps).detach().double().cpu().numpy()
    finally:
        p.sampler_noise_scheduler_override, p.scheduler = saved[:2]
        if scheduler is not None:
            p.extra_generation_params.clear()
            p.extra_generation_params.update(saved[2])


def candidates(p, steps: int, parts: WebuiParts) -> tuple[dict[str, np.ndarray], list[str]]:
    """({label: σ} of every other schedule type at `steps` steps, as the sampler runs it; the labels that failed)."""
    found, failed = {}, []
    for scheduler in parts.schedulers:
        if scheduler.name.startswith((PREFIX, PLUS_PREFIX)) or scheduler.function is None or scheduler.label == p.scheduler:
            continue
        try:
            found[scheduler.label] = webui_sigmas(p, steps, scheduler.label)
        except Exception:  # noqa: BLE001 - a schedule type this model or these settings do not support
            failed.append(scheduler.label)
    return found, failed


def with_discarded(sigmas: np.ndarray, discard: bool) -> torch.Tensor:
    """What the override returns so that, after `get_sigmas` drops the next-to-last σ (`discard`), the
    sampler runs `sigmas` (descending, ending at 0)."""
    if discard:
        sigmas = np.concatenate([sigmas[:-1], sigmas[-2:]])
    return torch.tensor(sigmas, dtype=torch.float32)


def webui_sampler(p, name: str, brownian: Brownian | None = None) -> Sampler:
    """The search's `Sampler` for the webui's: its own function (`p.sampler.func`), run as the search runs that
    sampler (`HOST_SAMPLERS[name]`; an SDE one on `brownian`'s paths), with the webui's `solver_type`, and
    `model.inner_model` the webui's denoiser wrapper (Forge's samplers read its predictor)."""
    sampler = host_sampler(name, lambda _: p.sampler.func, p.sampler.model_wrap_cfg.inner_model, brownian)
    heun = {"solver_type": "heun"} if p.sampler.config.options.get("solver_type") == "heun" else {}
    path = None if sampler.path_options is None else {**sampler.path_options, **heun}
    return dataclasses.replace(sampler, options={**sampler.options, **heun}, path_options=path)


def webui_denoise(p, batch: int, parts: WebuiParts):
    """The search's `denoise(x, σ, index) -> D`: the webui's CFG denoiser with the generation's conditioning,
    `batch` rows a call (a shorter batch padded with its last row); every call as at the generation's first step
    (its `[from:to:when]` prompt edits not applied). What the denoiser raises on Interrupt or Skip becomes
    `Cancelled` (`cached_search` checks them between batches too)."""
    denoiser, state = p.sampler.model_wrap_cfg, parts.state
    extra: dict = {}

    def denoise(x: torch.Tensor, sigma: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        rows = x.shape[0]
        x = torch.cat([x, x[-1:].expand(batch - rows, *x.shape[1:])]).to(parts.device, torch.float32)
        sigma = sigma.reshape(-1).to(parts.device, torch.float32)
        sigma = sigma.expand(batch) if sigma.numel() == 1 else torch.cat([sigma, sigma[-1:].expand(batch - rows)])
        if not extra:
            extra.update(cond=p.c, uncond=p.uc, cond_scale=p.cfg_scale, s_min_uncond=p.sampler.s_min_uncond,
                         image_cond=p.txt2img_image_conditioning(x))
        denoiser.step = 0
        try:
            out = denoiser(x, sigma, **extra)
        except BaseException as e:  # the webui's InterruptedException is a BaseException
            if state.interrupted or state.skipped:
                raise Cancelled("schedule search cancelled; nothing was saved") from e
            raise
        return out[:rows].float().cpu()

    return denoise


def webui_start(p, latent_shape: tuple[int, ...], parts: WebuiParts) -> Start:
    """The search's starting states at σ as the webui's `KDiffusionSampler.sample` forms them from noise (SEED)."""
    predictor = getattr(p.sampler.model_wrap, "predictor", None)  # Forge
    sgm = bool(getattr(parts.opts, "sgm_noise_multiplier", False))

    def start(count: int, sigma: float) -> torch.Tensor:
        noise = torch.randn((count, *latent_shape), generator=torch.Generator().manual_seed(SEED))
        if predictor is not None:
            return predictor.noise_scaling(torch.tensor(sigma), noise, torch.zeros_like(noise), max_denoise=sgm)
        return noise * (math.sqrt(1.0 + sigma**2) if sgm else sigma)

    return start


def search_request(p, name: str, steps: int, evaluations: int, parts: WebuiParts) -> tuple[SearchRequest, list[str]]:
    """The search VRG+ asks for at `steps` steps (as the sampler runs them), and the schedule types that failed."""
    wrap = p.sampler.model_wrap
    others, failed = candidates(p, steps, parts)
    request = SearchRequest(webui_sigmas(p, steps), webui_sampler(p, name, parts.brownian), others, model_kind(wrap),
                            float(wrap.sigmas[0]), loaded_fingerprint(wrap).value, tuple(p.rng.shape), SEED,
                            float(p.cfg_scale), evaluations, p.batch_size)
    return request, failed


def webui_run(p, request: SearchRequest, parts: WebuiParts, what: str) -> Callable[[Search], SearchResult]:
    """The `Run` of `cached_search` (called only when no cached search serves `request`): the console line and
    progress text saying so, the webui's sampler set up as for its own sampling (`initialize(p)`, and the step
    counts `launch_sampling` sets), then the search on its denoiser."""

    def run(search: Search) -> SearchResult:
        parts.say(f"VRG+: searching the schedule for {what}: {request.evaluations} model evaluations, once")
        parts.state.textinfo = "VRG+: searching the schedule"
        sampler = p.sampler
        sampler.initialize(p)
        sampler.model_wrap_cfg.steps = request.steps
        sampler.model_wrap_cfg.total_steps = sampler.config.total_steps(request.steps)
        return search(webui_denoise(p, request.batch_size, parts), webui_start(p, request.latent_shape, parts), None)

    return run


def schedule_for(p, name: str, steps: int, evaluations: int, parts: WebuiParts) -> torch.Tensor:
    """The override's answer for `steps` (as `get_sigmas` asks, the discarded σ included): on the txt2img pass
    the VRG+ schedule, cached or searched now; on any other pass, or when interrupted, the user's schedule."""
    discard = discards(p, parts.opts)
    count = steps - discard
    if getattr(p, "is_hr_pass", False):
        return with_discarded(webui_sigmas(p, count), discard)
    request, failed = search_request(p, name, count, evaluations, parts)
    cache = SearchCache(parts.models_path / "vrg")
    what = f"{name}, {count} steps, CFG {p.cfg_scale:g} on this checkpoint (fingerprint {request.model_fingerprint})"
    state = parts.state

    def progress(done: int, total: int) -> None:
        state.sampling_steps, state.sampling_step = total, done

    shown = state.textinfo
    try:
        result, hit = cached_search(request, webui_run(p, request, parts, what), cache, progress,
                                    lambda: state.interrupted or state.skipped)
    except Cancelled as e:
        parts.say(f"VRG+: {e}")
        return with_discarded(request.base, discard)  # the webui's sampler stops at its first model call
    finally:
        state.textinfo = shown
    for line in cache.warnings + ([f"schedule types left out (they failed here): {', '.join(failed)}"] if failed else []):
        parts.say(f"VRG+: {line}")
    source = "cached" if hit else f"searched in {result.model_seconds + result.search_seconds:.0f} s"
    parts.say(f"VRG+: {source} for {what}: {result.verdict.sentence()}")
    p.extra_generation_params["VRG+"] = f"{result.chosen} ({request.evaluations} evaluations)"
    return with_discarded(result.sigmas, discard)


def override(p, name: str, evaluations: int, parts: WebuiParts) -> Callable[[int], torch.Tensor]:
    """`p.sampler_noise_scheduler_override` for VRG+ with sampler `name` (`searchable`)."""
    return lambda steps: schedule_for(p, name, steps, evaluations, parts)


def check_request(p, parts: WebuiParts) -> str:
    """The search's name for the generation's sampler; VRGError naming the fix when VRG+ cannot serve `p`."""
    labels = searchable(parts.samplers)
    reason = refusal(p.sampler_name, labels)
    if reason is not None:
        raise VRGError(reason)
    if getattr(p, "refiner_checkpoint", None) not in (None, "", "None"):
        raise VRGError("VRG+ searches the schedule of one checkpoint; turn the refiner off, or VRG+ off")
    for setting, value in (("Skip Early CFG", getattr(parts.opts, "skip_early_cond", 0)),
                           ("Negative Guidance minimum sigma", getattr(p, "s_min_uncond", 0))):
        if value:
            raise VRGError(f"VRG+ cannot search with '{setting}' at {value:g}: it changes the CFG by the sampler's "
                           "step, which the search's model calls are not; set it to 0 in Settings → Sampler "
                           "parameters, or turn VRG+ off")
    return labels[p.sampler_name]
