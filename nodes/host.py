"""The host's MODEL as the engine sees it: model kind, noise range, fingerprint, table checks."""

from __future__ import annotations

import logging

import torch

import comfy.model_sampling as sampling

from ..vrg_core.fingerprint import Fingerprint, fingerprint_weights
from ..vrg_core.error_table import ErrorTable
from ..vrg_core.errors import VRGError
from ..vrg_core.parameterization import ModelKind

# VRG needs how the sampler forms a noisy latent from a clean one (`noise_scaling`) and the σ range;
# it classifies by that noise process, not by the prediction class. Most specific first: EDM derives
# from V_PREDICTION, which derives from EPS (so do X0 and LCM, whose noise process is EPS's).
_KINDS = (("CONST", ModelKind.CONST), ("EDM", ModelKind.EDM), ("V_PREDICTION", ModelKind.V_PREDICTION),
          ("EPS", ModelKind.EPS))
# Prediction types whose noise process VRG does not model, by class name (some exist only in newer ComfyUI).
_REFUSED = {
    "IMG_TO_IMG": "an image-to-image model (the latent is an input image, not noise)",
    "IMG_TO_IMG_FLOW": "an image-to-image flow model (the latent is an input image, not noise)",
    "IMG_TO_IMG_VELOCITY": "an image-to-image velocity model (the latent is an input image, not noise)",
    "COSMOS_RFLOW": "a Cosmos rectified-flow model (its noise level is remapped as sigma / (sigma + 1))",
    "V_PREDICTION_DDPM": "a DDPM v-prediction model (CogVideoX style: unscaled input)",
}
SUPPORTED = ("VRG supports models whose noisy latent is x0 + sigma * noise (EPS, v-prediction, EDM, X0 and LCM: "
             "SD1.x, SD2.x, SDXL, Playground 2.5) or (1 - sigma) * x0 + sigma * noise (flow/CONST with noise scale 1: "
             "SD3, Flux, Wan)")


def _refuse(model_sampling, type_name: str, why: str) -> VRGError:
    return VRGError(f"VRG does not support this model's prediction type {type_name} (model_sampling "
                    f"{type(model_sampling).__name__}): it is {why}. {SUPPORTED}; sample this model with ComfyUI's "
                    "own schedulers instead")


def _forms(model_sampling, kind: ModelKind) -> bool:
    """Whether the host's `noise_scaling` forms x as `kind`'s formula does (probed on two levels)."""
    sigma = torch.tensor([0.25, 0.75])
    noise, clean = torch.full((2, 1, 1, 1), 0.5), torch.full((2, 1, 1, 1), 2.0)
    try:
        x = model_sampling.noise_scaling(sigma, noise.clone(), clean.clone(), max_denoise=False)
    except Exception:  # noqa: BLE001 - an unknown host class: refused below with the reason
        return False
    s = sigma.view(2, 1, 1, 1)
    expected = (1.0 - s) * clean + s * noise if kind.is_flow else clean + s * noise
    return isinstance(x, torch.Tensor) and x.shape == expected.shape and bool(torch.allclose(x.float(), expected))


def model_kind(model_sampling) -> ModelKind:
    """The VRG model kind of a host `model_sampling`; a VRGError naming the type when VRG cannot model it."""
    classes = {c.__name__ for c in type(model_sampling).__mro__}
    for name, why in _REFUSED.items():
        if name in classes:
            raise _refuse(model_sampling, name, why)
    for name, kind in _KINDS:
        family = getattr(sampling, name)
        if isinstance(model_sampling, family):
            if kind.is_flow and float(getattr(model_sampling, "noise_scale", 1.0)) != 1.0:
                raise _refuse(model_sampling, name, f"a flow model with noise scale {model_sampling.noise_scale:g} "
                                                    "(x = (1 - sigma) * x0 + sigma * scale * noise); set its noise "
                                                    "scale to 1 for VRG")
            if not _forms(model_sampling, kind):
                raise _refuse(model_sampling, name, f"derived from {name} but its noise_scaling does not form x "
                                                    f"as {name} does")
            return kind
    raise _refuse(model_sampling, type(model_sampling).__name__,
                  "not derived from ComfyUI's EPS, V_PREDICTION, EDM or CONST")


def sigma_range(model_sampling) -> tuple[float, float]:
    return float(model_sampling.sigma_min), float(model_sampling.sigma_max)


def weights_fingerprint(model) -> Fingerprint:
    """`fingerprint_weights` of a ModelPatcher's diffusion model, as loaded (before its own LoRA patches).

    fp16 / bf16 / fp8 weights and quantised tensor types (GGUF, QuantizedTensor) are fingerprinted
    without dequantising; values that cannot be read fall back to names, shapes and dtypes (logged).
    """
    weights = dict(model.model.diffusion_model.state_dict(keep_vars=True))
    prefix = "diffusion_model."
    for key, backup in model.backup.items():
        if key.startswith(prefix):
            weights[key[len(prefix):]] = backup.weight
    result = fingerprint_weights(weights)
    if not result.complete:
        logging.warning("[VRG] %s", result.note())
    return result


def fingerprint(model) -> str:
    """The 16-hex-digit fingerprint of a ModelPatcher's diffusion model (see `weights_fingerprint`)."""
    return weights_fingerprint(model).value


def table_warnings(table: ErrorTable, model) -> list[str]:
    """Why `table` may not suit `model`; VRGError when it cannot (another model kind)."""
    ms = model.get_model_object("model_sampling")
    kind = model_kind(ms)
    if table.kind != kind:
        raise VRGError(f"the error table is for {table.kind.label} models but this model is {kind.label}; "
                       "use a table profiled on this model")
    warnings = []
    measured_on = table.info.model_fingerprint
    this_model = weights_fingerprint(model)
    this = this_model.value
    if not this_model.complete:
        warnings.append(this_model.note())
    if measured_on and measured_on != this:
        warnings.append(f"the table was measured on another model (fingerprint {measured_on}, this model {this}); "
                        "profile this model for a schedule made for it")
    lo, hi = sigma_range(ms)
    if table.sigma_max < hi * 0.99 or table.sigma_min > lo * 1.01:
        warnings.append(f"the table covers sigma {table.sigma_min:.4g}..{table.sigma_max:.4g} but this model samples "
                        f"{lo:.4g}..{hi:.4g}; schedules outside the table are refused")
    return warnings
