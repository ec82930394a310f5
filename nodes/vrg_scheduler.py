"""VRG Apply and the `vrg` scheduler: the stock KSampler samples the optimised schedule.

VRG Apply attaches a table and settings to the MODEL's `model_sampling` (an object patch, as
the ModelSampling* nodes do). The `vrg` scheduler, registered in ComfyUI's shared
SCHEDULER_HANDLERS and SCHEDULER_NAMES in place, reads them back, builds the base
scheduler's sigmas and optimises them — or, at a step count the VRG+ node's search serves,
returns that schedule.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import logging

import torch

import comfy.patcher_extension
import comfy.samplers
from comfy_api.v0_0_2 import io

from ..vrg_core.error_table import ErrorTable
from ..vrg_core.errors import VRGError
from ..vrg_core.optimize import START_MODES, optimize_sigmas
from .common import CATEGORY, ErrorTableIO, check_choice, gamma_input, report, start_input
from .host import VRG_SCHEDULER, base_scheduler_names, sampler_name, scheduler_output, searched_alike
from .model_identity import table_warnings

ATTRIBUTE = "vrg_settings"


@dataclasses.dataclass(frozen=True)
class Searched:
    """The VRG+ schedules of one search {steps: the sigmas the sampler runs, descending, ending at 0}, one per step
    count it serves, and what it was searched for."""

    sampler: str
    cfg: float
    schedules: dict[int, torch.Tensor]

    @property
    def steps(self) -> str:
        """The step counts served: "6" or "4-30"."""
        low, high = min(self.schedules), max(self.schedules)
        return f"{low}-{high}" if high != low else str(low)

    def __str__(self) -> str:
        return f"{self.sampler}, {self.steps} steps, cfg {self.cfg:g}"


@dataclasses.dataclass(frozen=True)
class Settings:
    table: ErrorTable | None  # None: only the searched schedule is available
    base_scheduler: str
    gamma: float | str
    start: str
    searched: Searched | None = None


def vrg_scheduler(model_sampling, steps: int) -> torch.Tensor:
    settings: Settings | None = getattr(model_sampling, ATTRIBUTE, None)
    if settings is None:
        raise VRGError("the 'vrg' scheduler needs a VRG Apply node: connect the model through VRG Apply (with an "
                       "error table) before this sampler, or pick another scheduler")
    if settings.searched is not None:
        for sigmas in settings.searched.schedules.values():
            asked, returned = scheduler_output(sigmas, settings.searched.sampler)
            if steps == asked:
                return returned  # logged when sampled (`check_searched_use`), or refused there
    if settings.table is None:
        raise VRGError(f"the 'vrg' scheduler has only the VRG+ schedules searched for {settings.searched}, and this "
                       f"sampler asks it for {steps} steps: set the steps within {settings.searched.steps}, or search "
                       "again with a step range that holds them")
    base = comfy.samplers.calculate_sigmas(model_sampling, settings.base_scheduler, steps)
    result = optimize_sigmas(base, settings.table, gamma=settings.gamma, start=settings.start)
    logging.info("[VRG] vrg scheduler (%s, %d steps): CPE %.6g -> %.6g", settings.base_scheduler, steps,
                 result.cpe_before, result.cpe_after)
    return torch.tensor(result.sigmas, dtype=torch.float32)


def with_settings(model, settings: Settings):
    """A clone of `model` whose `model_sampling` carries `settings` for the `vrg` scheduler (an object patch);
    with a searched schedule, sampling it with another sampler or cfg than it was searched for is refused."""
    patched = model.clone()
    sampling = copy.copy(patched.get_model_object("model_sampling"))  # shares its tensors; adds one attribute
    setattr(sampling, ATTRIBUTE, settings)
    patched.add_object_patch("model_sampling", sampling)
    if settings.searched is not None:
        patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, ATTRIBUTE,
                                     functools.partial(check_searched_use, settings.searched))
    return patched


def check_searched_use(searched: Searched, executor, noise, latent_image, sampler, sigmas, *args, **kwargs):
    """An OUTER_SAMPLE wrapper: when the searched sigmas are sampled, the sampler and cfg must be those searched for."""
    sampled = sigmas.detach().cpu().float()
    if any(torch.equal(sampled, s.float()) for s in searched.schedules.values()):
        cfg = float(getattr(executor.class_obj, "cfg", searched.cfg))
        function = getattr(sampler, "sampler_function", None)
        if not searched_alike(function, searched.sampler):
            used = sampler_name(function)
            raise VRGError(f"this model's 'vrg' schedule was searched for {searched}, but the sampler is {used}: "
                           f"set the sampler to {searched.sampler}, or search for {used}")
        if abs(cfg - searched.cfg) > 1e-6:
            raise VRGError(f"this model's 'vrg' schedule was searched for {searched}, but it is sampled at cfg {cfg:g}: "
                           f"set cfg to {searched.cfg:g}, or search at cfg {cfg:g}")
        logging.info("[VRG] sampling the VRG+ schedule for %d steps searched for %s", len(sampled) - 1, searched)
    return executor(noise, latent_image, sampler, sigmas, *args, **kwargs)



def register_scheduler() -> None:
    """Add `vrg` to ComfyUI's scheduler dict and name list in place (other nodes hold these very objects)."""
    comfy.samplers.SCHEDULER_HANDLERS.setdefault(VRG_SCHEDULER, comfy.samplers.SchedulerHandler(vrg_scheduler))
    if VRG_SCHEDULER not in comfy.samplers.SCHEDULER_NAMES:
        comfy.samplers.SCHEDULER_NAMES.append(VRG_SCHEDULER)


class VRGApply(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VRGApply",
            display_name="VRG Apply",
            category=CATEGORY,
            description="Attaches an error table to the model so that any sampler using the 'vrg' scheduler (the "
                        "stock KSampler too) samples the base scheduler's sigmas optimised for this model.",
            inputs=[
                io.Model.Input("model", tooltip="The model to sample with."),
                ErrorTableIO.Input("table", tooltip="This model's error table."),
                io.Combo.Input("base_scheduler", options=base_scheduler_names(), default="simple",
                               tooltip="The schedule the 'vrg' scheduler starts from and optimises."),
                gamma_input(),
                start_input(),
            ],
            outputs=[io.Model.Output(display_name="model")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, model, table, base_scheduler, gamma, start) -> io.NodeOutput:
        if base_scheduler not in comfy.samplers.SCHEDULER_HANDLERS or base_scheduler == VRG_SCHEDULER:
            raise VRGError(f"base scheduler {base_scheduler!r} is not available; pick one of the listed schedulers")
        check_choice("start", start, START_MODES)
        warnings = table_warnings(table, model)
        patched = with_settings(model, Settings(table, base_scheduler, gamma or "auto", start))
        text = f"scheduler 'vrg' = {base_scheduler} optimised with this {table.kind.label} table (start {start})"
        return io.NodeOutput(patched, ui=report(cls, text, warnings))


NODES = [VRGApply]
