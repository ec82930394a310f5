"""VRG Search Schedule (VRG+): the schedule whose samples come closest to the model's converged ones."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import torch

import comfy.sample
import comfy.samplers
import comfy.utils
import folder_paths
from comfy_api.v0_0_2 import io

from ..vrg_core.errors import VRGError
from ..vrg_core.memory import check_search_memory
from ..vrg_core.plot import search_png
from ..vrg_core.search import (
    DEFAULT_EVALUATIONS, DEFAULT_VARIANCE_WEIGHT, MAX_STEPS, METHOD, Sampler, SearchCache, SearchResult,
    cache_settings, plan_for, search_schedule,
)
from ..vrg_core.search.cache import table_digest
from .candidates import host_candidates
from .common import CATEGORY, check_choice, png_to_image, report, stop_if_cancelled
from .host import fingerprint, model_kind, table_warnings
from .guided import check_guidance, run_guided
from .samplers import comfy_sampler, covered_samplers, ksampler_sigmas
from .vrg_scheduler import Searched, Settings, base_scheduler_names, with_settings
from .tables import FOLDER, load_choice, table_choices

NO_TABLE = "none"


def guided_search(model, positive, negative, cfg: float, latent: torch.Tensor, base: torch.Tensor, sampler: Sampler,
                  seed: int, evaluations: int, variance_weight: float, batch_size: int, table,
                  candidates: dict) -> SearchResult:
    """Run `search_schedule` through the host's sampling path (`guided.run_guided`).

    The starting states are the KSampler's for an empty latent of `latent`'s size: the seed's
    noise (`prepare_noise`) scaled at σ by the model's own `noise_scaling`. The sampler's function
    sees the guider as `model.inner_model`, as when ComfyUI samples.
    """
    count = plan_for(evaluations, len(base) - 1, sampler).samples
    shape = (max(count, 1), *latent.shape[1:])
    bar = comfy.utils.ProgressBar(evaluations)
    max_denoise = comfy.samplers.KSAMPLER(None).max_denoise

    def search(call, model_k) -> SearchResult:
        inner = model_k.inner_model.inner_model
        ms = inner.model_sampling
        empty = inner.process_latent_in(torch.zeros(shape)).float()
        unit = comfy.sample.prepare_noise(empty, seed).float()

        def start(n: int, sigma: float) -> torch.Tensor:
            at = torch.tensor([sigma], dtype=torch.float32)
            return ms.noise_scaling(at, unit, empty, max_denoise(model_k.inner_model, at))[:n]

        return search_schedule(
            lambda x, s, i: call(x, s), start, base, dataclasses.replace(sampler, host=model_k.inner_model),
            model_kind(ms), float(ms.sigma_min), table=table, candidates=candidates, evaluations=evaluations,
            variance_weight=variance_weight, batch_size=batch_size,
            progress=lambda done, total: bar.update_absolute(done, total), should_stop=stop_if_cancelled)

    batch = torch.zeros((min(batch_size, shape[0]), *shape[1:]))  # what the guider plans memory for
    return run_guided(model, positive, negative, cfg, batch, base, seed, search)


class VRGSearchSchedule(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VRGSearchSchedule",
            display_name="VRG Search Schedule (VRG+)",
            category=CATEGORY,
            description="Finds the schedule whose samples come closest to this model's own converged result "
                        "(DPM++2M on a fine grid) for this sampler and step count: it measures every scheduler "
                        "and shipped table (AYS, GITS, OSS) on the model, searches its own and keeps the closest. "
                        "About 2000 model evaluations once, cached in models/vrg/; no error table needed.",
            inputs=[
                io.Model.Input("model", tooltip="The model to sample with, LoRAs and patches applied."),
                io.Latent.Input("latent", tooltip="An Empty Latent Image of the size you generate (its batch is "
                                                  "ignored)."),
                io.Combo.Input("sampler_name", options=covered_samplers(), default="euler",
                               tooltip="The sampler the schedule is searched for; use the same in the KSampler. "
                                       "Stochastic ones (ancestral, SDE, LCM) are searched on their noise-free "
                                       "part, *_cfg_pp ones as their base sampler."),
                io.Combo.Input("scheduler", options=base_scheduler_names(), default="karras",
                               tooltip="The base schedule: its first sigma is where every searched schedule "
                                       "starts. It and every other scheduler are candidates the search must beat."),
                io.Int.Input("steps", default=8, min=2, max=MAX_STEPS, tooltip="Sampling steps."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF,
                             tooltip="Seed of the search's own trajectories: same inputs and seed, same schedule."),
                io.Int.Input("evaluations", default=DEFAULT_EVALUATIONS, min=100, max=100000, step=100,
                             tooltip="Model evaluations to spend (per sample); more give a steadier choice."),
                io.Int.Input("batch_size", default=4, min=1, max=256,
                             tooltip="Samples per model call; memory also holds up to 4 x 40 latents per sample "
                                     "(a batch too large for this machine is refused before any work)."),
                io.Float.Input("cfg", default=1.0, min=0.0, max=100.0, step=0.1, round=0.01,
                               tooltip="Guidance scale you sample with. Not 1 needs a negative conditioning."),
                io.Boolean.Input("use_cache", default=True,
                                 tooltip="Reuse a search made with the same model and settings, and store new "
                                         "ones in models/vrg/."),
                io.Combo.Input("table", options=[NO_TABLE, *table_choices()], default=NO_TABLE, optional=True,
                               tooltip="Optional: this model's error table (VRG Profile). Adds the VRG-optimised "
                                       "base as a candidate, and VRG's prediction-error term when the variance "
                                       "weight is above 0."),
                io.Float.Input("variance_weight", default=DEFAULT_VARIANCE_WEIGHT, min=0.0, max=100.0, step=0.1,
                               optional=True,
                               tooltip="Weight of VRG's prediction-error term (needs a table). 0, the default, "
                                       "aims purely at the converged result, which measured best."),
                io.Conditioning.Input("positive", optional=True,
                                      tooltip="A typical prompt (text-to-image models need one)."),
                io.Conditioning.Input("negative", optional=True, tooltip="Negative prompt, used when cfg is not 1."),
            ],
            outputs=[io.Sigmas.Output(display_name="sigmas"), io.Model.Output(display_name="model"),
                     io.Image.Output(display_name="plot")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, model, latent, sampler_name, scheduler, steps, seed, evaluations, batch_size, cfg, use_cache,
                table=NO_TABLE, variance_weight=DEFAULT_VARIANCE_WEIGHT, positive=None,
                negative=None) -> io.NodeOutput:
        check_choice("sampler_name", sampler_name, covered_samplers())
        check_choice("scheduler", scheduler, base_scheduler_names())
        check_guidance(cfg, negative)
        error_table = None if table == NO_TABLE else load_choice(table)
        if error_table is None and variance_weight > 0:
            raise VRGError(f"variance weight {variance_weight:g} needs an error table: pick one, or set it to 0")
        warnings = [] if error_table is None else table_warnings(error_table, model)
        ms = model.get_model_object("model_sampling")
        model_kind(ms)  # refuses a model VRG does not support before any work
        base = ksampler_sigmas(ms, scheduler, steps, sampler_name).float()
        candidates, failed = host_candidates(ms, steps, sampler_name)
        sampler = comfy_sampler(sampler_name)
        settings = cache_settings(METHOD, base.double().numpy(), candidates, sampler_name, fingerprint(model),
                                  table_digest(error_table), evaluations, variance_weight, seed, cfg)
        cache = SearchCache(Path(folder_paths.get_folder_paths(FOLDER)[0]))
        started = time.perf_counter()
        result = cache.find(settings) if use_cache else None
        cached = result is not None
        if result is None:
            size = latent["samples"].shape[2:]  # only the size is used: the search starts from noise
            empty = torch.zeros((1, model.get_model_object("latent_format").latent_channels, *size))
            plan = plan_for(evaluations, steps, sampler)
            check_search_memory(empty.shape, batch_size, plan.grid, plan.samples)
            result = guided_search(model, positive, negative, cfg, empty, base, sampler, seed,
                                   evaluations, variance_weight, batch_size, error_table, candidates)
            if use_cache:
                cache.store(result, settings)
        warnings += cache.warnings
        sigmas = torch.tensor(result.sigmas, dtype=torch.float32)
        searched = Searched(sampler_name, float(cfg), sigmas)
        patched = with_settings(model, Settings(error_table, scheduler, "auto", "fixed", searched))
        o = result.objectives
        rival = result.rival
        cost = "cached" if cached else f"{result.evaluations} evaluations"
        change = 100 * (1 - o[result.chosen].total / o[rival].total)
        if result.chosen == rival:
            verdict = f"{rival} itself: no searched schedule beat it"
        elif change >= 0.5:
            verdict = f"{change:.0f} % closer to the converged result than {rival}, the best other schedule"
        else:
            verdict = f"as close to the converged result as {rival}, the best other schedule"
        text = f"VRG+ is {verdict} ({searched}; {cost}, {time.perf_counter() - started:.0f} s)"
        if failed:
            warnings.append(f"schedulers left out (they failed on this model): {', '.join(failed)}")
        plot = png_to_image(search_png(result))
        others = {} if rival == "base" else {"rival": [rival], "rival_sigmas": result.candidates[rival].tolist()}
        ui = report(cls, text, warnings, plot, sigmas=result.sigmas.tolist(), chosen=[result.chosen],
                    base_sigmas=result.candidates["base"].tolist(), **others,
                    total_error=[o["base"].total, o[rival].total, o[result.chosen].total],
                    candidates=sorted(result.candidates),
                    evaluations=[0 if cached else result.evaluations])
        return io.NodeOutput(sigmas, patched, plot, ui=ui)


NODES = [VRGSearchSchedule]
