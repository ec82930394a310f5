"""VRG in AUTOMATIC1111's webui and Forge: VRG+ searched on the loaded checkpoint, and VRG schedule types.

The webui runs this file at start-up (and on "Reload UI"); the extension folder (this
repository) is put on `sys.path` so that `vrg_core` and `vrg_webui` import.

The txt2img tab gets an accordion "VRG+" (`VRGPlus`, an always-on script): when on, the generation's
schedule is VRG+'s for its checkpoint, sampler, steps and CFG scale, searched on first use through the
webui's own sampler and CFG denoiser and cached in `models/vrg/` (`vrg_webui.search`).

It also adds to `modules.sd_schedulers`:

- for every VRG+ schedule file (`models/vrg/schedules/*.json`, `vrg_core.schedule_file`: searched
  in ComfyUI or with the CLI), `vrgplus_<file>` "VRG+ <file> (<sampler>, <steps> steps)", which
  returns the file's schedule for the steps asked;
- for every error table (`models/vrg/*.safetensors`), `vrg_<table>_karras` "VRG <table> (Karras)"
  and `vrg_<table>_exponential` "VRG <table> (Exponential)": k-diffusion's base schedule for
  the steps asked, VRG-optimised (γ auto, first σ kept).

Each serves only the checkpoint it was made on: the file's model fingerprint must be the loaded
diffusion model's (`vrg_core.fingerprint`, the weights as loaded, before LoRA), and its model kind
the loaded one's, else the generation stops with a message naming both. The tables bundled with
the node pack are not offered: they were measured on its 16×16 digit demo models.

A missing dependency or an unreadable table logs one line; the webui starts without it.
"""

import logging
import sys
from pathlib import Path

log = logging.getLogger("vrg")

EXTENSION_ROOT = Path(__file__).resolve().parent.parent
if str(EXTENSION_ROOT) not in sys.path:
    sys.path.append(str(EXTENSION_ROOT))
BASES = {"karras": "Karras", "exponential": "Exponential"}  # k_diffusion.sampling.get_sigmas_<key>

try:
    import k_diffusion
    import torch
    from modules import sd_schedulers, shared
    from vrg_core.errors import VRGError
    from vrg_core.optimize import optimize_sigmas
    from vrg_core.schedule_file import load_schedule
    from vrg_core.table_io import load_table
    from vrg_webui import PLUS_PREFIX, PREFIX
    from vrg_webui.model import check_same_model
    from vrg_webui.search import WebuiParts, check_request, k_diffusion_paths, override
except ImportError as e:
    missing = e
else:
    missing = None
try:  # the script API: only in a running webui (the tests load this file without it)
    from modules import scripts
except ImportError:
    scripts = None
DEFAULT_EVALUATIONS = 2000


def table_files() -> dict:
    """Table name → file, for the tables in the webui's `models/vrg/`."""
    return {path.stem: path for path in sorted((Path(shared.models_path) / "vrg").glob("*.safetensors"))}


def schedule_files() -> dict:
    """Schedule name → file, for the VRG+ schedule files in the webui's `models/vrg/schedules/`."""
    return {path.stem: path for path in sorted((Path(shared.models_path) / "vrg" / "schedules").glob("*.json"))}


def table_scheduler(table, table_file: str, base_sigmas):
    """The webui scheduler for one table and one k-diffusion base schedule."""

    def vrg_sigmas(n, sigma_min, sigma_max, inner_model, device):
        check_same_model(table.kind, table.info.model_fingerprint, f"VRG table '{table_file}'", inner_model)
        base = base_sigmas(n, sigma_min, sigma_max, device="cpu")
        return torch.tensor(optimize_sigmas(base, table).sigmas, dtype=torch.float32, device=device)

    return vrg_sigmas


def searched_scheduler(schedule, schedule_file: str):
    """The webui scheduler for one VRG+ schedule file: its schedule for the steps asked."""

    def vrg_plus_sigmas(n, sigma_min, sigma_max, inner_model, device):
        what = f"VRG+ schedule '{schedule_file}'"
        check_same_model(schedule.kind, schedule.model_fingerprint, what, inner_model, "searched")
        return torch.tensor(schedule.sigmas(n, what), dtype=torch.float32, device=device)

    return vrg_plus_sigmas


def readable(files: dict, load, what: str):
    """(name, path, what `load` reads) for each of `files` ({name: path}); one log line for each it cannot read."""
    for name, path in files.items():
        try:
            yield name, path, load(path)
        except (VRGError, OSError) as e:
            log.warning("VRG: %s '%s' not registered: %s", what, path, e)


def entries(tables: dict, schedules: dict) -> list:
    """The webui's schedulers for `tables` and `schedules` ({name: file})."""
    found = [sd_schedulers.Scheduler(f"{PLUS_PREFIX}{name}", f"VRG+ {name} ({schedule.sampler}, {schedule.counts} steps)",
                                     searched_scheduler(schedule, path.name), need_inner_model=True)
             for name, path, schedule in readable(schedules, load_schedule, "schedule")]
    for name, path, table in readable(tables, load_table, "table"):
        for base, label in BASES.items():
            function = table_scheduler(table, path.name, getattr(k_diffusion.sampling, f"get_sigmas_{base}"))
            found.append(sd_schedulers.Scheduler(f"{PREFIX}{name}_{base}", f"VRG {name} ({label})", function,
                                                 need_inner_model=True))
    return found


def register(added: list) -> None:
    """Append `added` to the webui's scheduler list, replacing earlier VRG entries."""
    schedulers = sd_schedulers.schedulers
    schedulers[:] = [s for s in schedulers if not s.name.startswith((PREFIX, PLUS_PREFIX))] + added
    sd_schedulers.schedulers_map.clear()
    sd_schedulers.schedulers_map.update({**{s.name: s for s in schedulers}, **{s.label: s for s in schedulers}})


if missing is None:
    register(entries(table_files(), schedule_files()))
else:
    log.warning("VRG: schedules not registered (%s); VRG needs webui 1.9+ or Forge, with numpy, scipy and safetensors", missing)


def webui_parts():
    """The parts of the running webui a VRG+ search reads (`vrg_webui.search.WebuiParts`)."""
    from k_diffusion.sampling import BrownianTreeNoiseSampler
    from modules import devices, sd_samplers_kdiffusion

    return WebuiParts(shared.state, shared.opts, sd_schedulers.schedulers, sd_samplers_kdiffusion.samplers_k_diffusion,
                      devices.device, Path(shared.models_path), print, k_diffusion_paths(BrownianTreeNoiseSampler))


def vrg_plus_process(p, enabled: bool, evaluations: int, parts: "WebuiParts | None" = None) -> None:
    """The accordion's part of a generation: when on, refuse what VRG+ cannot serve, else have the webui's
    sampler ask VRG+ for its schedule (`parts`: the running webui's)."""
    if not enabled:
        return
    parts = parts or webui_parts()
    p.sampler_noise_scheduler_override = override(p, check_request(p, parts), int(evaluations), parts)


if scripts is not None and missing is None:
    class VRGPlus(scripts.Script):
        """The "VRG+" accordion of the txt2img tab."""

        def title(self):
            return "VRG+"

        def show(self, is_img2img):
            return False if is_img2img else scripts.AlwaysVisible

        def ui(self, is_img2img):
            import gradio as gr

            with gr.Accordion("VRG+: a schedule searched on this checkpoint", open=False):
                enabled = gr.Checkbox(False, label="Search the schedule on this checkpoint (first use) and sample it",
                                      elem_id="vrg_plus_enabled")
                evaluations = gr.Slider(400, 8000, value=DEFAULT_EVALUATIONS, step=100, label="Model evaluations "
                                        "for a search (once per checkpoint, sampler, steps and CFG scale)",
                                        elem_id="vrg_plus_evaluations")
            return [enabled, evaluations]

        def process(self, p, enabled, evaluations):
            vrg_plus_process(p, enabled, evaluations)
