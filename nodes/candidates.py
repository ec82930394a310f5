"""Every schedule a ComfyUI user could pick at a step count: the candidates VRG+ must beat.

The registered schedulers (other packs' too) and the shipped tables of ComfyUI's own nodes
(AlignYourSteps, GITS, OptimalSteps), computed by ComfyUI at run time, never copied.
"""

from __future__ import annotations

import logging

import numpy as np

from .host import model_kind
from .samplers import ksampler_sigmas
from .vrg_scheduler import base_scheduler_names

# (name, module in comfy_extras, node class, arguments before steps) per noise process
SHIPPED_TABLES = {
    "eps": (("ays_sd1", "nodes_align_your_steps", "AlignYourStepsScheduler", ("SD1",)),
            ("ays_sdxl", "nodes_align_your_steps", "AlignYourStepsScheduler", ("SDXL",)),
            ("gits", "nodes_gits", "GITSScheduler", (1.20,))),
    "flow": (("oss_flux", "nodes_optimalsteps", "OptimalStepsScheduler", ("FLUX",)),
             ("oss_wan", "nodes_optimalsteps", "OptimalStepsScheduler", ("Wan",))),
}


def shipped_table(module: str, node: str, arguments: tuple, steps: int):
    """The SIGMAS a ComfyUI scheduler node gives at full denoise (V3 `execute` or V1 `get_sigmas`)."""
    import importlib

    cls = getattr(importlib.import_module(f"comfy_extras.{module}"), node)
    out = cls.execute(*arguments, steps, 1.0) if hasattr(cls, "execute") else cls().get_sigmas(*arguments, steps, 1.0)
    return (out.result if hasattr(out, "result") else out)[0]


def host_candidates(model_sampling, steps: int, sampler_name: str) -> tuple[dict[str, np.ndarray], list[str]]:
    """{name: σ descending} for every scheduler (as the KSampler hands them to `sampler_name`) and fitting
    shipped table, and a note per one that failed."""
    out, failed = {}, []
    for name in base_scheduler_names():
        try:
            out[name] = ksampler_sigmas(model_sampling, name, steps, sampler_name).double().cpu().numpy()
        except Exception as e:  # another pack's scheduler may fail on this model; the search goes on without it
            failed.append(f"{name} ({type(e).__name__})")
    process = "flow" if model_kind(model_sampling).is_flow else "eps"
    for name, module, node, arguments in SHIPPED_TABLES[process]:
        try:
            out[name] = shipped_table(module, node, arguments, steps).double().cpu().numpy()
        except Exception as e:  # a ComfyUI without that node
            failed.append(f"{name} ({type(e).__name__})")
    if failed:
        logging.info("[VRG] candidates left out: %s", ", ".join(failed))
    return out, failed
