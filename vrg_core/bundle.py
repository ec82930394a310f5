"""Bundled error tables and precomputed optimised schedules (the repository's `schedules/`).

Layout::

    schedules/index.json                  what is bundled (format below)
    schedules/tables/<name>.safetensors   error tables in the `vrg_core.table_io` format

`index.json` is ``{"format": "vrg-schedule-index", "version": 1, "tables": {<name>: entry}}``
with one entry per table:

    file               "tables/<name>.safetensors"
    kind               the model kind (eps, v_prediction, edm, const)
    model              the model the table was measured on, for people
    model_fingerprint  `model_fingerprint` of that model's diffusion-model weights
    description        one line for users
    sigma_min, sigma_max, cfg   the measured noise range and the guidance scale used
    sampling           the model's noise schedule as a host rebuilds it without the model:
                       {"type": "discrete" | "discrete_flow", "settings": {...}} with the
                       settings of ComfyUI's ModelSamplingDiscrete / ModelSamplingDiscreteFlow
    optimizer          the `optimize_sigmas` settings of the precomputed schedules
    schedules          {<base scheduler>: {"<steps>": {"base": [σ…], "sigmas": [σ…],
                        "cpe_before": x, "cpe_after": y}}}

Searched (VRG+) schedules are cached apart, in `vrg_core.search.cache`'s own format.

Base schedules come from the host (ComfyUI's own schedulers), so `write_bundle_entry` takes a
`base_schedule(kind, sampling, scheduler, steps)` function. The demo models' bundle is built by
`vrg_core.demo.bundle`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from .errors import VRGError
from .error_table import ErrorTable
from .objective import as_schedule
from .optimize import OptimizeResult, auto_gamma, optimize_sigmas
from .parameterization import ModelKind
from .table_io import load_table, read_limited, save_table, write_atomic

BUNDLE_DIR = Path(__file__).resolve().parent.parent / "schedules"
INDEX_FORMAT = "vrg-schedule-index"
INDEX_VERSION = 1
MAX_INDEX_BYTES = 8 * 1024 * 1024
OPTIMIZER = {"gamma": "auto", "start": "fixed", "method": "exact", "interp": "loglog"}
SAMPLING_TYPES = ("discrete", "discrete_flow")

BaseSchedule = Callable[[ModelKind, dict, str, int], "np.ndarray | torch.Tensor"]


# ---- reading ------------------------------------------------------------------------------
def read_index(bundle_dir: Path = BUNDLE_DIR) -> dict:
    """The parsed index (an empty one when the bundle has no index yet)."""
    path = Path(bundle_dir) / "index.json"
    if not path.exists():
        return {"format": INDEX_FORMAT, "version": INDEX_VERSION, "tables": {}}
    try:
        index = json.loads(read_limited(path, MAX_INDEX_BYTES).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise VRGError(f"the schedule index {path} is damaged ({e}); restore it from the repository") from None
    if not isinstance(index, dict) or index.get("format") != INDEX_FORMAT or not isinstance(index.get("tables"), dict):
        raise VRGError(f"{path} is not a VRG schedule index")
    if index.get("version", 0) > INDEX_VERSION:
        raise VRGError(f"{path} was written by a newer VRG (index version {index['version']}); update the node pack")
    return index


def write_index(folder: Path, index: dict) -> None:
    """Replace `folder`/index.json atomically (sorted keys: the same index gives the same bytes)."""
    write_atomic(Path(folder) / "index.json", (json.dumps(index, indent=1, sort_keys=True) + "\n").encode())


def list_bundled_tables(bundle_dir: Path = BUNDLE_DIR) -> list[str]:
    return sorted(read_index(bundle_dir)["tables"])


def bundled_entry(name: str, bundle_dir: Path = BUNDLE_DIR) -> dict:
    tables = read_index(bundle_dir)["tables"]
    if name not in tables:
        raise VRGError(f"no bundled table named {name!r}; bundled: {', '.join(sorted(tables)) or 'none'}")
    return tables[name]


def load_bundled_table(name: str, bundle_dir: Path = BUNDLE_DIR) -> ErrorTable:
    """The bundled error table `name` (its file must lie in the bundle's tables/ folder)."""
    folder = (Path(bundle_dir) / "tables").resolve()
    path = (Path(bundle_dir) / str(bundled_entry(name, bundle_dir).get("file", ""))).resolve()
    if path.parent != folder:
        raise VRGError(f"bundled table {name!r} points outside {folder}; the index is damaged")
    return load_table(path)


def bundled_schedule(
    name: str, scheduler: str, steps: int, base_sigmas=None, bundle_dir: Path = BUNDLE_DIR,
) -> OptimizeResult:
    """The optimised `steps`-step schedule of base `scheduler` for bundled table `name`.

    Precomputed when the index has it; otherwise optimised now from the bundled table with
    the index's optimiser settings, which needs `base_sigmas` (the host's base schedule).
    """
    entry = bundled_entry(name, bundle_dir)
    settings = {**OPTIMIZER, **entry.get("optimizer", {})}
    stored = entry.get("schedules", {}).get(scheduler, {}).get(str(steps))
    if stored is not None:
        gamma = auto_gamma(steps) if settings["gamma"] == "auto" else float(settings["gamma"])
        return OptimizeResult(
            as_schedule(stored["sigmas"], f"bundled {name} {scheduler} {steps}"), as_schedule(stored["base"]),
            float(stored["cpe_before"]), float(stored["cpe_after"]), gamma, settings["start"], settings["method"],
            settings["interp"], "precomputed", 0.0,
        )
    if base_sigmas is None:
        raise VRGError(
            f"bundled table {name!r} has no precomputed {steps}-step {scheduler!r} schedule; "
            "give the base schedule (connect the model) to optimise one now"
        )
    return optimize_sigmas(base_sigmas, load_bundled_table(name, bundle_dir), **settings)


# ---- writing -------------------------------------------------------------------------------
def write_bundle_entry(
    name: str,
    table: ErrorTable,
    *,
    model: str,
    description: str,
    sampling: dict,
    base_schedule: BaseSchedule,
    schedulers: Iterable[str],
    steps: Iterable[int],
    bundle_dir: Path = BUNDLE_DIR,
) -> dict:
    """Save `table` into the bundle with its schedules optimised for every scheduler × step count."""
    if sampling.get("type") not in SAMPLING_TYPES or not isinstance(sampling.get("settings"), dict):
        raise VRGError(f"sampling must be {{'type': one of {SAMPLING_TYPES}, 'settings': {{...}}}}, got {sampling!r}")
    schedules: dict[str, dict[str, dict]] = {}
    for scheduler in schedulers:
        for n in steps:
            result = optimize_sigmas(base_schedule(table.kind, sampling, scheduler, n), table, **OPTIMIZER)
            schedules.setdefault(scheduler, {})[str(n)] = {
                "base": result.base_sigmas.tolist(), "sigmas": result.sigmas.tolist(),
                "cpe_before": result.cpe_before, "cpe_after": result.cpe_after,
            }
    entry = {
        "file": f"tables/{name}.safetensors", "kind": table.kind.value, "model": model,
        "model_fingerprint": table.info.model_fingerprint, "description": description,
        "sigma_min": table.sigma_min, "sigma_max": table.sigma_max, "cfg": table.info.cfg,
        "sampling": sampling, "optimizer": dict(OPTIMIZER), "schedules": schedules,
    }
    save_table(table, Path(bundle_dir) / entry["file"])
    index = read_index(bundle_dir)
    index["tables"][name] = entry
    write_index(bundle_dir, index)
    return entry
