"""The host's MODEL as the engine sees it: model kind, noise range, fingerprint, table checks."""

from __future__ import annotations

import comfy.model_sampling as sampling

from ..vrg_core.fingerprint import model_fingerprint
from ..vrg_core.error_table import ErrorTable
from ..vrg_core.errors import VRGError
from ..vrg_core.parameterization import ModelKind

# Most specific first: EDM derives from V_PREDICTION, which derives from EPS.
_KINDS = ((sampling.CONST, ModelKind.CONST), (sampling.EDM, ModelKind.EDM),
          (sampling.V_PREDICTION, ModelKind.V_PREDICTION), (sampling.EPS, ModelKind.EPS))


def model_kind(model_sampling) -> ModelKind:
    for family, kind in _KINDS:
        if isinstance(model_sampling, family):
            return kind
    raise VRGError(f"VRG does not support this model's sampling type ({type(model_sampling).__name__}); "
                   "it supports EPS, v-prediction, EDM and flow (CONST) models")


def sigma_range(model_sampling) -> tuple[float, float]:
    return float(model_sampling.sigma_min), float(model_sampling.sigma_max)


def fingerprint(model) -> str:
    """`model_fingerprint` of a ModelPatcher's diffusion model, as loaded (before its own LoRA patches)."""
    weights = model.model.diffusion_model.state_dict()
    prefix = "diffusion_model."
    for key, backup in model.backup.items():
        if key.startswith(prefix):
            weights[key[len(prefix):]] = backup.weight
    return model_fingerprint(weights)


def table_warnings(table: ErrorTable, model) -> list[str]:
    """Why `table` may not suit `model`; VRGError when it cannot (another model kind)."""
    ms = model.get_model_object("model_sampling")
    kind = model_kind(ms)
    if table.kind != kind:
        raise VRGError(f"the error table is for {table.kind.value} models but this model is {kind.value}; "
                       "use a table profiled on this model")
    warnings = []
    measured_on = table.info.model_fingerprint
    this = fingerprint(model)
    if measured_on and measured_on != this:
        warnings.append(f"the table was measured on another model (fingerprint {measured_on}, this model {this}); "
                        "profile this model for a schedule made for it")
    lo, hi = sigma_range(ms)
    if table.sigma_max < hi * 0.99 or table.sigma_min > lo * 1.01:
        warnings.append(f"the table covers sigma {table.sigma_min:.4g}..{table.sigma_max:.4g} but this model samples "
                        f"{lo:.4g}..{hi:.4g}; schedules outside the table are refused")
    return warnings
