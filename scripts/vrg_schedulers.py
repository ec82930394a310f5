"""VRG schedules in the "Schedule type" dropdown of AUTOMATIC1111's webui and Forge.

The webui runs this file at start-up (and on "Reload UI"); the extension folder (this
repository) is put on `sys.path` so that `vrg_core` imports. It adds to `modules.sd_schedulers`:

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
PREFIX, PLUS_PREFIX = "vrg_", "vrgplus_"
BASES = {"karras": "Karras", "exponential": "Exponential"}  # k_diffusion.sampling.get_sigmas_<key>

try:
    import k_diffusion
    import torch
    from modules import sd_schedulers, shared
    from vrg_core.errors import VRGError
    from vrg_core.fingerprint import fingerprint_weights
    from vrg_core.optimize import optimize_sigmas
    from vrg_core.parameterization import ModelKind
    from vrg_core.schedule_file import load_schedule
    from vrg_core.table_io import load_table
except ImportError as e:
    missing = e
else:
    missing = None


def table_files() -> dict:
    """Table name → file, for the tables in the webui's `models/vrg/`."""
    return {path.stem: path for path in sorted((Path(shared.models_path) / "vrg").glob("*.safetensors"))}


def schedule_files() -> dict:
    """Schedule name → file, for the VRG+ schedule files in the webui's `models/vrg/schedules/`."""
    return {path.stem: path for path in sorted((Path(shared.models_path) / "vrg" / "schedules").glob("*.json"))}


def diffusion_weights(inner_model) -> dict:
    """The loaded checkpoint's diffusion-model weights {name: tensor} as loaded, before LoRA (names as in the
    checkpoint under `model.diffusion_model.`, as ComfyUI's node pack fingerprints them).

    A1111 passes k-diffusion's CompVis(V)Denoiser: `.inner_model` is the LatentDiffusion, `.model.diffusion_model`
    its UNet; LoRA changes weights in place, keeping the originals on each module (`network_weights_backup`,
    `network_bias_backup`). Forge passes its ForgeScheduleLinker: `.inner_model` is the webui's model, whose
    `forge_objects.unet` is a ModelPatcher (LoRA originals in `.model.lora_loader.backup`)."""
    sd_model = getattr(inner_model, "inner_model", None)
    forge = getattr(sd_model, "forge_objects", None)
    if forge is not None:
        patched = forge.unet.model
        weights = dict(patched.diffusion_model.state_dict(keep_vars=True))
        prefix = "diffusion_model."
        for key, original in getattr(getattr(patched, "lora_loader", None), "backup", {}).items():
            if key.startswith(prefix):
                weights[key[len(prefix):]] = original
        return weights
    unet = getattr(getattr(sd_model, "model", None), "diffusion_model", None)
    if not isinstance(unet, torch.nn.Module):
        raise VRGError(f"VRG cannot find the loaded checkpoint's weights behind '{type(inner_model).__name__}', so "
                       "it cannot tell whether a table was made on it; use a non-VRG schedule type")
    weights = dict(unet.state_dict(keep_vars=True))
    for name, module in unet.named_modules():
        where = f"{name}." if name else ""
        original = getattr(module, "network_weights_backup", None)
        if isinstance(original, tuple):  # MultiheadAttention
            weights[f"{where}in_proj_weight"], weights[f"{where}out_proj.weight"] = original
        elif isinstance(original, torch.Tensor):
            weights[f"{where}weight"] = original
        bias = getattr(module, "network_bias_backup", None)
        if isinstance(bias, torch.Tensor):
            weights[f"{where}out_proj.bias" if isinstance(module, torch.nn.MultiheadAttention) else f"{where}bias"] = bias
    return weights


def check_same_model(kind: "ModelKind", made_on: str, what: str, inner_model, made: str = "measured") -> None:
    """VRGError unless `what` (a table or schedule file, of model `kind` and fingerprint `made_on`; `made`: how it
    was made, "measured" or "searched") was made on the loaded checkpoint: its kind, then its weights' fingerprint."""
    loaded_kind = model_kind(inner_model)
    if kind != loaded_kind:
        raise VRGError(f"{what} was {made} on a {kind.label} model but the loaded model is {loaded_kind.label}; "
                       "pick a VRG schedule type made for this model")
    if not made_on:
        raise VRGError(f"{what} does not say which model it was {made} on, so it is not used; profile this "
                       "checkpoint (ComfyUI: VRG Profile, then VRG Save Error Table)")
    loaded = fingerprint_weights(diffusion_weights(inner_model))
    if loaded.value != made_on:
        raise VRGError(f"{what} was {made} on another model (fingerprint {made_on}) than the loaded checkpoint "
                       f"(fingerprint {loaded.value}); the same checkpoint loaded in another precision also differs. "
                       "Pick a VRG schedule type made on this checkpoint, or make one on it"
                       + (f" ({loaded.note()})" if not loaded.complete else ""))


def model_kind(inner_model) -> "ModelKind":
    """The loaded model's kind, from the denoiser wrapper the webui passes as `inner_model`."""
    predictor = getattr(inner_model, "predictor", inner_model)  # Forge: ForgeScheduleLinker(its predictor)
    prediction_type = getattr(predictor, "prediction_type", None)
    if prediction_type is not None:
        return ModelKind.parse("eps" if prediction_type == "epsilon" else prediction_type)
    if isinstance(inner_model, k_diffusion.external.DiscreteVDDPMDenoiser):  # A1111: SD 2.x v-prediction
        return ModelKind.V_PREDICTION
    if isinstance(inner_model, k_diffusion.external.DiscreteEpsDDPMDenoiser):  # A1111: SD 1.x, 2.x, XL
        return ModelKind.EPS
    if float(inner_model.sigmas.max()) <= 1.0:  # A1111's SD3 wrapper: noise levels of a flow model
        return ModelKind.CONST
    raise VRGError(f"VRG cannot tell which kind of model '{type(inner_model).__name__}' is; use a non-VRG schedule type")


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
