"""VRG Search Schedule (VRG+): a schedule searched on the model itself for the total error at the final sample."""

from __future__ import annotations

import time
from pathlib import Path

import torch

import comfy.sample
import comfy.samplers
import comfy.utils
import folder_paths
from comfy_api.v0_0_2 import io

from ..vrg_core.bundle import find_searched, store_searched
from ..vrg_core.errors import VRGError
from ..vrg_core.plot import search_png
from ..vrg_core.search import (
    DEFAULT_EVALUATIONS, DEFAULT_VARIANCE_WEIGHT, MAX_STEPS, SAMPLERS, SearchResult, cache_settings, samples_for,
    search_schedule,
)
from .common import CATEGORY, check_choice, png_to_image, report, stop_if_cancelled
from .host import fingerprint, table_warnings
from .profile import UNCONDITIONAL
from .scheduler import Settings, base_scheduler_names, with_settings
from .tables import FOLDER, load_choice, table_choices


def guided_search(model, positive, negative, cfg: float, latent: torch.Tensor, base: torch.Tensor, sampler: str,
                  seed: int, evaluations: int, variance_weight: float, batch_size: int, table) -> SearchResult:
    """Run `search_schedule` inside `CFGGuider.sample`, so patches, LoRAs and CFG apply as when sampling.

    The starting states are the KSampler's for an empty latent of `latent`'s size: the seed's
    noise (`prepare_noise`) scaled at σ_0 by the model's own `noise_scaling`.
    """
    count = samples_for(evaluations, len(base) - 1, sampler)
    shape = (max(count, 1), *latent.shape[1:])
    bar = comfy.utils.ProgressBar(evaluations)
    found = {}

    def search(model_k, noise, sigmas, extra_args, callback, disable):
        device = noise.device
        inner = model_k.inner_model.inner_model
        ms = inner.model_sampling
        empty = inner.process_latent_in(torch.zeros(shape)).float()
        start = ms.noise_scaling(sigmas[:1].cpu().float(), comfy.sample.prepare_noise(empty, seed).float(), empty,
                                 ksampler.max_denoise(model_k.inner_model, sigmas))
        found["result"] = search_schedule(
            lambda x, s, i: model_k(x.to(device), s.to(device), **extra_args).float().cpu(),
            lambda n: start[:n], base, table, sampler, evaluations, variance_weight=variance_weight,
            batch_size=batch_size, progress=lambda done, total: bar.update_absolute(done, total),
            should_stop=stop_if_cancelled)
        return noise

    ksampler = comfy.samplers.KSAMPLER(search)
    guider = comfy.samplers.CFGGuider(model)
    guider.set_conds(positive or UNCONDITIONAL, negative or [])
    guider.set_cfg(cfg)
    batch = torch.zeros((min(batch_size, shape[0]), *shape[1:]))  # what the guider plans memory for
    guider.sample(batch, batch, ksampler, base, disable_pbar=True, seed=seed)
    return found["result"]


class VRGSearchSchedule(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VRGSearchSchedule",
            display_name="VRG Search Schedule (VRG+)",
            category=CATEGORY,
            description="Searches the schedule with the least total error at the final sample for this model and "
                        "sampler: the sampler's discretisation error against fine-step trajectories of the model "
                        "itself plus VRG's prediction-error term. Costs about 2000 model evaluations once (cached "
                        "beside the table in models/vrg/index.json); never worse than VRG alone on that error.",
            inputs=[
                io.Model.Input("model", tooltip="The model to sample with, LoRAs and patches applied."),
                io.Combo.Input("table", options=table_choices(),
                               tooltip="This model's error table (saved in models/vrg/, or bundled)."),
                io.Latent.Input("latent", tooltip="An Empty Latent Image of the size you generate (its batch is "
                                                  "ignored)."),
                io.Combo.Input("sampler_name", options=list(SAMPLERS), default="euler",
                               tooltip="The sampler the schedule is searched for; use the same in the KSampler."),
                io.Combo.Input("scheduler", options=base_scheduler_names(), default="karras",
                               tooltip="The base schedule: its first sigma is kept, and it and its VRG version "
                                       "are the candidates the search must beat."),
                io.Int.Input("steps", default=8, min=2, max=MAX_STEPS, tooltip="Sampling steps."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF,
                             tooltip="Seed of the search's own trajectories: same inputs and seed, same schedule."),
                io.Int.Input("evaluations", default=DEFAULT_EVALUATIONS, min=100, max=100000, step=100,
                             tooltip="Model evaluations to spend (per sample); more samples give a steadier search."),
                io.Float.Input("variance_weight", default=DEFAULT_VARIANCE_WEIGHT, min=0.0, max=100.0, step=0.1,
                               tooltip="Weight of VRG's prediction-error term; 0 searches the discretisation "
                                       "error alone."),
                io.Int.Input("batch_size", default=4, min=1, max=256,
                             tooltip="Samples per model call; memory also holds up to 4 x 100 latents per sample."),
                io.Float.Input("cfg", default=1.0, min=0.0, max=100.0, step=0.1, round=0.01,
                               tooltip="Guidance scale you sample with. Not 1 needs a negative conditioning."),
                io.Boolean.Input("use_cache", default=True,
                                 tooltip="Reuse a search made with the same model, table and settings, and store "
                                         "new ones in models/vrg/index.json."),
                io.Conditioning.Input("positive", optional=True,
                                      tooltip="A typical prompt (text-to-image models need one)."),
                io.Conditioning.Input("negative", optional=True, tooltip="Negative prompt, used when cfg is not 1."),
            ],
            outputs=[io.Sigmas.Output(display_name="sigmas"), io.Model.Output(display_name="model"),
                     io.Image.Output(display_name="plot")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, model, table, latent, sampler_name, scheduler, steps, seed, evaluations, variance_weight,
                batch_size, cfg, use_cache, positive=None, negative=None) -> io.NodeOutput:
        check_choice("sampler_name", sampler_name, SAMPLERS)
        check_choice("scheduler", scheduler, base_scheduler_names())
        if cfg != 1.0 and negative is None:
            raise VRGError(f"cfg {cfg:g} mixes in the negative conditioning: connect one, or set cfg to 1")
        name = table
        table = load_choice(name)
        warnings = table_warnings(table, model)
        base = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), scheduler, steps).float()
        settings = cache_settings(table, base, fingerprint(model), evaluations, variance_weight, seed, cfg)
        folder = Path(folder_paths.get_folder_paths(FOLDER)[0])
        started = time.perf_counter()
        result = find_searched(folder, name, sampler_name, steps, settings) if use_cache else None
        cached = result is not None
        if result is None:
            size = latent["samples"].shape[2:]  # only the size is used: the search starts from noise
            empty = torch.zeros((1, model.get_model_object("latent_format").latent_channels, *size))
            result = guided_search(model, positive, negative, cfg, empty, base, sampler_name, seed,
                                   evaluations, variance_weight, batch_size, table)
            if use_cache:
                folder.mkdir(parents=True, exist_ok=True)
                store_searched(folder, name, name, result, settings)
        sigmas = torch.tensor(result.sigmas, dtype=torch.float32)
        patched = with_settings(model, Settings(table, scheduler, "auto", "fixed", {steps: sigmas}))
        o = result.objectives
        cost = "cached" if cached else f"{result.evaluations} evaluations"
        text = (f"{sampler_name}, {steps} steps from {scheduler}: chose {result.chosen}; total error base "
                f"{o['base'].total:.4g}, VRG {o['vrg'].total:.4g}, VRG+ {o[result.chosen].total:.4g} ({cost}, "
                f"{time.perf_counter() - started:.1f} s). The model output makes the 'vrg' scheduler use it at "
                f"{steps} steps.")
        plot = png_to_image(search_png(result))
        ui = report(cls, text, warnings, plot, sigmas=result.sigmas.tolist(), chosen=[result.chosen],
                    total_error=[o["base"].total, o["vrg"].total, o[result.chosen].total],
                    evaluations=[0 if cached else result.evaluations])
        return io.NodeOutput(sigmas, patched, plot, ui=ui)


NODES = [VRGSearchSchedule]
