"""The sampler a schedule is searched for, as the search runs it: its noise-free part, and an SDE's own run.

A sampler is a k-diffusion-style function `f(model, x, sigmas, extra_args=None, callback=None,
disable=None, **options)` (ComfyUI's own, given by the host, or vrg_core's Euler / DPM++2M on
the command line), with `options` that make it deterministic (eta 0 for the ancestral and SDE
samplers). The search only ever calls it: no sampler formula is needed here, and since a
deterministic sampler is linear in its state and the model's predictions, the same function
also runs on the teacher's vectors (`refine.linearised_error`).

A sampler whose noise is a Brownian path (DPM++ SDE, 2M SDE, 3M SDE: `HostSampler.pathwise`) is,
given the path, deterministic too: the same SDE solved finely on the same path is its pathwise
limit. With the host's Brownian paths (`Sampler.brownian`) the search also runs it as the user
does (`path_options`, with `noise_sampler` one path per sample) and judges it against that limit
(`pathwise`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import numpy as np
import torch

from ..errors import VRGError
from ..profile import Denoise
from .coefficients import sample_dpmpp_2m, sample_euler

Model = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x, σ per sample) -> D
NoiseSampler = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (σ, σ_next) -> the path's increment / √|Δσ|
# The host's Brownian paths: (x, σ_low, σ_high, seeds) -> a noise sampler with one path per sample of x, each seeded
# with its seed, over [σ_low, σ_high] (ComfyUI: BrownianTreeNoiseSampler with a list of seeds).
Brownian = Callable[[torch.Tensor, float, float, list], NoiseSampler]


@dataclasses.dataclass(frozen=True)
class Sampler:
    """`name` — the host's name (what the schedule is for); `function` with `options` — its noise-free run;
    `calls_per_step` — model calls per step, for the budget; `proxy` — "euler" or "dpmpp_2m", whose
    step the dynamic programme proposes paths with; `stochastic` — the real sampler adds noise (the
    schedule is then checked on the noise-free part but not refined on it); `host` — what the
    function may read as `model.inner_model` (ComfyUI's guider), or None; `dtype` — what its
    arithmetic runs in (float64, or float32 for a function that mixes in float32 constants);
    `linear_step` — "euler" or "dpmpp_2m" when the function's step is exactly that one of vrg_core's
    own (`coefficients.step_coefficients`), so the refinement runs it in numpy, or None;
    `brownian` — the host's Brownian paths, for a sampler whose noise is one, and `path_options` its
    options for the run with noise (the user's: eta 1), else both None.
    """

    name: str
    function: Callable[..., torch.Tensor]
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    calls_per_step: int = 1
    proxy: str = "dpmpp_2m"
    stochastic: bool = False
    host: Any = None
    dtype: torch.dtype = torch.float64
    linear_step: str | None = None
    brownian: Brownian | None = None
    path_options: Mapping[str, Any] | None = None

    @property
    def pathwise(self) -> bool:
        """Searched against its own pathwise limit: its noise is a Brownian path the host can give."""
        return self.brownian is not None

    def run(self, model: Model, x: torch.Tensor, sigmas, noise: NoiseSampler | None = None) -> torch.Tensor:
        """The noise-free sampler on `sigmas` (descending) from states `x` (float64 result), or with `noise` (a
        pathwise sampler's noise sampler) its run with that noise; `model` sees every call (in `dtype`) and
        returns float64 or `dtype`."""
        caller = HostModel(lambda state, sigma: model(state, sigma).to(self.dtype), self.host)
        schedule = torch.tensor(np.asarray(sigmas, dtype=np.float64), dtype=self.dtype)  # a copy: samplers write in it
        options = self.options if noise is None else {**self.path_options, "noise_sampler": noise}
        out = self.function(caller, x.to(self.dtype), schedule, extra_args={}, callback=None, disable=True, **options)
        return out.to(torch.float64)


class HostModel:
    """A model call as k-diffusion samplers make it, with the host's model wrapper as `inner_model`."""

    def __init__(self, model: Model, host: Any):
        self.model, self.inner_model = model, host

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, **_) -> torch.Tensor:
        return self.model(x, sigma)


BUILTIN = {
    "euler": Sampler("euler", sample_euler, proxy="euler", linear_step="euler"),
    "dpmpp_2m": Sampler("dpmpp_2m", sample_dpmpp_2m, linear_step="dpmpp_2m"),
    "euler_ancestral": Sampler("euler_ancestral", sample_euler, proxy="euler", stochastic=True),
}
SAMPLERS = tuple(BUILTIN)  # what the command line searches for (vrg_core's own samplers)


def as_sampler(sampler: str | Sampler) -> Sampler:
    """`sampler` itself, or vrg_core's own sampler of that name."""
    if isinstance(sampler, Sampler):
        return sampler
    if sampler not in BUILTIN:
        raise VRGError(f"sampler {sampler!r} cannot be searched here; use one of: {', '.join(SAMPLERS)}")
    return BUILTIN[sampler]


def sample(denoise: Denoise, x: torch.Tensor, sigmas, sampler: str | Sampler, index: torch.Tensor | None = None,
           visit: Callable[[float, torch.Tensor, torch.Tensor], None] | None = None,
           noise: NoiseSampler | None = None) -> torch.Tensor:
    """The noise-free part of `sampler` on schedule `sigmas` (descending) from states `x` (float64 result), or its
    run with `noise` (a pathwise sampler's noise sampler for these samples).

    The model sees `x`'s dtype, float32 σ and `index` (default 0..B−1); `visit(σ, x, D)` is
    called after each of its evaluations (the sampler's state, float64, and the prediction).
    """
    index = torch.arange(x.shape[0]) if index is None else index
    dtype = x.dtype

    def model(state: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            d = denoise(state.to(dtype), sigma.to(torch.float32), index).to(torch.float64)
        level = float(sigma.reshape(-1)[0])
        if not torch.isfinite(d).all():
            raise VRGError(f"the model returned NaN or infinity at sigma {level:.4g}; check the model and its inputs")
        if visit is not None:
            visit(level, state, d)
        return d

    with torch.no_grad():
        return as_sampler(sampler).run(model, x.to(torch.float64), sigmas, noise)


def no_noise(sigma, sigma_next) -> float:
    """A noise sampler that adds nothing (the noise-free part of a stochastic sampler)."""
    return 0.0


def unscaled(er_lambda):
    """ER-SDE's noise scaler that makes its step noise-free (an ODE step in σ/α)."""
    return er_lambda


ETA_0 = {"eta": 0.0, "noise_sampler": no_noise}


@dataclasses.dataclass(frozen=True)
class HostSampler:
    """How the search runs one of the host's samplers: the host sampler whose function runs (`runs`),
    with `options`; the rest as in `Sampler`."""

    runs: str
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    calls_per_step: int = 1
    proxy: str = "dpmpp_2m"
    stochastic: bool = False
    dtype: torch.dtype = torch.float64
    linear_step: str | None = None
    pathwise: bool = False  # its noise is a Brownian path (BrownianTreeNoiseSampler): judged against its own limit


# ComfyUI's samplers the search covers. Stochastic ones run with their noise off (eta 0; ER-SDE's noise
# scaler the identity); LCM's noise-free counterpart is Euler; *_cfg_pp run as their base sampler.
HOST_SAMPLERS = {
    "euler": HostSampler("euler", proxy="euler", linear_step="euler"),
    "ddim": HostSampler("ddim", proxy="euler", linear_step="euler"),  # ComfyUI's ddim runs its Euler
    "heun": HostSampler("heun", calls_per_step=2),
    "dpm_2": HostSampler("dpm_2", calls_per_step=2),
    "lms": HostSampler("lms"),
    "dpmpp_2m": HostSampler("dpmpp_2m", linear_step="dpmpp_2m"),
    "ipndm": HostSampler("ipndm"),
    "ipndm_v": HostSampler("ipndm_v"),
    "deis": HostSampler("deis"),
    "res_multistep": HostSampler("res_multistep"),
    "gradient_estimation": HostSampler("gradient_estimation"),
    "uni_pc": HostSampler("uni_pc", dtype=torch.float32),  # UniPC builds float32 coefficient tensors
    "uni_pc_bh2": HostSampler("uni_pc_bh2", dtype=torch.float32),
    "euler_ancestral": HostSampler("euler_ancestral", ETA_0, proxy="euler", stochastic=True),
    "dpm_2_ancestral": HostSampler("dpm_2_ancestral", ETA_0, calls_per_step=2, stochastic=True),
    "dpmpp_2s_ancestral": HostSampler("dpmpp_2s_ancestral", ETA_0, calls_per_step=2, stochastic=True),
    "dpmpp_sde": HostSampler("dpmpp_sde", ETA_0, calls_per_step=2, stochastic=True, pathwise=True),
    "dpmpp_sde_gpu": HostSampler("dpmpp_sde", ETA_0, calls_per_step=2, stochastic=True, pathwise=True),
    "dpmpp_2m_sde": HostSampler("dpmpp_2m_sde", ETA_0, stochastic=True, pathwise=True),
    "dpmpp_2m_sde_gpu": HostSampler("dpmpp_2m_sde", ETA_0, stochastic=True, pathwise=True),
    "dpmpp_2m_sde_heun": HostSampler("dpmpp_2m_sde_heun", ETA_0, stochastic=True, pathwise=True),
    "dpmpp_2m_sde_heun_gpu": HostSampler("dpmpp_2m_sde_heun", ETA_0, stochastic=True, pathwise=True),
    "dpmpp_3m_sde": HostSampler("dpmpp_3m_sde", ETA_0, stochastic=True, pathwise=True),
    "dpmpp_3m_sde_gpu": HostSampler("dpmpp_3m_sde", ETA_0, stochastic=True, pathwise=True),
    "res_multistep_ancestral": HostSampler("res_multistep_ancestral", ETA_0, stochastic=True),
    "er_sde": HostSampler("er_sde", {"s_noise": 0.0, "noise_sampler": no_noise, "noise_scaler": unscaled},
                          stochastic=True),
    "lcm": HostSampler("euler", proxy="euler", stochastic=True),
    "euler_cfg_pp": HostSampler("euler", proxy="euler", linear_step="euler"),
    "euler_ancestral_cfg_pp": HostSampler("euler_ancestral", ETA_0, proxy="euler", stochastic=True),
    "dpmpp_2m_cfg_pp": HostSampler("dpmpp_2m", linear_step="dpmpp_2m"),
    "dpmpp_2s_ancestral_cfg_pp": HostSampler("dpmpp_2s_ancestral", ETA_0, calls_per_step=2, stochastic=True),
    "res_multistep_cfg_pp": HostSampler("res_multistep"),
    "res_multistep_ancestral_cfg_pp": HostSampler("res_multistep_ancestral", ETA_0, stochastic=True),
    "gradient_estimation_cfg_pp": HostSampler("gradient_estimation"),
}


def host_sampler(name: str, function_of: Callable[[str], Callable[..., torch.Tensor]], host: Any = None,
                 brownian: Brownian | None = None) -> Sampler:
    """The `Sampler` for the host's sampler `name`; `function_of(name)` gives the host's sampler function
    of that name (ComfyUI: `sampler_object(name).sampler_function`), `host` its model wrapper, `brownian` its
    Brownian paths (a pathwise sampler is then judged against its own limit, with its default options: eta 1)."""
    if name not in HOST_SAMPLERS:
        raise VRGError(f"sampler {name!r} cannot be searched (adaptive, or its noise-free part is not an ODE step); "
                       f"use one of: {', '.join(HOST_SAMPLERS)}")
    spec = HOST_SAMPLERS[name]
    path = brownian if spec.pathwise else None
    return Sampler(name, function_of(spec.runs), spec.options, spec.calls_per_step, spec.proxy, spec.stochastic, host,
                   spec.dtype, spec.linear_step, path, None if path is None else {})
