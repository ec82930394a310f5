"""VRG schedules in the "Schedule type" dropdown of AUTOMATIC1111's webui and Forge.

The webui runs this file at start-up (and on "Reload UI"); the extension folder (this
repository) is put on `sys.path` so that `vrg_core` imports. For every error table, bundled (`schedules/tables/*.safetensors`) or the user's
(`models/vrg/*.safetensors`; a user table overrides a bundled one of the same name), it adds
two schedulers to `modules.sd_schedulers`: `vrg_<table>_karras` "VRG <table> (Karras)" and
`vrg_<table>_exponential` "VRG <table> (Exponential)". Each builds k-diffusion's base schedule
for the steps asked and returns it VRG-optimised (γ auto, first σ kept).

A missing dependency or an unreadable table logs one line; the webui starts without it.
"""

import logging
import sys
from pathlib import Path

log = logging.getLogger("vrg")

EXTENSION_ROOT = Path(__file__).resolve().parent.parent
if str(EXTENSION_ROOT) not in sys.path:
    sys.path.append(str(EXTENSION_ROOT))
BUNDLED_TABLES = EXTENSION_ROOT / "schedules" / "tables"
PREFIX = "vrg_"
BASES = {"karras": "Karras", "exponential": "Exponential"}  # k_diffusion.sampling.get_sigmas_<key>

try:
    import k_diffusion
    import torch
    from modules import sd_schedulers, shared
    from vrg_core.errors import VRGError
    from vrg_core.optimize import optimize_sigmas
    from vrg_core.parameterization import ModelKind
    from vrg_core.table_io import load_table
except ImportError as e:
    missing = e
else:
    missing = None


def table_files() -> dict:
    """Table name → file: bundled tables, then the webui's `models/vrg/` (same name: the user's wins)."""
    files = {}
    for folder in (BUNDLED_TABLES, Path(shared.models_path) / "vrg"):
        for path in sorted(folder.glob("*.safetensors")):
            files[path.stem] = path
    return files


def model_kind(inner_model) -> "ModelKind":
    """The loaded model's kind, from the denoiser wrapper the webui passes as `inner_model`."""
    prediction_type = getattr(inner_model, "prediction_type", None)  # Forge's predictors
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
