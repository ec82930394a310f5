"""The checkpoint the webui has loaded, as VRG sees it: its model kind, its diffusion-model weights as loaded
(before LoRA) and whether a table or schedule file was made on it.

`inner_model` is the denoiser wrapper the webui passes a scheduler (`KDiffusionSampler.model_wrap`):
A1111's k-diffusion CompVis(V)Denoiser, or Forge's ForgeScheduleLinker.
"""

import k_diffusion
import torch

from vrg_core.errors import VRGError
from vrg_core.fingerprint import Fingerprint, fingerprint_weights
from vrg_core.parameterization import ModelKind


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


def check_same_model(kind: ModelKind, made_on: str, what: str, inner_model, made: str = "measured") -> None:
    """VRGError unless `what` (a table or schedule file, of model `kind` and fingerprint `made_on`; `made`: how it
    was made, "measured" or "searched") was made on the loaded checkpoint: its kind, then its weights' fingerprint."""
    loaded_kind = model_kind(inner_model)
    if kind != loaded_kind:
        raise VRGError(f"{what} was {made} on a {kind.label} model but the loaded model is {loaded_kind.label}; "
                       "pick a VRG schedule type made for this model")
    if not made_on:
        raise VRGError(f"{what} does not say which model it was {made} on, so it is not used; profile this "
                       "checkpoint (ComfyUI: VRG Profile, then VRG Save Error Table)")
    loaded = loaded_fingerprint(inner_model)
    if loaded.value != made_on:
        raise VRGError(f"{what} was {made} on another model (fingerprint {made_on}) than the loaded checkpoint "
                       f"(fingerprint {loaded.value}); the same checkpoint loaded in another precision also differs. "
                       "Pick a VRG schedule type made on this checkpoint, or make one on it"
                       + (f" ({loaded.note()})" if not loaded.complete else ""))


def model_kind(inner_model) -> ModelKind:
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


def loaded_fingerprint(inner_model) -> Fingerprint:
    """The fingerprint of the loaded checkpoint's diffusion model (`diffusion_weights`), as ComfyUI's node pack
    records a model's."""
    return fingerprint_weights(diffusion_weights(inner_model))
