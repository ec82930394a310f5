"""Which model a MODEL is (its weights' fingerprint) and whether an error table suits it."""

from __future__ import annotations

import logging

from ..vrg_core.fingerprint import Fingerprint, fingerprint_weights
from ..vrg_core.error_table import ErrorTable
from ..vrg_core.errors import VRGError
from .host import model_kind, sigma_range


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
