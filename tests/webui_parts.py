"""Parts the webui tests (A1111: test_a1111.py, Forge: test_forge.py) share: a small checkpoint and error tables."""

import dataclasses
from pathlib import Path

import numpy as np
import safetensors.torch
import torch

from vrg_core.error_table import ErrorTable
from vrg_core.fingerprint import fingerprint_weights
from vrg_core.parameterization import ModelKind, noise_level_grid
from vrg_core.schedule_file import ScheduleFile, save_schedule
from vrg_core.table_io import save_table

SD15_ALPHAS_CUMPROD = torch.cumprod(1.0 - torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2, 0).float()


class TinyUNet(torch.nn.Module):
    """A diffusion model's layers as an LDM UNet names them (`input_blocks.0.0`, …), small."""

    def __init__(self):
        super().__init__()
        self.input_blocks = torch.nn.ModuleList([torch.nn.Sequential(torch.nn.Conv2d(4, 8, 3, padding=1))])
        self.middle_block = torch.nn.Sequential(torch.nn.GroupNorm(2, 8), torch.nn.Linear(8, 8))
        self.out = torch.nn.Sequential(torch.nn.Conv2d(8, 4, 3, padding=1))


def checkpoint(folder: Path, name: str = "sd15", seed: int = 0) -> Path:
    """A checkpoint's diffusion-model weights as a safetensors file (names under `model.diffusion_model.` in a full
    checkpoint; ComfyUI's node pack fingerprints them under these names)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        unet = TinyUNet()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.safetensors"
    safetensors.torch.save_file({k: v.contiguous() for k, v in unet.state_dict().items()}, str(path))
    return path


def write_table(folder: Path, name: str, kind: ModelKind = ModelKind.EPS, made_on: Path | None = None) -> Path:
    """An error table over SD 1.5's noise range, shaped like a real model's (largest at low noise), recording the
    fingerprint of checkpoint `made_on` (as ComfyUI's VRG Profile records the model's) or none."""
    sigmas_sd15 = ((1 - SD15_ALPHAS_CUMPROD.double()) / SD15_ALPHAS_CUMPROD.double()).sqrt()
    lo, hi = (float(sigmas_sd15[0]), float(sigmas_sd15[-1])) if kind is not ModelKind.CONST else (1e-4, 1.0)
    grid = noise_level_grid(lo, hi, 40, kind)
    table = ErrorTable.from_mean_error(kind, grid, 0.02 + 1.0 / (1.0 + 4.0 * grid**2))
    if made_on is not None:
        table = dataclasses.replace(table, info=dataclasses.replace(table.info, model_fingerprint=fingerprint_of(made_on)))
    return save_table(table, folder / f"{name}.safetensors")


def fingerprint_of(weights: Path) -> str:
    """The fingerprint ComfyUI's node pack records for a diffusion model holding checkpoint `weights`."""
    return fingerprint_weights(safetensors.torch.load_file(str(weights))).value


def write_schedule(folder: Path, name: str, weights: Path, kind: ModelKind = ModelKind.EPS) -> ScheduleFile:
    """A VRG+ schedule file for 4-8 steps of euler at cfg 7, searched (as it says) on checkpoint `weights`."""
    top = float(((1 - SD15_ALPHAS_CUMPROD[-1]) / SD15_ALPHAS_CUMPROD[-1]).sqrt()) if kind is not ModelKind.CONST else 1.0
    schedules = {n: np.append(np.geomspace(top, top / 300, n), 0.0) for n in range(4, 9)}
    schedule = ScheduleFile(fingerprint_of(weights), kind, "euler", 7.0, schedules, "test")
    save_schedule(schedule, folder / f"{name}.json")
    return schedule


# --- the webui's sampling, as VRG+ meets it (stand-ins for what cannot be imported without a running webui) ---

class Interrupted(BaseException):
    """Stand-in for the webui's `sd_samplers_common.InterruptedException` (a BaseException there too)."""


@dataclasses.dataclass
class State:
    """`shared.state`: what a VRG+ search reads (Interrupt, Skip) and writes (the progress bar). `interrupt_after`:
    model calls after which Interrupt is pressed (None: never)."""

    interrupted: bool = False
    skipped: bool = False
    sampling_step: int = 0
    sampling_steps: int = 0
    textinfo: str | None = None
    interrupt_after: int | None = None
    calls: int = 0


class CFGDenoiser:
    """The webui's CFG denoiser as both webuis' `KDiffusionSampler` call it: `forward(x, sigma, uncond, cond,
    cond_scale, s_min_uncond, image_cond)`, one row per conditioning row (the batch), Interrupt raising, `step`
    counted; D for cond and uncond from `predict(x, sigma, text)` (a model inside the webui's denoiser wrapper).
    `seen` — the σ of every call."""

    def __init__(self, sampler, predict, state: State):
        self.sampler, self.predict, self.state = sampler, predict, state
        self.step, self.steps, self.total_steps, self.p, self.seen = 0, None, None, None, []

    @property
    def inner_model(self):
        return self.sampler.model_wrap

    def __call__(self, x, sigma, uncond, cond, cond_scale, s_min_uncond, image_cond):
        state = self.state
        if state.interrupted or state.skipped:
            raise Interrupted
        assert x.shape[0] == cond.shape[0] == sigma.shape[0] == image_cond.shape[0], "one row per prompt of the batch"
        assert self.p is not None and self.total_steps is not None, "used before the webui's set-up"
        out = self.predict(torch.cat([x, x]), torch.cat([sigma, sigma]), torch.cat([cond, uncond]))
        d_cond, d_uncond = out.chunk(2)
        self.seen.append(float(sigma[0]))
        self.step += 1
        state.calls += 1
        if state.interrupt_after is not None and state.calls >= state.interrupt_after:
            state.interrupted = True
        return d_uncond + (d_cond - d_uncond) * cond_scale


@dataclasses.dataclass
class SamplerConfig:
    options: dict

    def total_steps(self, steps: int) -> int:
        return steps * 2 if self.options.get("second_order") else steps


class KDiffusionSampler:
    """What VRG+ uses of both webuis' `KDiffusionSampler`, as they do it: `get_sigmas` (the override when set, else
    the schedule type with the model's σ range; the next-to-last σ dropped for the samplers that discard it),
    `initialize`, `sample` (σ_0 scaling by `scale(σ, noise)`, the k-diffusion function on `model_wrap_cfg`,
    Interrupt ending the sampling); `func` the real k-diffusion function `funcname`."""

    def __init__(self, funcname: str, options: dict, model_wrap, predict, state: State, schedulers_map: dict,
                 k_sampling, scale):
        self.funcname, self.func, self.config = funcname, getattr(k_sampling, funcname), SamplerConfig(options)
        self.model_wrap, self.model_wrap_cfg = model_wrap, CFGDenoiser(self, predict, state)
        self.schedulers_map, self.scale, self.s_min_uncond, self.p = schedulers_map, scale, 0.0, None

    def initialize(self, p) -> None:
        self.p = self.model_wrap_cfg.p = p
        self.model_wrap_cfg.step = 0
        self.s_min_uncond = getattr(p, "s_min_uncond", 0.0)

    def get_sigmas(self, p, steps: int) -> torch.Tensor:
        discard = self.config.options.get("discard_next_to_last_sigma", False)
        steps += 1 if discard else 0
        if p.sampler_noise_scheduler_override:
            sigmas = p.sampler_noise_scheduler_override(steps)
        else:
            scheduler = self.schedulers_map[p.scheduler]
            kwargs = {"sigma_min": self.model_wrap.sigmas[0].item(), "sigma_max": self.model_wrap.sigmas[-1].item()}
            if scheduler.need_inner_model:
                kwargs["inner_model"] = self.model_wrap
            p.extra_generation_params["Schedule type"] = scheduler.label
            sigmas = scheduler.function(n=steps, **kwargs, device=torch.device("cpu"))
        if discard:
            sigmas = torch.cat([sigmas[:-2], sigmas[-1:]])
        return sigmas.cpu()

    def sample(self, p, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the samples, the schedule the sampler ran)."""
        sigmas = self.get_sigmas(p, p.steps)
        x = self.scale(sigmas[0], noise)
        self.initialize(p)
        self.model_wrap_cfg.steps, self.model_wrap_cfg.total_steps = p.steps, self.config.total_steps(p.steps)
        self.model_wrap_cfg.seen = []
        extra = {"cond": p.c, "uncond": p.uc, "cond_scale": p.cfg_scale, "s_min_uncond": self.s_min_uncond,
                 "image_cond": p.txt2img_image_conditioning(x)}
        try:
            return self.func(self.model_wrap_cfg, x, sigmas, extra_args=extra, disable=True), sigmas
        except Interrupted:  # launch_sampling: the generation ends with what it has
            return x, sigmas


@dataclasses.dataclass
class Processing:
    """`StableDiffusionProcessingTxt2Img`: what VRG+ reads and sets. `c` / `uc`: the batch's prompt and negative
    prompt (a text vector a row); `rng.shape`: one latent."""

    sampler: KDiffusionSampler
    sampler_name: str
    scheduler: str
    steps: int
    cfg_scale: float
    c: torch.Tensor
    uc: torch.Tensor
    rng: object
    batch_size: int = 1
    is_hr_pass: bool = False
    refiner_checkpoint: str | None = None
    sampler_noise_scheduler_override: object = None
    extra_generation_params: dict = dataclasses.field(default_factory=dict)

    def txt2img_image_conditioning(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(x.shape[0], 5, 1, 1)  # what both webuis give a model that is not an inpainting one


def text_eps(unet: TinyUNet, x: torch.Tensor, t: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """A small text-conditioned ε prediction from `unet`'s layers (latent `x` [B, 4, H, W], timestep `t` [B] in
    0..999, `text` [B, 4])."""
    h = unet.input_blocks[0](x) * (1 + t.float() / 1000).view(-1, 1, 1, 1)
    return 0.5 * torch.tanh(unet.out(torch.nn.functional.silu(h))) + 0.3 * x + text.view(-1, 4, 1, 1)


class TinyLDM(torch.nn.Module):
    """The LatentDiffusion A1111 wraps in k-diffusion's CompVisDenoiser: SD 1.5's noise schedule and `apply_model(x,
    t, cond)` with the text in `cond["c_crossattn"][0]`; its UNet (`model.diffusion_model`) from checkpoint `weights`."""

    def __init__(self, weights: Path):
        super().__init__()
        self.register_buffer("alphas_cumprod", SD15_ALPHAS_CUMPROD.clone())
        self.model = torch.nn.Module()
        self.model.diffusion_model = TinyUNet()
        self.model.diffusion_model.load_state_dict(safetensors.torch.load_file(str(weights)))

    def apply_model(self, x, t, cond):
        return text_eps(self.model.diffusion_model, x, t, cond["c_crossattn"][0])


class LatentShape:
    """`p.rng` as VRG+ reads it: the shape of one latent."""

    def __init__(self, *shape: int):
        self.shape = shape


# What both webuis list in `sd_samplers_kdiffusion.samplers_k_diffusion` (label, function, aliases, options), a part.
SAMPLERS_K_DIFFUSION = [
    ("DPM++ 2M", "sample_dpmpp_2m", ["k_dpmpp_2m"], {"scheduler": "karras"}),
    ("DPM++ 2M SDE Heun", "sample_dpmpp_2m_sde", ["k_dpmpp_2m_sde_heun"],
     {"scheduler": "exponential", "brownian_noise": True, "solver_type": "heun"}),
    ("Euler a", "sample_euler_ancestral", ["k_euler_a", "k_euler_ancestral"], {"uses_ensd": True}),
    ("Euler", "sample_euler", ["k_euler"], {}),
    ("DPM2", "sample_dpm_2", ["k_dpm_2"], {"scheduler": "karras", "discard_next_to_last_sigma": True,
                                           "second_order": True}),
    ("DPM fast", "sample_dpm_fast", ["k_dpm_fast"], {"uses_ensd": True}),
    ("DPM adaptive", "sample_dpm_adaptive", ["k_dpm_ad"], {"uses_ensd": True}),
    ("Restart", print, ["restart"], {"scheduler": "karras", "second_order": True}),  # a function, not a name
]
