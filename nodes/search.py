"""VRG+ (VRGSearchSchedule): the schedule whose samples come closest to the model's converged ones."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import numpy as np
import torch

import comfy.utils
import folder_paths
from comfy_api.v0_0_2 import io

from ..vrg_core.errors import VRGError
from ..vrg_core.plot import family_png, search_png
from ..vrg_core.search import (
    DEFAULT_BATCH, DEFAULT_VARIANCE_WEIGHT, MAX_STEPS, Family, SearchCache, SearchRequest, SearchResult, cached_family,
)
from ..vrg_core.search.family import DEFAULT_FAMILY_EVALUATIONS, DEFAULT_RANGE, StepRange, served_range
from ..vrg_core.search.request import Search
from .common import (CATEGORY, check_choice, empty_latent_input, png_to_image, report, sampling_model_input,
                     stop_if_cancelled)
from .guided import check_guidance, run_guided
from .host import (base_scheduler_names, candidate_schedules, comfy_sampler, covered_samplers, ksampler_sigmas,
                   model_kind, start_states)
from .model_identity import fingerprint, table_warnings
from .searched_file import save_searched, schedule_path
from .tables import FOLDER, load_choice, table_choices
from .vrg_scheduler import Searched, Settings, with_settings

NO_TABLE = "none"


def search_request(model, latent_shape: tuple[int, ...], sampler_name: str, scheduler: str, steps: int, seed: int,
                   evaluations: int, batch_size: int, cfg: float, table=None,
                   variance_weight: float = DEFAULT_VARIANCE_WEIGHT, prompts: int = 1) -> tuple[SearchRequest, list[str]]:
    """The search the VRG+ node asks for on `model` (a ModelPatcher), from what the host offers at `steps`;
    and a note per candidate scheduler that failed on this model. `latent_shape` — one latent [C, H, W, …];
    `prompts` — 2 when a second prompt alternates with the first (`guided_run`)."""
    ms = model.get_model_object("model_sampling")
    kind = model_kind(ms)  # refuses a model VRG does not support before any work
    candidates, failed = candidate_schedules(ms, steps, sampler_name)
    base = ksampler_sigmas(ms, scheduler, steps, sampler_name).float().double().numpy()
    request = SearchRequest(base, comfy_sampler(sampler_name), candidates, kind, float(ms.sigma_min),
                            fingerprint(model), tuple(latent_shape), seed, float(cfg), evaluations, batch_size, table,
                            variance_weight, prompts)
    return request, failed


def alternating(call, index: torch.Tensor, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """The model's prediction for noises `index`: the even ones with the prompt, the odd ones with the second."""
    odd = (index % 2 == 1).to(x.device)
    if not odd.any():
        return call(x, sigma)
    out = torch.empty_like(x, dtype=torch.float32)
    per_row = sigma.ndim > 0 and sigma.shape[0] == x.shape[0]
    for other, rows in ((False, ~odd), (True, odd)):
        if rows.any():
            out[rows] = call(x[rows], sigma[rows] if per_row else sigma, other=other)
    return out


def guided_run(model, positive, negative, cfg: float, request: SearchRequest, other=None):
    """The host's `Run` for `cached_search`: the search inside `CFGGuider.sample` (`guided.run_guided`), so
    patches, LoRAs and CFG apply; the sampler's function sees the guider as `model.inner_model`, and the
    starting states are the KSampler's (`host.start_states`). With `other` (a second prompt's conditioning)
    the search's odd-numbered noises are sampled with it (`alternating`)."""

    def run(search: Search) -> SearchResult:
        def inside(call, model_k) -> SearchResult:
            start = start_states(model_k.inner_model.inner_model, request.latent_shape, request.seed)
            sampler = dataclasses.replace(request.sampler, host=model_k.inner_model)
            denoise = (lambda x, s, i: call(x, s)) if other is None else (lambda x, s, i: alternating(call, i, x, s))
            return search(denoise, start, sampler)

        batch = torch.zeros((min(request.batch_size, request.plan.samples), *request.latent_shape))  # memory plan
        return run_guided(model, positive, negative, cfg, batch, torch.as_tensor(request.base).float(), request.seed,
                          inside, other)

    return run


def verdict_ui(result: SearchResult) -> dict:
    """The verdict for the frontend: the gain of the best searched schedule over the best other, and its interval."""
    v = result.verdict
    margin = {} if v.margin is None else {"rival_margin": [v.margin.other, v.margin.gain, v.margin.low,
                                                           v.margin.high, v.margin.noises]}
    return {"held_out_gain": [v.gain, v.low, v.high], "held_out_noises": [v.noises], "kept": [v.kept], **margin}


class VRGSearchSchedule(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VRGSearchSchedule",
            # "VRG+", not "VRG Search Schedule": the node search ranks prefix matches of a node's id or display
            # name by the shorter of the two, so only a name under VRGApply's 8 characters lists it first for "vrg".
            display_name="VRG+",
            category=CATEGORY,
            description="VRG+ search: finds the schedule whose samples come closest to this model's own converged result "
                        "(DPM++2M on a fine grid) for this sampler and step count: it measures every scheduler "
                        "and shipped table (AYS, GITS, OSS) on the model, searches its own and keeps the closest. "
                        "About 2000 model evaluations once, cached in models/vrg/; no error table needed.",
            inputs=[
                sampling_model_input(),
                empty_latent_input(),
                io.Combo.Input("sampler_name", options=covered_samplers(), default="euler",
                               tooltip="The sampler the schedule is searched for; use the same in the KSampler. "
                                       "The SDE ones (dpmpp_sde, dpmpp_2m_sde, dpmpp_3m_sde, …) are judged by "
                                       "their own result on a fine grid on the same noise path; the other "
                                       "stochastic ones (ancestral, LCM) on their noise-free part; *_cfg_pp ones "
                                       "as their base sampler."),
                io.Combo.Input("scheduler", options=base_scheduler_names(), default="karras",
                               tooltip="The base schedule: its first sigma is where every searched schedule "
                                       "starts. It and every other scheduler are candidates the search must beat."),
                io.Int.Input("steps", default=8, min=2, max=MAX_STEPS,
                             tooltip="The step count whose schedule the sigmas output, chart and text show; it "
                                     "must lie in step_range."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF,
                             tooltip="Seed of the search's own trajectories: same inputs and seed, same schedule."),
                io.Int.Input("evaluations", default=DEFAULT_FAMILY_EVALUATIONS, min=100, max=100000, step=100,
                             tooltip="Model evaluations to spend in all, shared among the step counts searched "
                                     "(one = one latent through the model once; an image costs steps of them); "
                                     "more give a steadier choice."),
                io.Int.Input("batch_size", default=DEFAULT_BATCH, min=1, max=256,
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
                io.Conditioning.Input("other_prompt", optional=True,
                                      tooltip="A second prompt, e.g. an empty one (CLIP Text Encode with no text): "
                                              "half the search's noises use it, so the schedule holds beyond the "
                                              "first prompt. The cached schedule is reused for every prompt."),
                io.String.Input("step_range", default=DEFAULT_RANGE, optional=True,
                                tooltip="The step counts the 'vrg' scheduler serves from this one search, e.g. "
                                        "4-30: searched at a few of them (4, 8, 16, 30), interpolated between. One "
                                        "number, or empty: steps alone."),
                io.String.Input("save_as", default="", optional=True,
                                tooltip="Optional: a name to save the schedules as, in models/vrg/schedules/<name>."
                                        "json: VRG Load Searched Schedule serves them, and the webui extension offers "
                                        "them as a schedule type, on this model only."),
            ],
            outputs=[io.Sigmas.Output(display_name="sigmas"), io.Model.Output(display_name="model"),
                     io.Image.Output(display_name="plot")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, model, latent, sampler_name, scheduler, steps, seed, evaluations, batch_size, cfg, use_cache,
                table=NO_TABLE, variance_weight=DEFAULT_VARIANCE_WEIGHT, positive=None,
                negative=None, other_prompt=None, step_range=DEFAULT_RANGE, save_as="") -> io.NodeOutput:
        check_choice("sampler_name", sampler_name, covered_samplers())
        check_choice("scheduler", scheduler, base_scheduler_names())
        check_guidance(cfg, negative)
        served = served_range(step_range, steps)
        target = schedule_path(save_as) if save_as.strip() else None  # a bad name refused before the search
        error_table = None if table == NO_TABLE else load_choice(table)
        if error_table is None and variance_weight > 0:
            raise VRGError(f"variance weight {variance_weight:g} needs an error table: pick one, or set it to 0")
        warnings = [] if error_table is None else table_warnings(error_table, model)
        latent_shape = (model.get_model_object("latent_format").latent_channels, *latent["samples"].shape[2:])
        cache = SearchCache(Path(folder_paths.get_folder_paths(FOLDER)[0])) if use_cache else None
        bar = comfy.utils.ProgressBar(evaluations)
        started = time.perf_counter()
        family, cached, failed, changed = family_search(
            model, latent_shape, sampler_name, scheduler, served, seed, evaluations, batch_size, cfg, error_table,
            variance_weight, positive, negative, other_prompt, cache,
            progress=lambda done, total: bar.update_absolute(done, total), should_stop=stop_if_cancelled)
        if changed:
            logging.info("[VRG] searched again (%s changed)", changed)
        warnings += cache.warnings if cache is not None else []
        if failed:
            warnings.append(f"schedulers left out (they failed on this model): {', '.join(failed)}")
        searched = Searched(sampler_name, float(cfg), {n: torch.tensor(family.sigmas(n), dtype=torch.float32)
                                                       for n in range(served.low, served.high + 1)})
        patched = with_settings(model, Settings(error_table, scheduler, "auto", "fixed", searched))
        text, ui = family_report(family, steps, cached, changed,
                                 ksampler_sigmas(model.get_model_object("model_sampling"), scheduler, steps,
                                                 sampler_name).double().numpy(), searched,
                                 time.perf_counter() - started)
        if target is not None:
            made_by = (f"VRG+ in ComfyUI: {sampler_name}, {searched.steps} steps, cfg {cfg:g}, base {scheduler}, "
                       f"seed {seed}, {evaluations} evaluations")
            text += f"\nsaved as {save_searched(target, model, searched, made_by).name} in models/vrg/schedules/"
        result = family.anchors.get(steps)
        plot = png_to_image(search_png(result) if result is not None else family_png(family, steps, ui["base_sigmas"]))
        return io.NodeOutput(searched.schedules[steps], patched, plot, ui=report(cls, text, warnings, panel=True, **ui))


def family_search(model, latent_shape: tuple[int, ...], sampler_name: str, scheduler: str, served: StepRange, seed: int,
                  evaluations: int, batch_size: int, cfg: float, table, variance_weight: float, positive, negative,
                  other_prompt, cache: SearchCache | None, progress=None, should_stop=None):
    """The node's search: (the `Family` serving `served` on `model`, how many of its anchors were cached, the
    schedulers left out because they failed on this model, why the first anchor not cached was searched again or
    None). Each anchor is the search `search_request` states, run in `guided_run` (`cached_family`)."""
    failed, changed = [], []

    def request_at(count: int, budget: int) -> SearchRequest:
        request, left_out = search_request(model, latent_shape, sampler_name, scheduler, count, seed, budget,
                                           batch_size, cfg, table, variance_weight, 1 if other_prompt is None else 2)
        failed.extend(name for name in left_out if name not in failed)
        reason = cache.changed(request.settings()) if cache is not None and not changed else None
        if reason:
            changed.append(reason)
        return request

    family, cached = cached_family(served, evaluations, comfy_sampler(sampler_name), request_at,
                                   lambda r: guided_run(model, positive, negative, cfg, r, other_prompt), cache,
                                   progress, should_stop)
    return family, cached, failed, changed[0] if changed else None


def family_report(family: Family, steps: int, cached: int, changed: str | None, base, searched: Searched,
                  seconds: float) -> tuple[str, dict]:
    """The node's text and chart data for the schedule at `steps`: an anchor's own verdict, or where an
    interpolated schedule comes from and what each anchor's search kept."""
    sampler = comfy_sampler(searched.sampler)
    images = sum(r.evaluations / (r.steps * sampler.calls_per_step) for r in family.anchors.values())
    cost = ("cached" if cached == len(family.anchors) else
            f"{family.evaluations} evaluations, the price of {images:.0f} images" +
            (f" ({cached} of {len(family.anchors)} step counts cached)" if cached else ""))
    if changed:  # no stored search had these settings, so not every anchor was cached
        cost = f"searched again ({changed} changed): {cost}"
    served = f"serves {family.steps} steps from searches at {', '.join(map(str, family.anchors))}; " \
        if len(family.anchors) > 1 else ""
    result = family.anchors.get(steps)
    ui = {"sigmas": family.sigmas(steps).tolist(), "base_sigmas": np.asarray(base).tolist(),
          "evaluations": [0 if cached == len(family.anchors) else family.evaluations]}
    if result is not None:
        head = result.verdict.sentence()
        rival = result.rival
        ui |= {"chosen": [result.chosen], "candidates": sorted(result.candidates), **verdict_ui(result),
               **({} if rival == "base" else {"rival": [rival], "rival_sigmas": result.candidates[rival].tolist()})}
    else:
        head = f"the {steps}-step schedule is {family.source(steps)} (not measured at {steps} steps)"
        ui |= {"chosen": ["interpolated"], "candidates": []}
    every = "" if len(family.anchors) == 1 else "\n" + "\n".join(
        f"at {n} steps: {r.verdict.sentence()}" for n, r in family.anchors.items())
    return f"{head} ({searched.sampler}, {steps} steps, cfg {searched.cfg:g}; {served}{cost}, {seconds:.0f} s){every}", ui


NODES = [VRGSearchSchedule]
