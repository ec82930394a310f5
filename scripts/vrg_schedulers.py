"""VRG schedules in the "Schedule type" dropdown of AUTOMATIC1111's webui and Forge.

The webui runs this file at start-up (and on "Reload UI"); the extension folder (this
repository) is put on `sys.path` so that `vrg_core` imports. For every error table of the
user's (`models/vrg/*.safetensors`) it adds two schedulers to `modules.sd_schedulers`:
`vrg_<table>_karras` "VRG <table> (Karras)" and `vrg_<table>_exponential` "VRG <table>
(Exponential)". Each builds k-diffusion's base schedule for the steps asked and returns it
VRG-optimised (γ auto, first σ kept) — only for the checkpoint the table was measured on: the
table's model fingerprint must be the loaded diffusion model's (`vrg_core.fingerprint`, the
weights as loaded, before LoRA), else the generation stops with a message naming both. The
tables bundled with the node pack are not offered: they were measured on its 16×16 digit demo
models, which the webui does not load.

A missing dependency or an unreadable table logs one line; the webui starts without it.
"""

import logging
import sys
from pathlib import Path

log = logging.getLogger("vrg")

EXTENSION_ROOT = Path(__file__).resolve().parent.parent
if str(EXTENSION_ROOT) not in sys.path:
    sys.path.append(str(EXTENSION_ROOT))
PREFIX = "vrg_"
BASES = {"karras": "Karras", "exponential": "Exponential"}  # k_diffusion.sampling.get_sigmas_<key>

try:
    import k_diffusion
    import torch
    from modules import sd_schedulers, shared
    from vrg_core.errors import VRGError
    from vrg_core.fingerprint import fingerprint_weights
    from vrg_core.optimize import optimize_sigmas
    from vrg_core.parameterization import ModelKind
    from vrg_core.table_io import load_table
except ImportError as e:
    missing = e
else:
    missing = None


def table_files() -> dict:
    """Table name → file, for the tables in the webui's `models/vrg/`."""
    return {path.stem: path for path in sorted((Path(shared.models_path) / "vrg").glob("*.safetensors"))}


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


def check_same_model(table, table_file: str, inner_model) -> None:
    """VRGError unless `table` was measured on the loaded checkpoint (its weights' fingerprint)."""
    measured_on = table.info.model_fingerprint
    if not measured_on:
        raise VRGError(f"VRG table '{table_file}' does not say which model it was measured on, so it is not used; "
                       "profile this checkpoint (ComfyUI: VRG Profile, then VRG Save Error Table)")
    loaded = fingerprint_weights(diffusion_weights(inner_model))
    if loaded.value != measured_on:
        raise VRGError(f"VRG table '{table_file}' was measured on another model (fingerprint {measured_on}) than the "
                       f"loaded checkpoint (fingerprint {loaded.value}); the same checkpoint loaded in another "
                       "precision also differs. Pick a VRG schedule type whose table was made on this checkpoint, "
                       "or profile it" + (f" ({loaded.note()})" if not loaded.complete else ""))


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


def scheduler_function(table, table_file: str, base_sigmas):
    """The webui scheduler for one table and one k-diffusion base schedule."""

    def vrg_sigmas(n, sigma_min, sigma_max, inner_model, device):
        kind = model_kind(inner_model)
        if kind != table.kind:
            raise VRGError(
                f"VRG table '{table_file}' was measured on a {table.kind.label} model but the loaded model is "
                f"{kind.label}; pick a VRG schedule type whose table was made for this model"
            )
        check_same_model(table, table_file, inner_model)
        base = base_sigmas(n, sigma_min, sigma_max, device="cpu")
        return torch.tensor(optimize_sigmas(base, table).sigmas, dtype=torch.float32, device=device)

    return vrg_sigmas


def register(files: dict) -> None:
    """Append one scheduler per table and base to the webui's list, replacing earlier VRG entries."""
    entries = []
    for name, path in files.items():
        try:
            table = load_table(path)
        except (VRGError, OSError) as e:
            log.warning("VRG: table '%s' not registered: %s", path, e)
            continue
        for base, label in BASES.items():
            function = scheduler_function(table, path.name, getattr(k_diffusion.sampling, f"get_sigmas_{base}"))
            entries.append(sd_schedulers.Scheduler(f"{PREFIX}{name}_{base}", f"VRG {name} ({label})", function, need_inner_model=True))
    schedulers = sd_schedulers.schedulers
    schedulers[:] = [s for s in schedulers if not s.name.startswith(PREFIX)] + entries
    sd_schedulers.schedulers_map.clear()
    sd_schedulers.schedulers_map.update({**{s.name: s for s in schedulers}, **{s.label: s for s in schedulers}})


if missing is None:
    register(table_files())
else:
    log.warning("VRG: schedules not registered (%s); VRG needs webui 1.9+ or Forge, with numpy, scipy and safetensors", missing)
